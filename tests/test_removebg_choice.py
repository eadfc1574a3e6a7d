"""Choosing who stays in a remove.bg cutout ([T2.2]): the people are found locally at upload, a
person remove.bg kept can be cut away, nobody it left out can be added back, and no choice, before
or after unlocking, costs another call."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.utils import translation
from PIL import Image

from segmentation.engines import engine_named, provider_people
from segmentation.engines.base import EngineError
from segmentation.engines.removebg import RemoveBgCutout
from segmentation.engines.sections import pack_sections, unpack_sections
from segmentation.intake import accept_upload
from segmentation.pixels import encode_png
from segmentation.providers import removebg
from tests.test_local_cutout import encode
from tests.test_people import scene_with

SIZE = (1536, 1152)
# (height, left, top): the subject, a companion beside her, and a small stranger behind, whom the
# fake remove.bg leaves out (LEFT_OUT, fractions of the frame).
PLACEMENTS = [(800, 200, 352), (760, 800, 392), (200, 1300, 300)]
LEFT_OUT = (1290 / 1536, 290 / 1152, 1510 / 1536, 510 / 1152)


@pytest.fixture
def scene():
    pixels, truths = scene_with(PLACEMENTS, kind="sky", size=SIZE)
    return accept_upload(encode(pixels)), truths


def alpha_of(image: Image.Image) -> np.ndarray:
    return np.asarray(image.getchannel("A"))


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGBA")


def at(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A truth mask (scene size) at another size, kept only where it is solid."""
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.BOX)) == 255


def mostly_opaque(alpha: np.ndarray) -> bool:
    """The fake's cutout has a few holes where the white suit is as light as the sky behind."""
    return (alpha > 200).mean() > 0.9


def by_position(engine, carry) -> list:
    """The people listed, left to right: subject, companion, stranger."""
    return sorted(engine.people(carry), key=lambda person: person.box[0])


def calls(fake) -> list[str]:
    return [request.fields["size"] for request in fake.requests]


@pytest.fixture
def started(removebg_fake, settings, scene):
    settings.REMOVEBG_FULL_RESULT = "on_unlock"
    removebg_fake.leave_out = [LEFT_OUT]
    photo, truths = scene
    engine = RemoveBgCutout()
    return engine, photo, truths, engine.start(photo)


def test_the_starting_choice_is_remove_bgs_own(started, removebg_fake):
    engine, _photo, truths, draft = started
    subject, companion, stranger = by_position(engine, draft.carry)
    assert (subject.kept, companion.kept, stranger.kept) == (True, True, False)
    # Boxes are fractions of the photo, around each person.
    rows, cols = np.nonzero(truths[1])
    x, y, w, h = companion.box
    assert abs(x - cols.min() / SIZE[0]) < 0.03 and abs(y - rows.min() / SIZE[1]) < 0.03
    assert abs(x + w - cols.max() / SIZE[0]) < 0.03
    # The preview is remove.bg's preview-size cutout as it came.
    assert calls(removebg_fake) == ["preview"]
    assert mostly_opaque(alpha_of(draft.preview)[at(truths[1], draft.preview.size)])


def test_a_companion_remove_bg_kept_can_be_cut_away_without_a_call(started, removebg_fake):
    engine, photo, truths, draft = started
    subject, companion, _stranger = by_position(engine, draft.carry)

    chosen = engine.choose(photo, draft.carry, frozenset({subject.id}))

    assert calls(removebg_fake) == ["preview"]  # no new call
    size = draft.preview.size
    before, after = np.asarray(draft.preview), np.asarray(chosen.preview)
    assert after.shape == before.shape
    # The companion is gone, the subject is untouched to the pixel (colour and alpha).
    assert alpha_of(chosen.preview)[at(truths[1], size)].max() == 0
    subject_pixels = at(truths[0], size)
    assert np.array_equal(before[subject_pixels], after[subject_pixels])
    assert [person.kept for person in by_position(engine, chosen.carry)] == [True, False, False]

    # And back again: the starting choice gives remove.bg's cutout exactly.
    again = engine.choose(photo, chosen.carry, frozenset({subject.id, companion.id}))
    assert np.array_equal(np.asarray(again.preview), before)
    assert calls(removebg_fake) == ["preview"]


