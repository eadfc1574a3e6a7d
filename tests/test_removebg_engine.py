"""RemoveBgCutout: what a job costs in credits and what it gives the visitor, in both cost modes."""

import io
import threading

import numpy as np
import pytest
from django.utils import translation
from PIL import Image

from segmentation.engines import engine_named, engines_in_use
from segmentation.engines.base import Draft, EngineError, Result
from segmentation.engines.removebg import RemoveBgCutout
from segmentation.intake import accept_upload
from segmentation.previews import PREVIEW_MAX_PIXELS
from segmentation.providers import removebg
from tests.fakes.removebg import jpeg, portrait


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def assert_cut_out(image: Image.Image) -> None:
    """The fake's portrait: opaque shoulders at the bottom centre, transparent corners."""
    assert image.mode == "RGBA"
    width, height = image.size
    assert image.getpixel((width // 2, height - 3))[3] == 255
    assert image.getpixel((3, 3))[3] == 0 and image.getpixel((width - 3, 3))[3] == 0
    red, green, blue, _ = image.getpixel((width // 2, height - 3))
    assert max(red, green, blue) < 80  # the colour survived along with the alpha


@pytest.fixture
def credits():
    """Credits charged by the client during the test."""
    start = removebg.credits_charged()
    return lambda: removebg.credits_charged() - start


def test_preview_first_pays_a_quarter_at_upload_and_one_at_unlock(removebg_fake, settings, credits):
    settings.REMOVEBG_FULL_RESULT = "on_unlock"
    photo = accept_upload(jpeg(portrait(1600, 1200)))
    engine = RemoveBgCutout()

    draft = engine.start(photo)
    assert isinstance(draft, Draft) and draft.carry is not None  # the people and the preview cutout
    assert draft.preview.width * draft.preview.height <= 250_000
    assert_cut_out(draft.preview)
    assert [r.fields["size"] for r in removebg_fake.requests] == ["preview"]
    assert credits() == 0.25

    result = engine.finish(photo, draft.carry)
    assert isinstance(result, Result) and result.media_type == "image/png"
    assert (result.width, result.height) == (1600, 1200)
    image = decode(result.data)
    assert image.format == "PNG" and image.size == (1600, 1200)
    assert_cut_out(image)
    assert [r.fields["size"] for r in removebg_fake.requests] == ["preview", "full"]
    assert credits() == 1.25 == removebg_fake.credits_charged
    # The job keeps the raw full cutout: unlocking again (a changed choice) costs nothing.
    assert result.carry is not None and result.data in result.carry
    assert engine.finish(photo, result.carry).data == result.data
    assert credits() == 1.25


def test_only_unlocked_jobs_pay_the_full_credit(removebg_fake, settings, credits):
    settings.REMOVEBG_FULL_RESULT = "on_unlock"
    engine = RemoveBgCutout()
    photos = [accept_upload(jpeg(portrait(800, 600 + i))) for i in range(4)]
    drafts = [engine.start(photo) for photo in photos]
    engine.finish(photos[0], drafts[0].carry)  # one visitor in four unlocks
    assert credits() == 4 * 0.25 + 1


def test_failed_unlock_costs_nothing(removebg_fake, settings, credits):
    settings.REMOVEBG_FULL_RESULT = "on_unlock"
    engine = RemoveBgCutout()
    photo = accept_upload(jpeg(portrait(800, 600)))
    draft = engine.start(photo)
    removebg_fake.out_of_credits = True
    with pytest.raises(EngineError) as caught:
        engine.finish(photo, draft.carry)
    assert caught.value.retryable  # the job runner gives the code back
    assert credits() == 0.25


def test_no_person_fails_at_upload_for_free(removebg_fake, credits):
    plain = accept_upload(jpeg(Image.new("RGB", (600, 400), (128, 128, 128))))
    with pytest.raises(EngineError) as caught:
        RemoveBgCutout().start(plain)
    assert caught.value.visitor_message.startswith("We could not find a person in this photo")
    assert not caught.value.retryable
    assert "unknown_foreground" in caught.value.operator_detail and credits() == 0


def test_the_visitor_reads_the_failure_in_the_jobs_language(removebg_fake):
    # The provider's table holds lazy translations: the engine renders them in the active language.
    removebg_fake.fail_next(503, times=3)
    with translation.override("zh-hans"), pytest.raises(EngineError) as caught:
        RemoveBgCutout().start(accept_upload(jpeg(portrait(400, 300))))
    with translation.override("zh-hans"):
        expected = str(removebg.MESSAGES["unavailable"])
    assert caught.value.visitor_message == expected != str(removebg.MESSAGES["unavailable"])
    assert caught.value.retryable and "remove.bg 503" in caught.value.operator_detail


def test_upfront_pays_one_credit_at_upload_and_nothing_at_unlock(removebg_fake, settings, credits):
    settings.REMOVEBG_FULL_RESULT = "upfront"
    photo = accept_upload(jpeg(portrait(1600, 1200)))
    engine = RemoveBgCutout()

    draft = engine.start(photo)
    assert [r.fields["size"] for r in removebg_fake.requests] == ["full"]
    assert draft.preview.width * draft.preview.height <= PREVIEW_MAX_PIXELS
    assert_cut_out(draft.preview)
    assert credits() == 1

    result = engine.finish(photo, draft.carry)
    assert len(removebg_fake.requests) == 1  # no second call
    assert result.data in draft.carry and result.carry is None  # the carry held the result
    assert (result.width, result.height, result.media_type) == (1600, 1200, "image/png")
    assert_cut_out(decode(result.data))
    assert credits() == 1


def test_a_job_keeps_the_mode_it_started_with(removebg_fake, settings):
    settings.REMOVEBG_FULL_RESULT = "upfront"
    photo = accept_upload(jpeg(portrait(800, 600)))
    engine = RemoveBgCutout()
    draft = engine.start(photo)
    settings.REMOVEBG_FULL_RESULT = "on_unlock"  # the operator changes the setting meanwhile
    engine.finish(photo, draft.carry)
    assert [r.fields["size"] for r in removebg_fake.requests] == ["full"]


def test_above_10_megapixels_the_zip_is_joined_into_a_full_size_png(removebg_fake, settings):
    settings.REMOVEBG_FULL_RESULT = "on_unlock"
    photo = accept_upload(jpeg(portrait(4000, 3000)))  # 12 MP: beyond remove.bg's PNG cap
    result = RemoveBgCutout().finish(photo, None)
    request = removebg_fake.requests[-1]
    assert request.fields["format"] == "zip"
    assert (result.width, result.height) == (4000, 3000)
    image = decode(result.data)
    assert image.format == "PNG" and image.size == (4000, 3000)
    assert_cut_out(image)


def test_full_result_is_capped_at_25_megapixels_and_reports_its_real_size(removebg_fake, settings):
    settings.REMOVEBG_FULL_RESULT = "on_unlock"
    photo = accept_upload(jpeg(portrait(6000, 5000)))  # 30 MP
    result = RemoveBgCutout().finish(photo, None)
    assert result.width * result.height <= 25_000_000
    assert result.width < 6000 and abs(result.width / result.height - 1.2) < 0.001
    request = removebg_fake.requests[-1]
    assert request.fields == {"size": "full", "type": "person", "format": "zip"}
    assert request.status == 200
    image = decode(result.data)
    assert image.size == (result.width, result.height)
    assert_cut_out(image)


def test_concurrent_jobs_are_all_counted(removebg_fake, credits):
    photo = accept_upload(jpeg(portrait(600, 400)))
    engine = RemoveBgCutout()
    errors = []

    def visitor():
        try:
            engine.start(photo)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=visitor) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(removebg_fake.requests) == 8
    assert credits() == 2.0 == removebg_fake.credits_charged


# --- which engine cuts out ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "choice, key, expected",
    [
        ("auto", "a-key", "removebg"),
        ("auto", "", "local"),
        ("removebg", "a-key", "removebg"),
        ("local", "a-key", "local"),
    ],
)
def test_settings_choose_the_cutout_engine(settings, choice, key, expected):
    settings.BACKGROUND_ENGINE = choice
    settings.REMOVEBG_API_KEY = key
    assert engines_in_use()["cutout"] == expected
    if expected == "removebg":
        assert isinstance(engine_named("cutout", expected), RemoveBgCutout)


@pytest.mark.parametrize("choice, key", [("auto", ""), ("local", "a-key")])
def test_without_remove_bg_the_local_engine_cuts_out(settings, choice, key):
    pytest.importorskip("segmentation.engines.local")
    settings.BACKGROUND_ENGINE = choice
    settings.REMOVEBG_API_KEY = key
    from segmentation.engines.local import LocalCutout

    assert engines_in_use()["cutout"] == "local"
    assert isinstance(engine_named("cutout", "local"), LocalCutout)


def test_the_removebg_engine_talks_to_the_configured_service(removebg_fake, settings):
    settings.BACKGROUND_ENGINE = "auto"
    engine_named("cutout", engines_in_use()["cutout"]).start(accept_upload(jpeg(portrait(400, 300))))
    assert removebg_fake.requests[0].header("X-API-Key") == removebg_fake.api_key


def test_preview_pixels_match_the_photo(removebg_fake):
    # The cutout is of this photo, not some stock image: its colours line up with the original.
    original = portrait(1600, 1200)
    draft = RemoveBgCutout().start(accept_upload(jpeg(original)))
    small = np.asarray(original.resize(draft.preview.size)).astype(int)
    cutout = np.asarray(draft.preview).astype(int)
    opaque = cutout[..., 3] == 255
    assert opaque.mean() > 0.2
    assert np.abs(cutout[..., :3][opaque] - small[opaque]).mean() < 12
