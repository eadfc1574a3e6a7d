"""POST /jobs/: every refusal is a readable page with the right status, and nothing is kept."""

import numpy as np
import pytest
from django.core.cache import caches
from django.utils import translation
from PIL import Image

from segmentation import intake, jobs, store
from tests.flow import token_of, upload, wait_for_pool_idle
from tests.photos import encode, gradient, portrait_scene

pytestmark = pytest.mark.django_db


def noise_png(side: int) -> bytes:
    pixels = np.random.default_rng(side).integers(0, 255, (side, side, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), "PNG", compress_level=0)


def test_a_damaged_file_is_a_400_page_with_a_message(client):
    data = encode(gradient(800, 600), "JPEG")
    response = upload(client, data[:3000])
    assert response.status_code == 400
    assert "damaged or incomplete" in response.content.decode() or "incomplete" in response.content.decode()
    assert 'action="/jobs/"' in response.content.decode(), "the form is offered again"


def test_a_text_file_named_jpg_is_refused(client):
    response = upload(client, b"just some text", name="holiday.jpg")
    assert response.status_code == 400 and "not a photo" in response.content.decode()


def test_an_unknown_tool_is_refused(client):
    response = upload(client, encode(gradient(100, 100)), mode="paint")
    assert response.status_code == 400 and "choose a tool" in response.content.decode()


def test_a_missing_file_is_refused(client):
    response = client.post("/jobs/", {"mode": "cutout"})
    assert response.status_code == 400 and "choose a photo" in response.content.decode()


def test_a_declared_body_over_the_cap_is_refused_before_reading(client, settings):
    settings.MAX_UPLOAD_BYTES = 50_000
    data = noise_png(200)  # ~120 KB: body over cap + multipart allowance
    response = upload(client, data)
    assert response.status_code == 413
    assert "too large" in response.content.decode() and "48.8\xa0KB" in response.content.decode()


def test_a_chinese_visitor_reads_the_upload_limit_in_chinese_units(client, settings):
    settings.MAX_UPLOAD_BYTES = 20 * 1024 * 1024
    with translation.override("zh-hans"):
        message = intake.too_large_message()
    assert "20.0\xa0兆字节" in message and "MB" not in message
    home = client.get("/zh-hans/").content.decode()
    assert "20.0\xa0兆字节" in home and "20.0\xa0MB" not in home
    with translation.override("en"):
        assert "20.0\xa0MB" in intake.too_large_message()


def test_a_file_over_the_cap_is_refused_while_streaming(client, settings):
    # The declared body fits within cap + multipart overhead, but the file itself does not.
    settings.MAX_UPLOAD_BYTES = 100_000
    settings.MULTIPART_OVERHEAD_BYTES = 64 * 1024
    data = noise_png(190)
    assert 100_000 < len(data) < 100_000 + 60_000
    response = upload(client, data)
    assert response.status_code == 413


def test_uploads_are_rate_limited_per_client(client, settings):
    settings.UPLOADS_PER_MINUTE = 2
    caches["default"].clear()
    data = encode(gradient(64, 64))
    statuses = [upload(client, data).status_code for _ in range(3)]
    assert statuses[:2] == [303, 303]
    assert statuses[2] == 429
    third = upload(client, data)
    assert int(third["Retry-After"]) >= 1
    other_client = upload(client, data, REMOTE_ADDR="198.51.100.7")
    assert other_client.status_code != 429
    caches["default"].clear()


def test_a_full_pool_answers_503_with_retry_after(client, monkeypatch):
    monkeypatch.setattr(jobs.Pool, "submit", lambda self, task, *args: False)
    response = upload(client, encode(portrait_scene(300, 200)))
    assert response.status_code == 503 and int(response["Retry-After"]) > 0
    assert "busy" in response.content.decode()


def test_a_full_store_answers_503_and_evicts_nobody(client, settings):
    first = token_of(upload(client, encode(portrait_scene(300, 200))))
    wait_for_pool_idle()  # no job (ours or an earlier test's) may grow or shrink the store now
    used, _ = store.usage()
    settings.IMAGE_STORE_MAX_BYTES = used + 1000
    response = upload(client, encode(portrait_scene(300, 200)))
    assert response.status_code == 503 and response["Retry-After"]
    assert store.get(first) is not None


def test_an_accepted_upload_redirects_to_its_job(client):
    response = upload(client, encode(portrait_scene(300, 200)))
    token = token_of(response)
    assert len(token) >= 40
    assert store.get(token).mode == "cutout"
