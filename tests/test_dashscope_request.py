"""What the DashScope client sends: one documented request per job, the photo inline, upright,
metadata-free and within DashScope's limits; the result fetched without our key."""

import base64
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from segmentation.intake import accept_upload
from segmentation.providers import dashscope as client
from segmentation.providers.http import ProviderError
from tests.fakes.dashscope import encode, erase_people, street_scene


def sent_image(call) -> tuple[str, bytes]:
    uri = call.json()["input"]["messages"][0]["content"][0]["image"]
    match = re.fullmatch(r"data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)", uri)
    assert match, uri[:60]
    return match[1], base64.b64decode(match[2])


def test_one_call_carries_exactly_the_documented_request(dashscope_fake):
    photo = accept_upload(encode(street_scene(1200, 800).image))

    edited = erase_people(photo)

    (call,) = dashscope_fake.generation_calls
    assert call.path == "/api/v1/services/aigc/multimodal-generation/generation"
    assert call.header("Authorization") == f"Bearer {dashscope_fake.api_key}"
    assert call.header("Content-Type") == "application/json"
    assert call.header("X-DashScope-Async") is None  # this model answers synchronously
    assert call.header("X-DashScope-OssResourceResolve") is None  # never oss:// uploads
    body = call.json()
    assert set(body) == {"model", "input", "parameters"}
    assert body["model"] == "qwen-image-edit-plus"
    (message,) = body["input"]["messages"]
    assert message["role"] == "user"
    image_part, text_part = message["content"]
    assert list(image_part) == ["image"] and list(text_part) == ["text"]
    assert image_part["image"].startswith("data:image/jpeg;base64,")
    assert text_part["text"] == client.DEFAULT_PROMPT
    parameters = body["parameters"]
    assert set(parameters) == {"n", "prompt_extend", "watermark", "negative_prompt", "seed", "size"}
    assert parameters["n"] == 1
    assert parameters["prompt_extend"] is False
    assert parameters["watermark"] is False
    assert parameters["negative_prompt"] == client.DEFAULT_NEGATIVE_PROMPT
    assert isinstance(parameters["seed"], int) and 0 <= parameters["seed"] <= 2**31 - 1
    assert parameters["size"] == "1200*800"
    assert (edited.width, edited.height) == (1200, 800)


def test_the_prompts_come_from_settings_when_set(dashscope_fake, settings):
    settings.DASHSCOPE_PROMPT = "Remove the tourists."
    settings.DASHSCOPE_NEGATIVE_PROMPT = "tourists"
    erase_people(accept_upload(encode(street_scene(800, 600).image)))

    body = dashscope_fake.generation_calls[0].json()
    assert body["input"]["messages"][0]["content"][1]["text"] == "Remove the tourists."
    assert body["parameters"]["negative_prompt"] == "tourists"


def test_prompts_at_the_length_limits_are_sent_whole(dashscope_fake, settings):
    settings.DASHSCOPE_PROMPT = "Remove every passer-by. " * 33 + "Keep all"  # 800 characters
    settings.DASHSCOPE_NEGATIVE_PROMPT = "ghost figures, " * 33 + "blur."  # 500 characters
    assert (len(settings.DASHSCOPE_PROMPT), len(settings.DASHSCOPE_NEGATIVE_PROMPT)) == (800, 500)

    erase_people(accept_upload(encode(street_scene(800, 600).image)))

    body = dashscope_fake.generation_calls[0].json()
    assert body["input"]["messages"][0]["content"][1]["text"] == settings.DASHSCOPE_PROMPT
    assert body["parameters"]["negative_prompt"] == settings.DASHSCOPE_NEGATIVE_PROMPT


@pytest.mark.parametrize(("name", "limit"), [("DASHSCOPE_PROMPT", 800), ("DASHSCOPE_NEGATIVE_PROMPT", 500)])
def test_a_prompt_too_long_stops_start_up_naming_the_variable(name, limit):
    # A fresh interpreter reads the settings module as start-up does, with the variable set.
    environment = {
        **os.environ,
        "DEBUG": "true",
        name: "x" * (limit + 1),
        "DJANGO_SETTINGS_MODULE": "portraitsite.settings",
    }
    check = "import django; django.setup()"
    too_long = subprocess.run(
        [sys.executable, "-c", check], env=environment, capture_output=True, text=True, cwd=settings_dir()
    )
    assert too_long.returncode != 0
    assert "ImproperlyConfigured" in too_long.stderr and f"{name} is {limit + 1} characters" in too_long.stderr

    environment[name] = "x" * limit
    assert subprocess.run([sys.executable, "-c", check], env=environment, cwd=settings_dir()).returncode == 0


def settings_dir() -> str:
    return str(Path(__file__).resolve().parent.parent)


def test_default_prompts_fit_the_documented_lengths():
    # DashScope's limits (docs/providers/dashscope.md); settings.py holds the operator's to them.
    assert len(client.DEFAULT_PROMPT) <= 800
    assert len(client.DEFAULT_NEGATIVE_PROMPT) <= 500


def test_a_plain_jpeg_is_sent_as_its_own_metadata_free_bytes(dashscope_fake):
    image = street_scene(1600, 1200).image
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    exif[0x8825] = {2: (48.0, 51.0, 29.0)}  # GPS latitude
    photo = accept_upload(encode(image, exif=exif, comment=b"secret comment"))

    erase_people(photo)

    media_type, data = sent_image(dashscope_fake.generation_calls[0])
    assert media_type == "image/jpeg"
    assert data == photo.data
    for marker in (b"Exif", b"Camera maker", b"secret comment", b"ICC_PROFILE", b"http://ns.adobe.com"):
        assert marker not in data


