"""The DashScope crowd engine: one call at upload, a preview that is the composite the download
will be (at working size), and at unlock the full-resolution composite, which keeps the visitor's
own pixels where nobody was erased."""

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data

from segmentation import composite
from segmentation.engines import engine_named, engines_in_use
from segmentation.engines.base import EngineError
from segmentation.engines.dashscope import DashScopeCrowd
from segmentation.engines.sections import unpack_sections
from segmentation.intake import accept_upload
from segmentation.pixels import encode_jpeg
from tests.fakes.dashscope import encode, street_scene


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGBA" if im.mode == "RGBA" else "RGB"))


def region(pixels: np.ndarray, box) -> np.ndarray:
    left, top, right, bottom = box
    return pixels[top:bottom, left:right]


def packed_composite(carry: bytes) -> bytes:
    """The composite a DashScope carry packs beside its people."""
    return unpack_sections(b"DSC1", carry)["changes"]


def test_start_makes_one_call_and_previews_the_composite_at_working_size(dashscope_fake):
    scene = street_scene(3000, 2000)
    dashscope_fake.erase = scene.passers_by
    photo = accept_upload(encode(scene.image))

    draft = DashScopeCrowd().start(photo)

    assert len(dashscope_fake.generation_calls) == 1 and len(dashscope_fake.downloads) == 1
    assert draft.preview.size == (1024, 683)
    # Away from the erased passers-by the preview is the visitor's photo, not the model's redraw
    # (which the fake shifts by +2 in every channel).
    working = np.asarray(photo.open_reduced(composite.COMPARISON_LONG_SIDE))
    subject = scene.pixels(scene.subject, draft.preview.size)
    assert np.array_equal(region(np.asarray(draft.preview), subject), region(working, subject))
    for passer_by in scene.passers_by:
        left, top, right, bottom = scene.pixels(passer_by, draft.preview.size)
        assert region(np.asarray(draft.preview), (left + 5, top + 5, right - 5, bottom - 5)).mean() > 120
    assert draft.note == ""


