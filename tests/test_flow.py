"""The whole visitor flow on the embedded defaults: upload, preview, unlock, download, delete."""

import io
import json

import pytest
from PIL import Image

from segmentation import store
from tests.flow import health_details, token_of, upload, wait_ready, wait_unlocked
from tests.photos import encode, gradient, portrait_scene
from unlock.issuing import issue
from unlock.models import UnlockCode

pytestmark = pytest.mark.django_db(transaction=True)


def one_code(uses: int = 1) -> str:
    return issue(count=1, max_uses=uses, expires_at=None, label="test").displayed[0]


def test_a_portrait_goes_from_upload_to_full_resolution_download(client):
    scene = portrait_scene(1200, 900)
    response = upload(client, encode(scene, "JPEG", quality=92))
    token = token_of(response)
    assert response["Location"] == f"/jobs/{token}/"

    page = client.get(f"/jobs/{token}/")
    assert page.status_code == 200
    job = wait_ready(token)
    assert job.state == store.READY, job.error

    status = client.get(f"/jobs/{token}/status").json()
    assert status["state"] == "ready" and status["unlocked"] is False and 1700 < status["expires_in"] <= 1800

    preview = client.get(f"/jobs/{token}/preview")
    assert preview.status_code == 200 and preview["Content-Type"] == "image/webp"
    assert preview["Cache-Control"].startswith("no-store") or "no-store" in preview["Cache-Control"]
    shown = Image.open(io.BytesIO(preview.content))
    assert shown.width * shown.height <= 250_000 and shown.mode == "RGBA"

    assert client.get(f"/jobs/{token}/download").status_code == 403

    code = one_code()
    response = client.post(f"/jobs/{token}/unlock", {"code": code.lower().replace("-", " ")})
    assert response.status_code == 303 and response["Location"] == f"/jobs/{token}/"
    job = wait_unlocked(token)
    assert job.unlocked, job.delivery_error

    download = client.get(f"/jobs/{token}/download")
    assert download.status_code == 200 and download["Content-Type"] == "image/png"
    assert download["Content-Disposition"] == 'attachment; filename="cutout-1200x900.png"'
    result = Image.open(io.BytesIO(download.content))
    assert result.size == (1200, 900) and result.mode == "RGBA"
    alpha = result.getchannel("A")
    assert alpha.getpixel((20, 20)) < 30, "the background corner should be transparent"
    assert alpha.getpixel((540, 200)) > 220, "the astronaut's face should be opaque"

    white = client.get(f"/jobs/{token}/download?background=white")
    assert white["Content-Type"] == "image/jpeg"
    flattened = Image.open(io.BytesIO(white.content))
    assert flattened.size == (1200, 900) and min(flattened.getpixel((20, 20))) > 235

    custom = client.get(f"/jobs/{token}/download?background=438edb")
    assert custom.status_code == 200
    assert client.get(f"/jobs/{token}/download?background=purple").status_code == 400

    # Unlocked stays unlocked: downloads and a second unlock consume nothing.
    assert client.post(f"/jobs/{token}/unlock", {"code": code}).status_code == 303
    assert UnlockCode.objects.get().used == 1

    deleted = client.post(f"/jobs/{token}/delete")
    assert deleted.status_code == 303 and deleted["Location"] == "/?deleted=1"
    assert "have been deleted" in client.get(deleted["Location"]).content.decode()
    assert client.get(f"/jobs/{token}/").status_code == 404
    assert client.get(f"/jobs/{token}/download").status_code == 404


def test_the_stored_result_is_served_byte_for_byte(client):
    token = token_of(upload(client, encode(portrait_scene(600, 450), "JPEG")))
    wait_ready(token)
    client.post(f"/jobs/{token}/unlock", {"code": one_code()})
    job = wait_unlocked(token)
    assert client.get(f"/jobs/{token}/download").content == store.get_image(job, "result")


