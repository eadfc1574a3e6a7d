"""The visitor flow with remove.bg doing the cutout: through the views and the job pool, against
the fake, counting the calls and credits each step costs."""

import io

import pytest
from PIL import Image

from segmentation import store
from segmentation.providers import removebg
from tests.fakes.removebg import jpeg, portrait
from tests.flow import health_details, token_of, upload, wait_ready, wait_unlocked
from unlock.issuing import issue
from unlock.models import UnlockCode

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def remove_bg_engine(settings, removebg_fake):
    settings.BACKGROUND_ENGINE = "removebg"
    settings.REMOVEBG_FULL_RESULT = "on_unlock"
    settings.UPLOADS_PER_MINUTE = 0


def one_code() -> str:
    return issue(count=1, max_uses=1, expires_at=None, label="test").displayed[0]


def sizes_requested(fake) -> list[str]:
    return [request.fields.get("size") for request in fake.requests]


def test_upload_pays_a_preview_and_unlock_pays_the_full_result(client, removebg_fake):
    credits_before = removebg.credits_charged()
    token = token_of(upload(client, jpeg(portrait(1600, 1200))))
    job = wait_ready(token)
    assert job.state == store.READY, job.error
    assert job.engine == "removebg"
    assert sizes_requested(removebg_fake) == ["preview"]
    preview = client.get(f"/jobs/{token}/preview")
    assert preview.status_code == 200 and Image.open(io.BytesIO(preview.content)).mode == "RGBA"

    assert client.post(f"/jobs/{token}/unlock", {"code": one_code()}).status_code == 303
    job = wait_unlocked(token)
    assert job.unlocked, job.delivery_error
    assert sizes_requested(removebg_fake) == ["preview", "full"]

    download = client.get(f"/jobs/{token}/download")
    assert download.status_code == 200 and download["Content-Type"] == "image/png"
    result = Image.open(io.BytesIO(download.content))
    assert result.size == (1600, 1200) and result.mode == "RGBA"
    alpha = result.getchannel("A")
    assert alpha.getpixel((5, 5)) == 0 and alpha.getpixel((800, 1190)) == 255
    assert removebg.credits_charged() - credits_before == 1.25

    health = health_details(client)
    assert health["engines"]["cutout"] == "removebg"
    assert health["removebg"]["charged_since_start"] == removebg.credits_charged()
    assert health["removebg"]["credits"] == removebg_fake.balance


def test_a_failed_full_result_gives_the_code_back(client, removebg_fake):
    token = token_of(upload(client, jpeg(portrait(800, 600))))
    wait_ready(token)
    code = one_code()
    removebg_fake.out_of_credits = True
    assert client.post(f"/jobs/{token}/unlock", {"code": code}).status_code == 303
    job = wait_unlocked(token)
    assert not job.unlocked
    assert "temporarily unavailable" in job.delivery_error
    assert UnlockCode.objects.get().used == 0

    removebg_fake.out_of_credits = False  # the operator topped up; the same code now works
    assert client.post(f"/jobs/{token}/unlock", {"code": code}).status_code == 303
    assert wait_unlocked(token).unlocked
    assert UnlockCode.objects.get().used == 1
    assert sizes_requested(removebg_fake) == ["preview", "full", "full"]


def test_a_photo_without_a_person_fails_with_a_readable_reason(client, removebg_fake):
    plain = jpeg(Image.new("RGB", (800, 600), (120, 120, 120)))
    token = token_of(upload(client, plain))
    job = wait_ready(token)
    assert job.state == store.FAILED
    status = client.get(f"/jobs/{token}/status").json()
    assert status["state"] == "failed" and "could not find a person" in status["error"]


def test_upfront_pays_once_at_upload_and_unlocks_without_a_call(client, removebg_fake, settings):
    settings.REMOVEBG_FULL_RESULT = "upfront"
    token = token_of(upload(client, jpeg(portrait(1600, 1200))))
    assert wait_ready(token).state == store.READY
    assert sizes_requested(removebg_fake) == ["full"]
    client.post(f"/jobs/{token}/unlock", {"code": one_code()})
    assert wait_unlocked(token).unlocked
    assert sizes_requested(removebg_fake) == ["full"]
    assert Image.open(io.BytesIO(client.get(f"/jobs/{token}/download").content)).size == (1600, 1200)


def test_a_key_that_cannot_be_sent_never_reaches_the_log(client, removebg_fake, settings, caplog):
    # requests refuses a header value ending in a newline, and its message quotes the value.
    settings.REMOVEBG_API_KEY = "s3cretRemoveBgKey\n"
    token = token_of(upload(client, jpeg(portrait(800, 600))))
    job = wait_ready(token)
    assert job.state == store.FAILED and "temporarily unavailable" in job.error
    logged = "\n".join(caplog.text.splitlines() + [r.getMessage() for r in caplog.records])
    assert "Job failed" in logged and "InvalidHeader" in logged
    assert "s3cretRemoveBgKey" not in logged
    assert "charged" not in logged  # nothing was sent
    assert removebg_fake.requests == []
