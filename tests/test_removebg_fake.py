"""The fake remove.bg behaves like docs/providers/removebg.md says remove.bg does, so tests built
on it mean something. Spoken to with plain `requests`, not with our client."""

import base64
import io
import json
import threading
import zipfile

import pytest
import requests
from PIL import Image

from tests.fakes.removebg import DEFAULT_KEY, FakeRemoveBg, jpeg, portrait
from tests.photos import encode


@pytest.fixture
def fake():
    with FakeRemoveBg() as server:
        yield server


def post(fake, *, key=DEFAULT_KEY, key_header="X-API-Key", data=None, files=None, headers=None, **kwargs):
    all_headers = {key_header: key} if key is not None else {}
    all_headers.update(headers or {})
    return requests.post(f"{fake.base_url}/removebg", headers=all_headers, data=data, files=files, timeout=30, **kwargs)


def photo_file(width=400, height=300, name="p.jpg"):
    return {"image_file": (name, jpeg(portrait(width, height)), "image/jpeg")}


def decoded(response) -> Image.Image:
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def test_missing_key_gets_403_with_remove_bgs_body(fake):
    response = post(fake, key=None, files=photo_file(), data={"size": "preview"})
    assert response.status_code == 403
    assert response.json() == {"errors": [{"title": "Missing API Key"}]}


def test_wrong_key_gets_403_auth_failed(fake):
    response = post(fake, key="wrong", files=photo_file(), data={"size": "preview"})
    assert response.status_code == 403
    assert response.json() == {"errors": [{"title": "API Key invalid", "code": "auth_failed"}]}


@pytest.mark.parametrize("header", ["X-API-Key", "X-Api-Key", "x-api-key"])
def test_key_header_is_found_in_any_case(fake, header):
    assert post(fake, key_header=header, files=photo_file(), data={"size": "preview"}).status_code == 200