def test_a_rotated_photo_is_sent_upright(dashscope_fake):
    image = street_scene(900, 600).image
    image.paste((255, 0, 0), (0, 0, 60, 60))  # a red mark in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise
    photo = accept_upload(encode(image, exif=exif))

    erase_people(photo)

    _, data = sent_image(dashscope_fake.generation_calls[0])
    with Image.open(io.BytesIO(data)) as sent:
        assert sent.size == (600, 900)
        assert not sent.getexif()
        red, green, blue = sent.convert("RGB").getpixel((570, 30))  # the mark, now top-right
        assert red > 200 and green < 60 and blue < 60
    assert dashscope_fake.generation_calls[0].json()["parameters"]["size"] == "600*900"


def test_a_large_photo_is_scaled_to_the_input_limits(dashscope_fake):
    photo = accept_upload(encode(street_scene(4000, 3000).image))

    erase_people(photo)

    call = dashscope_fake.generation_calls[0]
    _, data = sent_image(call)
    assert len(data) <= client.MAX_INPUT_BYTES
    with Image.open(io.BytesIO(data)) as sent:
        assert sent.size == (3072, 2304)
        assert not sent.getexif() and "icc_profile" not in sent.info
    assert call.json()["parameters"]["size"] == "2048*1536"


def test_a_noisy_photo_is_recompressed_under_seven_megabytes(settings):
    import numpy as np

    settings.MAX_UPLOAD_BYTES = 40 * 1024 * 1024
    noise = np.random.default_rng(7).integers(0, 256, (2600, 3000, 3), dtype=np.uint8)
    photo = accept_upload(encode(Image.fromarray(noise), quality=100))
    assert len(photo.data) > client.MAX_INPUT_BYTES

    sent = client.model_input(photo)

    assert len(sent.data) <= client.MAX_INPUT_BYTES
    assert min(sent.width, sent.height) >= client.MIN_INPUT_SIDE
    assert abs(sent.width / sent.height - 3000 / 2600) < 0.01


def test_a_small_photo_is_scaled_up_to_the_minimum_side(dashscope_fake):
    photo = accept_upload(encode(street_scene(300, 200).image))

    edited = erase_people(photo)

    call = dashscope_fake.generation_calls[0]
    _, data = sent_image(call)
    with Image.open(io.BytesIO(data)) as sent:
        assert sent.size == (576, 384)
    assert call.json()["parameters"]["size"] == "768*512"
    assert (edited.width, edited.height) == (768, 512)


def test_a_transparent_photo_is_sent_flattened_on_white(dashscope_fake):
    image = street_scene(800, 600).image.convert("RGBA")
    image.putalpha(Image.new("L", image.size, 0).resize(image.size))
    image.paste((10, 20, 30, 255), (300, 200, 500, 400))
    photo = accept_upload(encode(image, "PNG"))
    assert photo.has_alpha

    erase_people(photo)

    media_type, data = sent_image(dashscope_fake.generation_calls[0])
    assert media_type == "image/jpeg"
    with Image.open(io.BytesIO(data)) as sent:
        pixels = sent.convert("RGB")
        assert min(pixels.getpixel((50, 50))) > 245  # transparent → white
        assert max(pixels.getpixel((400, 300))) < 45


@pytest.mark.parametrize(
    ("size", "message"), [((100, 400), "too_small"), ((3000, 300), "too_narrow")], ids=["too-small", "too-narrow"]
)
def test_photos_dashscope_cannot_take_are_refused_before_any_call(dashscope_fake, size, message):
    photo = accept_upload(encode(Image.new("RGB", size, (120, 130, 140))))

    with pytest.raises(ProviderError) as caught:
        erase_people(photo)

    assert caught.value.message == message
    assert not caught.value.retryable
    assert dashscope_fake.requests == []


@pytest.mark.parametrize(
    ("photo", "size"),
    [
        ((4000, 3000), (2048, 1536)),
        ((3000, 4000), (1536, 2048)),
        ((2048, 2048), (2048, 2048)),
        ((1000, 750), (1000, 750)),
        ((600, 400), (768, 512)),
        ((3000, 1000), (2048, 683)),
        ((4000, 1000), (2048, 512)),
        ((6000, 1000), None),  # beyond 4:1 no size keeps the aspect ratio: the model keeps the input's
    ],
)
def test_the_output_size_is_the_largest_useful_for_the_aspect_ratio(photo, size):
    assert client.output_size(*photo) == size


def test_the_older_model_gets_no_size(dashscope_fake, settings):
    settings.DASHSCOPE_MODEL = "qwen-image-edit"

    edited = erase_people(accept_upload(encode(street_scene(1200, 800).image)))

    parameters = dashscope_fake.generation_calls[0].json()["parameters"]
    assert "size" not in parameters
    assert parameters["n"] == 1
    assert abs(edited.width / edited.height - 1.5) < 0.02  # about 1 MP in the photo's aspect ratio


def test_the_result_is_fetched_without_our_key_and_with_its_signature(dashscope_fake):
    erase_people(accept_upload(encode(street_scene(800, 600).image)))

    (download,) = dashscope_fake.downloads
    assert download.method == "GET"
    assert download.header("Authorization") is None
    assert set(download.query) == {"Expires", "OSSAccessKeyId", "Signature"}
    assert download.status == 200


def test_the_fake_result_storage_refuses_a_request_carrying_authorization(dashscope_fake):
    import requests

    url = dashscope_fake.publish(Image.new("RGB", (600, 400)))
    assert requests.get(url, timeout=5).status_code == 200
    assert requests.get(url, headers={"Authorization": "Bearer x"}, timeout=5).status_code == 403