def test_someone_remove_bg_left_out_cannot_be_added_back(started, removebg_fake):
    engine, photo, _truths, draft = started
    subject, _companion, stranger = by_position(engine, draft.carry)
    with pytest.raises(EngineError) as caught:
        engine.choose(photo, draft.carry, frozenset({subject.id, stranger.id}))
    assert "cannot add anyone it left out" in caught.value.visitor_message
    assert not caught.value.retryable
    with translation.override("zh-hans"), pytest.raises(EngineError) as in_chinese:
        engine.choose(photo, draft.carry, frozenset({stranger.id}))
    assert in_chinese.value.visitor_message != caught.value.visitor_message
    assert calls(removebg_fake) == ["preview"]


def test_the_unlock_follows_the_choice_and_a_later_choice_costs_nothing(started, removebg_fake):
    engine, photo, truths, draft = started
    subject, companion, _stranger = by_position(engine, draft.carry)
    chosen = engine.choose(photo, draft.carry, frozenset({subject.id}))

    result = engine.finish(photo, chosen.carry)

    assert calls(removebg_fake) == ["preview", "full"]  # the unlock's one call
    image = decoded(result.data)
    assert image.size == SIZE == (result.width, result.height)
    alpha = alpha_of(image)
    assert alpha[truths[1]].max() == 0  # the companion cut away at full size
    # The subject is remove.bg's full cutout, to the pixel: the carry now holds it raw.
    assert result.carry is not None
    raw = engine.finish(photo, engine.choose(photo, result.carry, frozenset({subject.id, companion.id})).carry)
    assert calls(removebg_fake) == ["preview", "full"]  # a changed choice after unlocking: no call
    raw_image = decoded(raw.data)
    assert mostly_opaque(alpha_of(raw_image)[truths[1]])  # the companion is back
    assert np.array_equal(np.asarray(image)[truths[0]], np.asarray(raw_image)[truths[0]])
    # The preview showed what the download is: compared at preview size.
    small = np.asarray(image.resize(chosen.preview.size, Image.Resampling.BOX).getchannel("A")).astype(int)
    assert np.abs(small - alpha_of(chosen.preview).astype(int)).mean() < 3
    # Unlocking at the starting choice gives remove.bg's result byte for byte.
    again = engine.finish(photo, engine.choose(photo, result.carry, frozenset({subject.id, companion.id})).carry)
    assert again.data == raw.data and again.carry is None
    assert calls(removebg_fake) == ["preview", "full"]


def test_upfront_makes_its_one_call_at_upload_and_none_for_choices(removebg_fake, settings, scene):
    settings.REMOVEBG_FULL_RESULT = "upfront"
    photo, truths = scene
    engine = RemoveBgCutout()
    draft = engine.start(photo)
    subject, companion = by_position(engine, draft.carry)[:2]

    chosen = engine.choose(photo, draft.carry, frozenset({companion.id}))
    result = engine.finish(photo, chosen.carry)

    assert calls(removebg_fake) == ["full"]
    alpha = alpha_of(decoded(result.data))
    assert alpha[truths[0]].max() == 0 and mostly_opaque(alpha[truths[1]])
    assert result.carry is None  # the carry holds the full cutout already


@pytest.mark.parametrize(
    "carry",
    [b"RBC1\0\0\0", b"RBC1cast\0\0\0\0\0\0\0\x10short", b"not a carry at all"],
    ids=["cut-short", "section-past-the-end", "foreign"],
)
def test_a_damaged_carry_fails_cleanly(carry, removebg_fake, scene):
    photo, _truths = scene
    engine = RemoveBgCutout()
    for step in (
        lambda: engine.people(carry),
        lambda: engine.choose(photo, carry, frozenset({0})),
        lambda: engine.finish(photo, carry),
    ):
        with pytest.raises(EngineError) as caught:
            step()
        assert "upload your photo again" in caught.value.visitor_message
    assert removebg_fake.requests == []


def test_a_carry_whose_choice_does_not_fit_its_people_is_refused(started):
    engine, photo, _truths, draft = started
    sections = unpack_sections(b"RBC1", draft.carry)
    cast = provider_people.unpack_cast(sections["cast"])
    sections["cast"] = sections["cast"][:-1]  # one person's flag fewer
    broken = pack_sections(b"RBC1", sections)
    assert len(cast.people) == 3
    with pytest.raises(EngineError):
        engine.people(broken)