def test_no_source_is_missing_source(fake):
    response = post(fake, data={"size": "preview"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "missing_source"


def test_empty_file_part_counts_as_absent(fake):
    response = post(fake, data={"size": "preview", "image_url": ""}, files={"image_file": ("p.jpg", b"", "image/jpeg")})
    assert response.json()["errors"][0]["code"] == "missing_source"


def test_two_sources_are_multiple_sources(fake):
    response = post(fake, data={"size": "preview", "image_url": "https://example.com/p.jpg"}, files=photo_file())
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "multiple_sources"


def test_type_is_decided_by_magic_bytes_not_by_name(fake):
    gif = encode(Image.new("RGB", (50, 50), "red"), "GIF")
    refused = post(fake, data={"size": "preview"}, files={"image_file": ("p.jpg", gif, "image/jpeg")})
    assert refused.json()["errors"][0]["code"] == "invalid_file_type"
    named_gif = {"image_file": ("p.gif", jpeg(portrait(300, 200)), "image/gif")}
    accepted = post(fake, data={"size": "preview"}, files=named_gif)
    assert accepted.status_code == 200


def test_more_than_22_mb_is_file_too_large(fake):
    oversized = b"\xff\xd8\xff\xe0" + bytes(22 * 1000 * 1000)
    response = post(fake, data={"size": "preview"}, files={"image_file": ("p.jpg", oversized, "image/jpeg")})
    assert response.json()["errors"][0]["code"] == "file_too_large"


def test_more_than_50_megapixels_is_resolution_too_high(fake):
    png = encode(Image.new("L", (8000, 6300)), "PNG")  # 50.4 MP, a few kilobytes
    response = post(fake, data={"size": "preview"}, files={"image_file": ("p.png", png, "image/png")})
    assert response.json()["errors"][0]["code"] == "resolution_too_high"


def test_unknown_size_is_invalid_size(fake):
    response = post(fake, data={"size": "huge"}, files=photo_file())
    assert response.json()["errors"][0]["code"] == "invalid_size"


def test_without_size_the_result_is_a_preview(fake):
    response = post(fake, files=photo_file(1600, 1200))
    assert response.headers["X-Credits-Charged"] == "0.25"
    assert decoded(response).width * decoded(response).height <= 250_000


@pytest.mark.parametrize(
    "size, source, cap, credits",
    [
        ("preview", (1600, 1200), 250_000, "0.25"),
        ("medium", (2000, 1500), 1_500_000, "1"),
        ("hd", (3000, 2000), 4_000_000, "1"),
        ("full", (1200, 900), 25_000_000, "1"),
        ("auto", (500, 400), 25_000_000, "0.25"),
        ("auto", (1200, 900), 25_000_000, "1"),
    ],
)
def test_size_sets_output_cap_and_credits(fake, size, source, cap, credits):
    response = post(fake, data={"size": size, "format": "png"}, files=photo_file(*source))
    assert response.status_code == 200
    result = decoded(response)
    assert result.width * result.height <= cap
    assert result.width <= source[0]  # never upscaled
    assert (result.width, result.height) == (int(response.headers["X-Width"]), int(response.headers["X-Height"]))
    assert response.headers["X-Credits-Charged"] == credits


def test_success_carries_remove_bgs_headers(fake):
    response = post(fake, data={"size": "preview", "type": "person"}, files=photo_file())
    for header in (
        "X-Credits-Charged",
        "X-Width",
        "X-Height",
        "X-Type",
        "X-Foreground-Top",
        "X-Foreground-Left",
        "X-Foreground-Width",
        "X-Foreground-Height",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
    ):
        assert header in response.headers, header
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["X-Type"] == "person"
    assert "X-Type" not in post(fake, data={"size": "preview", "type_level": "none"}, files=photo_file()).headers


def test_cutout_is_of_the_image_received(fake):
    response = post(fake, data={"size": "full", "format": "png"}, files=photo_file(400, 300))
    result = decoded(response)
    assert result.mode == "RGBA" and result.size == (400, 300)
    assert result.getpixel((200, 290))[3] == 255  # the figure's body
    assert result.getpixel((5, 5))[3] == 0  # the background
    top, height = int(response.headers["X-Foreground-Top"]), int(response.headers["X-Foreground-Height"])
    assert 40 <= top <= 50 and top + height == 300


def test_png_output_stops_at_10_megapixels_and_zip_does_not(fake):
    upload = photo_file(4000, 3000)  # 12 MP
    png = post(fake, data={"size": "full", "format": "png"}, files=upload)
    assert png.status_code == 200
    assert 9_900_000 <= int(png.headers["X-Width"]) * int(png.headers["X-Height"]) <= 10_000_000
    archive = post(fake, data={"size": "full", "format": "zip"}, files=upload)
    assert archive.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as z:
        assert sorted(z.namelist()) == ["alpha.png", "color.jpg"]
        colour = Image.open(io.BytesIO(z.read("color.jpg")))
        alpha = Image.open(io.BytesIO(z.read("alpha.png")))
        assert colour.format == "JPEG" and colour.size == (4000, 3000)
        assert alpha.mode == "L" and alpha.size == (4000, 3000)
        assert alpha.getpixel((2000, 2900)) == 255 and alpha.getpixel((10, 10)) == 0


def test_json_mode_returns_result_b64_and_foreground(fake):
    response = post(fake, data={"size": "preview"}, files=photo_file(), headers={"Accept": "application/json"})
    assert response.headers["Content-Type"] == "application/json"
    data = response.json()["data"]
    assert {"foreground_top", "foreground_left", "foreground_width", "foreground_height"} <= data.keys()
    assert Image.open(io.BytesIO(base64.b64decode(data["result_b64"]))).format == "PNG"


def test_image_file_b64_in_a_json_body(fake):
    body = {"image_file_b64": base64.b64encode(jpeg(portrait(300, 200))).decode(), "size": "preview"}
    response = requests.post(f"{fake.base_url}/removebg", json=body, headers={"X-API-Key": DEFAULT_KEY}, timeout=30)
    assert response.status_code == 200


def test_a_plain_image_has_no_foreground(fake):
    flat = jpeg(Image.new("RGB", (300, 200), (200, 200, 200)))
    response = post(fake, data={"size": "preview"}, files={"image_file": ("p.jpg", flat, "image/jpeg")})
    assert response.status_code == 400
    assert response.json() == {
        "errors": [{"title": "Could not identify foreground in image", "code": "unknown_foreground"}]
    }


def test_switches_force_402_429_and_5xx(fake):
    fake.out_of_credits = True
    assert post(fake, files=photo_file()).status_code == 402
    fake.out_of_credits = False
    fake.fail_next(429, retry_after=3)
    limited = post(fake, files=photo_file())
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert limited.json()["errors"][0]["title"] == "Rate limit exceeded"
    fake.fail_next(503)
    assert post(fake, files=photo_file()).status_code == 503
    assert post(fake, files=photo_file()).status_code == 200
    assert [r.status for r in fake.requests] == [402, 429, 503, 200]
    assert fake.credits_charged == 0.25  # only the success is charged


def test_dropped_connection_gets_no_answer(fake):
    fake.drop_next()
    with pytest.raises(requests.ConnectionError):
        post(fake, files=photo_file())


def test_every_request_is_recorded_with_headers_fields_and_file(fake):
    upload = jpeg(portrait(300, 200))

    def send():
        post(fake, data={"size": "preview", "type": "person"}, files={"image_file": ("p.jpg", upload, "image/jpeg")})

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    received = fake.requests
    assert len(received) == 6
    for request in received:
        assert request.header("x-api-key") == DEFAULT_KEY
        assert request.fields == {"size": "preview", "type": "person"}
        assert request.file("image_file").data == upload
        assert request.status == 200 and request.credits == 0.25
    assert fake.credits_charged == 1.5


def test_account_reports_credits(fake):
    post(fake, files=photo_file())
    response = requests.get(f"{fake.base_url}/account", headers={"X-API-Key": DEFAULT_KEY}, timeout=10)
    assert json.loads(response.content)["data"]["attributes"]["credits"]["total"] == 999.75