def test_a_crowd_job_previews_and_unlocks_like_a_cutout(client):
    token = token_of(upload(client, encode(portrait_scene(800, 600), "JPEG"), mode="crowd"))
    job = wait_ready(token)
    assert job.state == store.READY, job.error
    assert client.get(f"/jobs/{token}/preview").status_code == 200
    client.post(f"/jobs/{token}/unlock", {"code": one_code()})
    assert wait_unlocked(token).unlocked
    download = client.get(f"/jobs/{token}/download?background=red")  # ignored: no transparency
    assert download["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(download.content)).size == (800, 600)


def test_a_photo_without_a_person_fails_with_a_reason(client):
    token = token_of(upload(client, encode(gradient(640, 480), "JPEG")))
    job = wait_ready(token)
    assert job.state == store.FAILED and job.error
    page = client.get(f"/jobs/{token}/")
    assert job.error in page.content.decode()
    assert client.get(f"/jobs/{token}/preview").status_code == 404


class TestUnlocking:
    @pytest.fixture
    def ready_token(self, client):
        token = token_of(upload(client, encode(portrait_scene(400, 300), "JPEG")))
        assert wait_ready(token).state == store.READY
        return token

    def test_a_wrong_code_is_refused_with_a_message(self, client, ready_token):
        response = client.post(f"/jobs/{ready_token}/unlock", {"code": "ABCD-EFGH-JKMN-PQRS"})
        assert response.status_code == 403
        assert "does not exist" in response.content.decode()

    def test_a_malformed_code_is_a_bad_request(self, client, ready_token):
        assert client.post(f"/jobs/{ready_token}/unlock", {"code": "nope"}).status_code == 400
        assert client.post(f"/jobs/{ready_token}/unlock", {}).status_code == 400

    def test_a_used_up_code_says_so(self, client, ready_token):
        code = one_code()
        other = token_of(upload(client, encode(portrait_scene(400, 300), "JPEG")))
        wait_ready(other)
        client.post(f"/jobs/{other}/unlock", {"code": code})
        response = client.post(f"/jobs/{ready_token}/unlock", {"code": code})
        assert response.status_code == 403 and "already been used" in response.content.decode()

    def test_an_expired_code_says_so(self, client, ready_token):
        import datetime

        from django.utils import timezone

        batch = issue(count=1, max_uses=1, expires_at=timezone.now() - datetime.timedelta(minutes=1), label="old")
        response = client.post(f"/jobs/{ready_token}/unlock", {"code": batch.displayed[0]})
        assert response.status_code == 403 and "expired" in response.content.decode()

    def test_a_deactivated_code_says_so(self, client, ready_token):
        code = one_code()
        UnlockCode.objects.update(active=False)
        response = client.post(f"/jobs/{ready_token}/unlock", {"code": code})
        assert response.status_code == 403 and "withdrawn" in response.content.decode()

    def test_unlocking_before_the_preview_is_ready_is_a_conflict(self, client):
        job = store.create("cutout", "local", {"media_type": "image/jpeg", "width": 1, "height": 1}, b"x")
        response = client.post(f"/jobs/{job.token}/unlock", {"code": one_code()})
        assert response.status_code == 409
        assert UnlockCode.objects.get().used == 0

    def test_a_failed_full_result_gives_the_code_back(self, client, ready_token, monkeypatch):
        from segmentation.engines import EngineError
        from segmentation.engines.local import LocalCutout

        def broken(self, photo, carry):
            raise EngineError("The engine broke.", "test")

        monkeypatch.setattr(LocalCutout, "finish", broken)
        code = one_code()
        client.post(f"/jobs/{ready_token}/unlock", {"code": code})
        job = wait_unlocked(ready_token)
        assert not job.unlocked and "not used" in job.delivery_error
        assert UnlockCode.objects.get().used == 0
        monkeypatch.undo()
        client.post(f"/jobs/{ready_token}/unlock", {"code": code})
        assert wait_unlocked(ready_token).unlocked
        assert UnlockCode.objects.get().used == 1

    def test_a_store_that_refuses_the_result_gives_the_code_back_at_once(self, client, ready_token, monkeypatch):
        original_put = store.put_image

        def refusing(job, name, data):
            if name == "result":
                raise ConnectionError("OOM command not allowed when used memory > 'maxmemory'")
            original_put(job, name, data)

        monkeypatch.setattr(store, "put_image", refusing)
        client.post(f"/jobs/{ready_token}/unlock", {"code": one_code()})
        job = wait_unlocked(ready_token)
        assert job.delivery == store.LOCKED and "not used" in job.delivery_error
        assert UnlockCode.objects.get().used == 0


class TestPages:
    def test_home_offers_both_tools(self, client):
        page = client.get("/").content.decode()
        assert 'action="/jobs/"' in page and 'enctype="multipart/form-data"' in page
        assert 'value="cutout"' in page and 'value="crowd"' in page

    def test_legal_pages(self, client):
        for path in ("/privacy/", "/terms/"):
            assert client.get(path).status_code == 200

    def test_health(self, client):
        health = health_details(client)
        assert health["ok"] is True and health["engines"] == {"cutout": "local", "crowd": "local", "idphoto": "local"}
        assert health["store"]["bytes_budget"] > 0

    def test_unknown_job_is_a_friendly_404(self, client):
        response = client.get("/jobs/not-a-real-token/")
        assert response.status_code == 404 and "expired" in response.content.decode()
        assert client.get("/jobs/not-a-real-token/status").json()["state"] == "gone"

    def test_status_json(self, client):
        token = token_of(upload(client, encode(portrait_scene(300, 200), "JPEG")))
        body = json.loads(client.get(f"/jobs/{token}/status").content)
        assert set(body) >= {"state", "error", "expires_in", "unlocked"}

    def test_a_refusal_speaks_the_language_of_its_url(self, client):
        client.get("/zh-hans/")  # the thread served Chinese last
        english = client.post("/jobs/", {"mode": "cutout"}, HTTP_SEC_FETCH_SITE="cross-site")
        assert english.status_code == 403 and '<html lang="en"' in english.content.decode()
        chinese = client.post("/zh-hans/jobs/", {"mode": "cutout"}, HTTP_SEC_FETCH_SITE="cross-site")
        assert '<html lang="zh-hans"' in chinese.content.decode()

    def test_every_page_states_the_configured_lifetime(self, client, settings):
        settings.JOB_TTL_SECONDS = 3601  # rounded up: never promise deletion sooner than it happens
        token = token_of(upload(client, encode(portrait_scene(300, 200), "JPEG")))
        for path in ("/", f"/jobs/{token}/", "/jobs/unknown/", "/privacy/"):
            assert "deleted after 61 minutes" in client.get(path).content.decode(), path