def test_a_photo_in_which_the_finder_sees_nobody_offers_no_choice(removebg_fake):
    from tests.fakes.removebg import jpeg, portrait

    engine = RemoveBgCutout()
    draft = engine.start(accept_upload(jpeg(portrait(800, 600))))  # the fake's drawn shoulders
    assert engine.people(draft.carry) == []
    assert engine.finish(accept_upload(jpeg(portrait(800, 600))), draft.carry).width == 800


def test_cutting_away_someone_who_touches_the_subject_leaves_the_subject_whole(removebg_fake, settings):
    settings.REMOVEBG_FULL_RESULT = "on_unlock"
    # Eight pixels apart at the shoulders: their outlines' reaches overlap.
    pixels, (subject_truth, companion_truth) = scene_with([(800, 200, 352), (760, 740, 392)], kind="sky", size=SIZE)
    photo = accept_upload(encode(pixels))
    engine = RemoveBgCutout()
    draft = engine.start(photo)
    subject, companion = by_position(engine, draft.carry)
    assert subject.kept and companion.kept

    chosen = engine.choose(photo, draft.carry, frozenset({subject.id}))

    size = chosen.preview.size
    visible = at(subject_truth & ~companion_truth, size)
    assert np.array_equal(np.asarray(chosen.preview)[visible], np.asarray(draft.preview)[visible])
    # Next to the subject the subject's reach wins; the rest of the companion is gone.
    beyond = companion_truth.copy()
    # (Its reach is 1.2 % of the long side plus a 0.6 % seam; the finder's outline of the subject may
    # itself run a little past the drawn figure, at a hand.)
    beyond[:, : np.nonzero(subject_truth)[1].max() + 60] = False
    assert alpha_of(chosen.preview)[at(beyond, size)].max() == 0


def test_what_someone_cut_away_holds_goes_with_them(removebg_fake, settings):
    settings.REMOVEBG_FULL_RESULT = "on_unlock"
    pixels, (subject_truth, companion_truth) = scene_with(PLACEMENTS[:2], kind="sky", size=SIZE)
    # A dark bag hanging from the companion's right side, well beyond the finder's outline of her.
    right = np.nonzero(companion_truth[900])[0].max()
    bag = np.zeros(companion_truth.shape, bool)
    bag[880:1000, right - 10 : right + 110] = True
    pixels[bag] = (60, 40, 30)
    photo = accept_upload(encode(pixels))
    engine = RemoveBgCutout()
    draft = engine.start(photo)
    subject, companion = by_position(engine, draft.carry)
    size = draft.preview.size
    assert mostly_opaque(alpha_of(draft.preview)[at(bag, size)])

    chosen = engine.choose(photo, draft.carry, frozenset({subject.id}))

    assert alpha_of(chosen.preview)[at(bag | companion_truth, size)].max() == 0


def test_without_credits_the_embedded_preview_offers_no_choice(removebg_fake, scene):
    photo, _truths = scene
    removebg_fake.balance = 0.0
    engine = RemoveBgCutout()
    draft = engine.start(photo)
    assert draft.carry is None and engine.people(draft.carry) == []
    with pytest.raises(EngineError):
        engine.choose(photo, draft.carry, frozenset({0}))
    assert removebg_fake.requests == []


def test_a_job_started_before_choices_still_unlocks_without_a_call(removebg_fake, scene):
    photo, _truths = scene
    old_carry = encode_png(removebg.cut_out(photo, "full"))  # an upfront job's carry was the result
    engine = RemoveBgCutout()
    assert engine.people(old_carry) == []
    assert engine.finish(photo, old_carry).data == old_carry
    assert calls(removebg_fake) == ["full"]


@pytest.mark.parametrize("mode, carried", [("on_unlock", ["preview", "full"]), ("upfront", ["full"])])
def test_an_id_photo_offers_no_choice_and_looks_for_nobody(removebg_fake, settings, scene, monkeypatch, mode, carried):
    settings.REMOVEBG_FULL_RESULT = mode
    photo, _truths = scene
    cutout = engine_named("idphoto", "removebg", "cn-1inch").cutout
    assert isinstance(cutout, RemoveBgCutout) and not cutout.offers_choice

    def no_finding(*args, **kwargs):
        raise AssertionError("an ID photo's cutout looked for people")

    monkeypatch.setattr(provider_people, "find", no_finding)
    draft = cutout.start(photo)
    assert cutout.people(draft.carry) == []
    result = cutout.finish(photo, draft.carry)
    assert (result.width, result.height) == SIZE and result.carry is None
    assert calls(removebg_fake) == carried
