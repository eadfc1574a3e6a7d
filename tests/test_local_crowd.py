"""The embedded crowd engine: passers-by (the astronaut again, smaller, at known places) are
erased from generated scenes, the main subject is left exactly as it was."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from segmentation.engines.base import EngineError
from segmentation.engines.local import LocalCrowd
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
    # Nothing changed far from them.
    changed = np.any(erased != original, axis=2)
    near = cv2.dilate(passer_by.astype(np.uint8), np.ones((81, 81), np.uint8)) > 0
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
    assert draft.carry == b""  # said explicitly: nothing to remove
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