def test_the_preview_shows_what_the_download_will_be(dashscope_fake):
    scene = street_scene(3000, 2000)
    dashscope_fake.erase = scene.passers_by
    dashscope_fake.blur = 1.0
    photo = accept_upload(encode(scene.image))
    engine = DashScopeCrowd()
    draft = engine.start(photo)

    result = engine.finish(photo, draft.carry)

    def shrunk(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB").resize(draft.preview.size, Image.Resampling.BOX)).astype(int)

    # What each of them changed in the visitor's photo, at preview size: the preview against the
    # working copy it was made from, the download against the photo encoded as the download is.
    in_preview = np.asarray(draft.preview).astype(int) - np.asarray(photo.open_reduced(1024)).astype(int)
    in_download = shrunk(result.data) - shrunk(encode_jpeg(photo.open(), quality=95))
    taken_in_preview = np.abs(in_preview).max(axis=2) > 12
    taken_in_download = np.abs(in_download).max(axis=2) > 12
    assert 0.05 < taken_in_preview.mean() < 0.11
    assert (taken_in_preview != taken_in_download).mean() < 0.005
    # The model's whole redrawn frame as the preview (blurred, colour-shifted) would be about 3 off.
    assert np.abs(in_preview - in_download).mean() < 0.5


def test_the_carry_keeps_only_the_models_pixels_that_the_download_needs(dashscope_fake):
    scene = street_scene(3000, 2000)
    dashscope_fake.erase = scene.passers_by
    photo = accept_upload(encode(scene.image))

    draft = DashScopeCrowd().start(photo)

    whole_frame = dashscope_fake.edit(photo.open(), (2048, 1365))
    changes, frame = composite.unpack(packed_composite(draft.carry))
    kept = np.asarray(frame).any(axis=2)
    assert 0.05 < kept.mean() < 0.2  # the two passers-by and their margins, not the frame
    assert np.array_equal(np.asarray(frame)[kept], np.asarray(whole_frame)[kept])
    assert changes.work_size == draft.preview.size


def test_nothing_removed_carries_no_frame(dashscope_fake):
    scene = street_scene(1600, 1200)
    dashscope_fake.erase = []
    photo = accept_upload(encode(scene.image))

    draft = DashScopeCrowd().start(photo)

    changes, frame = composite.unpack(packed_composite(draft.carry))
    assert frame is None and not changes.any
    assert len(packed_composite(draft.carry)) < 10_000
    assert np.array_equal(np.asarray(draft.preview), np.asarray(photo.open_reduced(composite.COMPARISON_LONG_SIDE)))


def png(image: Image.Image) -> bytes:
    return encode(image, "PNG")


@pytest.mark.parametrize(
    "carry",
    [
        b"PK\x03\x04 not really a zip",
        # The model's whole frame was never shipped as a carry, so it is not read as one.
        png(street_scene(800, 600).image),
    ],
    ids=["broken-zip", "whole-model-frame"],
)
def test_a_damaged_carry_fails_cleanly(carry):
    photo = accept_upload(encode(street_scene(800, 600).image))

    with pytest.raises(EngineError):
        DashScopeCrowd().finish(photo, carry)


def test_finish_keeps_the_subject_at_full_resolution_and_erases_the_passers_by(dashscope_fake):
    scene = street_scene(3000, 2000)
    dashscope_fake.erase = scene.passers_by
    photo = accept_upload(encode(scene.image))
    engine = DashScopeCrowd()
    draft = engine.start(photo)

    result = engine.finish(photo, draft.carry)

    assert (result.media_type, result.width, result.height) == ("image/jpeg", 3000, 2000)
    assert len(dashscope_fake.generation_calls) == 1  # unlocking never calls DashScope again
    out = decoded(result.data)
    # The subject is the original re-encoded once at quality 95: JPEG blocks with identical pixels
    # decode identically, so (away from the block next to a changed one) it matches exactly.
    expected = decoded(encode_jpeg(photo.open(), quality=95))
    left, top, right, bottom = scene.pixels(scene.subject)
    inner = (left + 32, top + 32, right - 32, bottom - 32)
    assert np.array_equal(region(out, inner), region(expected, inner))
    for passer_by in scene.passers_by:
        left, top, right, bottom = scene.pixels(passer_by)
        where = region(out, (left + 10, top + 10, right - 10, bottom - 10)).astype(int)
        assert where.mean() > 120  # the dark figure (about 37) is gone
        around = region(expected, (left - 40, top, left - 20, bottom)).astype(int)
        assert np.abs(where.mean(axis=(0, 1)) - around.mean(axis=(0, 1))).max() < 15


def test_nobody_removed_is_told_before_unlocking_and_gives_back_the_photo(dashscope_fake):
    scene = street_scene(1600, 1200)
    dashscope_fake.erase = []
    dashscope_fake.blur = 0.8
    photo = accept_upload(encode(scene.image))
    engine = DashScopeCrowd()

    draft = engine.start(photo)
    result = engine.finish(photo, draft.carry)

    assert "no one to remove" in draft.note
    assert result.data == encode_jpeg(photo.open(), quality=95)


def test_a_transparent_photo_stays_transparent(dashscope_fake):
    scene = street_scene(1200, 800)
    dashscope_fake.erase = scene.passers_by
    image = scene.image.convert("RGBA")
    alpha = np.full((800, 1200), 255, np.uint8)
    alpha[:100] = 0
    image.putalpha(Image.fromarray(alpha))
    photo = accept_upload(encode(image, "PNG"))
    engine = DashScopeCrowd()

    draft = engine.start(photo)
    result = engine.finish(photo, draft.carry)

    assert draft.preview.mode == "RGBA"
    assert result.media_type == "image/png"
    out = decoded(result.data)
    assert np.array_equal(out[..., 3], alpha)
    subject = scene.pixels(scene.subject)
    assert np.array_equal(region(out, subject), region(np.asarray(photo.open()), subject))


def test_a_real_portrait_keeps_the_person_exactly(dashscope_fake):
    photo = accept_upload(encode(Image.fromarray(skimage_data.astronaut()), "PNG"))
    assert photo.media_type == "image/jpeg"  # intake rebuilds an opaque PNG as JPEG
    dashscope_fake.erase = [(0.66, 0.0, 0.9, 0.55)]  # the shuttle model behind her
    engine = DashScopeCrowd()

    result = engine.finish(photo, engine.start(photo).carry)

    out, expected = decoded(result.data), decoded(encode_jpeg(photo.open(), quality=95))
    face = (112, 32, 288, 256)
    assert np.array_equal(region(out, face), region(expected, face))
    shuttle = (360, 40, 440, 260)
    assert np.abs(region(out, shuttle).astype(int) - region(expected, shuttle)).mean() > 20


def test_finish_without_the_models_frame_fails_cleanly():
    photo = accept_upload(encode(street_scene(800, 600).image))

    with pytest.raises(EngineError):
        DashScopeCrowd().finish(photo, None)


def test_a_provider_error_reaches_the_job_as_an_engine_error(dashscope_fake):
    dashscope_fake.moderate_next()

    with pytest.raises(EngineError) as caught:
        DashScopeCrowd().start(accept_upload(encode(street_scene(800, 600).image)))

    assert "content checks" in caught.value.visitor_message
    assert not caught.value.retryable and "DataInspectionFailed" in caught.value.operator_detail


def test_a_message_with_a_value_is_filled_in(dashscope_fake):
    with pytest.raises(EngineError) as caught:
        DashScopeCrowd().start(accept_upload(encode(Image.new("RGB", (100, 400)))))

    assert "at least 128 pixels" in caught.value.visitor_message
    assert dashscope_fake.requests == []


@pytest.mark.parametrize(
    ("setting", "key", "expected"),
    [
        ("auto", "sk-set", "dashscope"),
        ("auto", "", "local"),
        ("dashscope", "sk-set", "dashscope"),
        ("local", "sk-set", "local"),
        ("local", "", "local"),
    ],
)
def test_the_crowd_engine_follows_settings(settings, setting, key, expected):
    settings.CROWD_ENGINE = setting
    settings.DASHSCOPE_API_KEY = key

    assert engines_in_use()["crowd"] == expected
    engine = engine_named("crowd", expected)
    assert isinstance(engine, DashScopeCrowd) is (expected == "dashscope")
