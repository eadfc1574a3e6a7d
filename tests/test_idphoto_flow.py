"""The ID-photo tool through the site: upload with a spec, framed preview, unlock, every download
(backgrounds, print sheet, file-size cap) from one code, and refusals that cost none."""

import io

import numpy as np
import pytest
from PIL import Image

from segmentation import store
from segmentation.idphoto.specs import SPECS
from tests.flow import token_of, upload, wait_ready, wait_unlocked
from tests.photos import encode, id_portrait
from unlock.issuing import issue
from unlock.models import Redemption, UnlockCode

pytestmark = pytest.mark.django_db(transaction=True)


def one_code() -> str:
    return issue(count=1, max_uses=1, expires_at=None, label="test").displayed[0]


def test_an_id_photo_goes_from_upload_to_every_download_for_one_code(client):
    response = upload(client, encode(id_portrait(), "JPEG", quality=92), mode="idphoto", spec="cn-passport")
    token = token_of(response)
    job = wait_ready(token)
    assert job.state == store.READY, job.error
    assert job.mode == "idphoto" and job.spec == "cn-passport"

    page = client.get(f"/jobs/{token}/").content.decode()
    assert 'id="guide"' in page and "<ellipse" in page  # the guide overlay over the preview
    assert "390×567" in page
    preview = Image.open(io.BytesIO(client.get(f"/jobs/{token}/preview").content))
    assert preview.size == (390, 567) and preview.mode == "RGBA"  # framed, on the page's background

    code = one_code()
    assert client.post(f"/jobs/{token}/unlock", {"code": code}).status_code == 303
    job = wait_unlocked(token)
    assert job.unlocked, job.delivery_error
    assert Redemption.objects.get().tool == "idphoto"

    single = client.get(f"/jobs/{token}/download")
    assert single.status_code == 200 and single["Content-Type"] == "image/jpeg"
    assert single["Content-Disposition"] == 'attachment; filename="idphoto-cn-passport-390x567.jpg"'
    photo = Image.open(io.BytesIO(single.content))
    assert photo.size == (390, 567) and photo.info["dpi"] == (300, 300)
    assert min(photo.getpixel((5, 5))) > 240  # the Chinese passport's white

    blue = Image.open(io.BytesIO(client.get(f"/jobs/{token}/download?background=blue").content))
    assert np.abs(np.asarray(blue)[5, 5].astype(int) - (0x43, 0x8E, 0xDB)).max() <= 6

    sheet = client.get(f"/jobs/{token}/download?layout=sheet&background=red")
    assert sheet.status_code == 200
    printed = Image.open(io.BytesIO(sheet.content))
    assert printed.size == (1800, 1200) and printed.info["dpi"] == (300, 300)

    capped = client.get(f"/jobs/{token}/download?max_kb=20")
    assert capped.status_code == 200 and len(capped.content) <= 20_000
    assert Image.open(io.BytesIO(capped.content)).size == (390, 567)

    for bad in ("background=transparent", "background=purple", "layout=poster", "max_kb=3", "max_kb=abc"):
        assert client.get(f"/jobs/{token}/download?{bad}").status_code == 400, bad
    assert UnlockCode.objects.get().used == 1  # all of it for one use


@pytest.mark.parametrize("spec", list(SPECS))
def test_each_spec_is_offered_and_accepted(client, spec):
    assert f'value="{spec}"' in client.get("/").content.decode()


def test_a_photo_without_a_face_fails_with_a_reason_and_costs_no_code(client):
    flat = Image.new("RGB", (1200, 1600), (200, 180, 160))
    token = token_of(upload(client, encode(flat), mode="idphoto", spec="us-2x2"))
    job = wait_ready(token)
    assert job.state == store.FAILED and "face" in job.error
    assert client.post(f"/jobs/{token}/unlock", {"code": one_code()}).status_code == 409
    assert UnlockCode.objects.get().used == 0


def test_an_unknown_spec_is_refused_at_upload(client):
    response = upload(client, encode(id_portrait()), mode="idphoto", spec="a4-poster")
    assert response.status_code == 400
    assert "ID photo size" in response.content.decode()


def test_with_remove_bg_an_id_photo_costs_the_same_calls_as_a_cutout(client, settings, removebg_fake):
    # A refused photo never reaches the provider; an accepted one pays the preview at upload and
    # the full size at unlock, and every download after that is made here.
    from segmentation.providers import removebg

    settings.BACKGROUND_ENGINE = "removebg"
    settings.REMOVEBG_FULL_RESULT = "on_unlock"
    credits_before = removebg.credits_charged()
    flat = Image.new("RGB", (1200, 1600), (200, 180, 160))
    refused = wait_ready(token_of(upload(client, encode(flat), mode="idphoto", spec="us-2x2")))
    assert refused.state == store.FAILED and removebg_fake.requests == []

    token = token_of(upload(client, encode(id_portrait(), "JPEG", quality=92), mode="idphoto", spec="us-2x2"))
    job = wait_ready(token)
    assert job.state == store.READY, job.error
    assert job.engine == "removebg"
    assert [request.fields.get("size") for request in removebg_fake.requests] == ["preview"]
    assert client.post(f"/jobs/{token}/unlock", {"code": one_code()}).status_code == 303
    job = wait_unlocked(token)
    assert job.unlocked, job.delivery_error
    for query in ("", "?background=red", "?layout=sheet", "?max_kb=50"):
        assert client.get(f"/jobs/{token}/download{query}").status_code == 200
    assert [request.fields.get("size") for request in removebg_fake.requests] == ["preview", "full"]
    assert removebg.credits_charged() - credits_before == 1.25
    photo = Image.open(io.BytesIO(client.get(f"/jobs/{token}/download").content))
    assert photo.size == (600, 600)
