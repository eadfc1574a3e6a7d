"""The embedded crowd engine: passers-by (the astronaut again, smaller, at known places) are
erased from generated scenes, the main subject is left exactly as it was; the carry keeps everyone
found, so that the visitor can choose who stays (tests/test_local_crowd_choice.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from segmentation.engines import pose
from segmentation.engines.base import EngineError
from segmentation.engines.crowd import Crowd, Hole, LocalCrowd, kept_at_first, pack_crowd, unpack_crowd
from segmentation.engines.packing import PackedPerson
from segmentation.engines.people import Person
from segmentation.intake import accept_upload
from tests.test_local_cutout import SCENES, background, decode, encode, paste_person

WIDTH, HEIGHT = 1600, 1200
SUBJECT = (1000, 300, 200)  # height, left, top: a portrait, cut by the bottom edge


def crowd_scene(kind: str, *passers_by: tuple[int, int, int], seed: int = 5):
    """(photo pixels, the same scene without anyone, subject mask, passers-by mask)."""
    empty = background(kind, WIDTH, HEIGHT, seed=seed)
    scene = empty.copy()
    subject = np.zeros((HEIGHT, WIDTH), bool)
    others = np.zeros((HEIGHT, WIDTH), bool)
    paste_person(scene, subject, *SUBJECT)
    for passer_by in passers_by:
        paste_person(scene, others, *passer_by)
    return scene, empty, subject, others & ~subject


def error(pixels: np.ndarray, truth: np.ndarray, where: np.ndarray) -> float:
    return float(np.abs(pixels.astype(np.int16) - truth)[where].mean())


@pytest.mark.parametrize("kind", SCENES)
def test_passer_by_is_erased_and_the_download_is_a_full_size_jpeg(kind):
    scene, empty, subject, passer_by = crowd_scene(kind, (300, 1250, 450))
    photo = accept_upload(encode(scene))
    engine = LocalCrowd()

    draft = engine.start(photo)
    result = engine.finish(photo, draft.carry)

    assert draft.note == ""
    assert (result.media_type, result.width, result.height) == ("image/jpeg", WIDTH, HEIGHT)
    erased = np.asarray(decode(result.data).convert("RGB"))
    original = np.asarray(photo.open())
    # Where the passer-by stood, the result must now look like the empty scene. Measured: the
    # error against the empty scene falls to 1–36 % of what it was (36 % where the person stood
    # across the ridge of hills, which the fill can only guess).
    assert error(erased, empty, passer_by) < 0.5 * error(original, empty, passer_by)
    # The subject only went through the final JPEG encode (quality 95).
    assert error(erased, original, subject) < 1.5


def test_subject_pixels_are_exactly_untouched():
    # A photo with transparency comes back as PNG, which is lossless, so the comparison can be
    # exact: one transparent pixel in a corner is enough.
    scene, empty, subject, passer_by = crowd_scene("landscape", (450, 1100, 700), (180, 60, 250))
    rgba = np.dstack([scene, np.full((HEIGHT, WIDTH), 255, np.uint8)])
    rgba[0, 0, 3] = 0
    photo = accept_upload(encode(rgba, "PNG"))
    assert photo.has_alpha
    engine = LocalCrowd()

    result = engine.finish(photo, engine.start(photo).carry)

    assert result.media_type == "image/png"
    erased = np.asarray(decode(result.data))
    original = np.asarray(photo.open())
    assert np.array_equal(erased[subject], original[subject])
    assert np.array_equal(erased[..., 3], original[..., 3])
    # Both passers-by, the one close to the subject and the small one far left, are gone.
    for person in split_people(passer_by):
        assert error(erased[..., :3], empty, person) < 0.5 * error(original[..., :3], empty, person)
    # Nothing changed far from them: within the erase margin and seam (1.4 % of the long side) and
    # what the outline adds (the pose model draws the astronaut's bust ~25 px past its cut-off end).
    changed = np.any(erased != original, axis=2)
    near = cv2.dilate(passer_by.astype(np.uint8), np.ones((121, 121), np.uint8)) > 0
    assert not changed[~near].any()


def split_people(mask: np.ndarray) -> list[np.ndarray]:
    count, labels = cv2.connectedComponents(mask.astype(np.uint8))
    return [labels == label for label in range(1, count) if np.count_nonzero(labels == label) > 1000]


def test_preview_already_shows_the_passer_by_gone():
    scene, empty, _subject, passer_by = crowd_scene("sky", (300, 1250, 450))
    photo = accept_upload(encode(scene))

    preview = LocalCrowd().start(photo).preview

    assert preview.mode == "RGB"
    size = preview.size

    def small(pixels: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))

    where = np.asarray(Image.fromarray(passer_by).resize(size, Image.Resampling.NEAREST))
    assert error(np.asarray(preview), small(empty), where) < 0.2 * error(small(scene), small(empty), where)


def test_nobody_else_gives_a_note_and_the_original_photo():
    scene, _empty, _subject, _nobody = crowd_scene("bricks")
    photo = accept_upload(encode(scene))
    engine = LocalCrowd()

    draft = engine.start(photo)
    result = engine.finish(photo, draft.carry)

    assert "no one" in draft.note
    assert [person.kept for person in engine.people(draft.carry)] == [True]
    assert result.data == photo.upright_bytes()[0]
    assert (result.media_type, result.width, result.height) == ("image/jpeg", WIDTH, HEIGHT)


def test_a_lost_carry_is_an_error_not_the_untouched_photo():
    scene, _empty, _subject, _passer_by = crowd_scene("sky", (300, 1250, 450))
    photo = accept_upload(encode(scene))

    with pytest.raises(EngineError) as caught:
        LocalCrowd().finish(photo, None)

    assert "upload it again" in caught.value.visitor_message


@pytest.mark.parametrize("kind", ["sky", "landscape", "colour fields"])
def test_nobody_at_all_is_refused_with_a_message(kind):
    photo = accept_upload(encode(background(kind, WIDTH, HEIGHT, seed=6)))

    with pytest.raises(EngineError) as caught:
        LocalCrowd().start(photo)

    assert "person" in caught.value.visitor_message


def fine_texture(pixels: np.ndarray, where: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image inside `where`, its outline left out."""
    grey = cv2.cvtColor(pixels[..., :3], cv2.COLOR_RGB2GRAY)
    laplacian = cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F, ksize=3)
    inside = cv2.erode(where.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return float(laplacian[inside].var())


@pytest.mark.parametrize("kind", ["bricks", "colour fields", "landscape"])
def test_the_fill_has_the_backgrounds_texture_not_a_smudge(kind):
    scene, empty, _subject, passer_by = crowd_scene(kind, (300, 1250, 450))
    photo = accept_upload(encode(scene))
    engine = LocalCrowd()

    draft = engine.start(photo)
    erased = np.asarray(decode(engine.finish(photo, draft.carry).data).convert("RGB"))

    # Where the fill is made (the preview is the working-size result): measured 0.8-1.1 of the
    # true background's fine texture by texture synthesis; the inpainting it replaced left
    # 0.02-0.3 (a smooth smudge).
    preview = np.asarray(draft.preview)

    def small(pixels: np.ndarray) -> np.ndarray:
        return cv2.resize(pixels, preview.shape[1::-1], interpolation=cv2.INTER_AREA)

    where = cv2.resize(passer_by.astype(np.uint8), preview.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
    assert error(preview, small(empty), where) < 0.5 * error(small(scene), small(empty), where)
    assert fine_texture(preview, where) >= 0.6 * fine_texture(small(empty), where)
    # At full size, where the upscaled fill alone keeps less than half of the noise (the grain
    # finer than the working size), the grain added back makes up for it.
    assert fine_texture(erased, passer_by) >= 0.6 * fine_texture(empty, passer_by)


def test_the_carry_keeps_each_persons_outline_and_whether_they_stay():
    scene, _empty, subject, passer_by = crowd_scene("landscape", (450, 1100, 700), (180, 60, 250))
    photo = accept_upload(encode(scene))

    crowd = unpack_crowd(LocalCrowd().start(photo).carry)

    def placed(person: PackedPerson) -> np.ndarray:
        mask = np.zeros(crowd.size[::-1], bool)
        height, width = person.mask.shape
        left, top = person.origin
        mask[top : top + height, left : left + width] = person.mask >= 128
        return cv2.resize(mask.astype(np.uint8), (WIDTH, HEIGHT), interpolation=cv2.INTER_NEAREST) > 0

    def overlap(a: np.ndarray, b: np.ndarray) -> float:
        return np.count_nonzero(a & b) / np.count_nonzero(a | b)

    kept = [placed(person) for person, stays in zip(crowd.people, crowd.kept, strict=True) if stays]
    erased = [placed(person) for person, stays in zip(crowd.people, crowd.kept, strict=True) if not stays]
    assert len(kept) == 1 and overlap(kept[0], subject) > 0.8
    truths = split_people(passer_by)
    assert len(erased) == len(truths) == 2
    for truth in truths:
        assert max(overlap(mask, truth) for mask in erased) > 0.6
    assert len(crowd.holes) == 2  # one per passer-by: they stand apart


def test_the_carry_round_trips_people_choices_and_holes():
    rng = np.random.default_rng(3)
    people = [
        PackedPerson((rng.random((40, 13)) * 255).astype(np.uint8), (5, 7), 0.9),
        PackedPerson((rng.random((30, 15)) * 255).astype(np.uint8), (30, 20), 0.6),
    ]
    columns, rows = np.meshgrid(np.arange(15), np.arange(30))
    fill = np.dstack([columns * 9, rows * 5, np.full((30, 15), 99)]).astype(np.uint8)
    hole = Hole.made((30, 20), (rng.random((30, 15)) * 255).astype(np.uint8), fill)

    back = unpack_crowd(pack_crowd(Crowd((120, 90), people, (True, False), [hole])))

    assert back.size == (120, 90) and back.kept == (True, False)
    for person, original in zip(back.people, people, strict=True):
        assert person.origin == original.origin and np.array_equal(person.mask, original.mask)
    (hole_back,) = back.holes
    assert hole_back.origin == (30, 20) and np.array_equal(hole_back.alpha, hole.alpha)
    assert np.abs(hole_back.fill.astype(int) - fill).mean() < 2  # JPEG at quality 95


def damaged_carries() -> list[bytes]:
    person = PackedPerson(np.full((40, 13), 255, np.uint8), (5, 7), 0.9)
    hole = Hole.made((30, 20), np.full((10, 10), 255, np.uint8), np.zeros((10, 10, 3), np.uint8))
    carry = pack_crowd(Crowd((120, 90), [person], (True,), [hole]))
    outside = pack_crowd(Crowd((120, 90), [person], (True,), [Hole((115, 20), hole.alpha, hole.jpeg)]))
    return [
        b"LCP2" + carry[4:],  # another engine's (or an older) carry
        carry[:-7],  # cut short
        carry[:30] + bytes(len(carry) - 30),  # hole and people zeroed
        carry[:8] + b"\x07" + carry[9:],  # a choice that is neither kept nor erased
        outside,  # a hole beyond the photo
        b"",
    ]


@pytest.mark.parametrize("carry", damaged_carries())
def test_a_damaged_carry_is_refused(carry):
    with pytest.raises(ValueError):
        unpack_crowd(carry)


def test_a_damaged_carry_is_an_error_for_the_visitor_not_a_crash():
    scene, _empty, _subject, _passer_by = crowd_scene("sky", (300, 1250, 450))
    photo = accept_upload(encode(scene))
    engine = LocalCrowd()
    carry = engine.start(photo).carry
    damaged = carry[: len(carry) // 2]

    for attempt in (
        lambda: engine.finish(photo, damaged),
        lambda: engine.people(damaged),
        lambda: engine.choose(photo, damaged, frozenset({0})),
    ):
        with pytest.raises(EngineError) as caught:
            attempt()
        assert "upload it again" in caught.value.visitor_message


def standing(left: int, height: int) -> Person:
    """Someone `height` pixels tall standing on the same ground (feet at y = 1100) of a 2400×1200
    working image, as the people finder reports a person: a third as wide as high."""
    width, top = height // 3, 1100 - height
    centre = left + width / 2
    points = np.tile(np.float32([centre, top + height / 2]), (33, 1))
    points[pose.NOSE] = (centre, top + 0.06 * height)
    points[[pose.LEFT_SHOULDER, pose.RIGHT_SHOULDER]] = (centre, top + 0.2 * height)
    points[[pose.LEFT_HIP, pose.RIGHT_HIP]] = (centre, top + 0.5 * height)
    return Person(np.full((height, width), 255, np.uint8), (left, top), 0.99, points, np.ones(33), height, (2400, 1200))


def test_at_first_the_subjects_group_stays_and_strangers_go():
    subject = standing(1100, 900)
    beside = standing(1420, 850)  # 20 px from the subject
    next_in_line = standing(1710, 850)
    end_of_line = standing(2000, 850)  # 600 px from the subject, but next to the one before
    child = standing(1390, 380)  # small, but touching the subject
    far = standing(100, 850)  # the subject's size, 700 px away: someone else on the street
    small = standing(800, 300)  # near, but far smaller: further back
    found = [far, small, child, end_of_line, next_in_line, beside, subject]

    kept = kept_at_first(found)

    assert kept == (False, False, True, True, True, True, True)
