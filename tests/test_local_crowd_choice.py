"""Choosing who stays with the embedded crowd engine ([T2.2]): a kept person's pixels are the
original's, bit for bit; an erased person is gone; only holes that changed are filled again; the
download follows the last choice."""

from __future__ import annotations

import numpy as np
import pytest

from segmentation.engines import crowd as crowd_module
from segmentation.engines.base import EngineError
from segmentation.engines.crowd import LocalCrowd, unpack_crowd
from segmentation.intake import accept_upload
from tests.test_local_crowd import HEIGHT, WIDTH, crowd_scene, error, split_people
from tests.test_local_cutout import decode, encode

BIG, SMALL = (450, 1100, 700), (180, 60, 250)  # passers-by: height, left, top


@pytest.fixture(scope="module")
def scene():
    """A lossless photo (PNG, one transparent pixel) of the subject and two passers-by, the engine's
    first pass on it, and which of the people found is which."""
    pixels, empty, subject, passers_by = crowd_scene("landscape", BIG, SMALL)
    rgba = np.dstack([pixels, np.full((HEIGHT, WIDTH), 255, np.uint8)])
    rgba[0, 0, 3] = 0
    photo = accept_upload(encode(rgba, "PNG"))
    big, small = sorted(split_people(passers_by), key=np.count_nonzero, reverse=True)
    draft = LocalCrowd().start(photo)
    ids = {
        name: whose(LocalCrowd().people(draft.carry), truth)
        for name, truth in (("subject", subject), ("big", big), ("small", small))
    }
    return {"photo": photo, "empty": empty, "subject": subject, "big": big, "small": small, "draft": draft, "ids": ids}


def whose(people, truth: np.ndarray) -> int:
    """The id of the person whose box best matches the truth's."""
    rows, cols = np.nonzero(truth)
    x, y = cols.min() / WIDTH, rows.min() / HEIGHT
    w, h = (cols.max() + 1) / WIDTH - x, (rows.max() + 1) / HEIGHT - y

    def distance(person) -> float:
        return float(np.abs(np.subtract(person.box, (x, y, w, h))).max())

    best = min(people, key=distance)
    assert distance(best) < 0.05  # the box, as fractions of the photo, is where the person is
    return best.id


def pixels_of(result) -> np.ndarray:
    return np.asarray(decode(result.data))


def test_people_lists_everyone_found_with_the_automatic_choice(scene):
    people = LocalCrowd().people(scene["draft"].carry)

    assert [person.id for person in people] == list(range(len(people))) and len(people) == 3
    ids = scene["ids"]
    assert {person.id for person in people if person.kept} == {ids["subject"]}
    for person in people:
        x, y, w, h = person.box
        assert 0 <= x < x + w <= 1 and 0 <= y < y + h <= 1


def test_a_kept_passer_by_stays_bit_for_bit_and_the_other_is_erased(scene):
    engine, photo, ids = LocalCrowd(), scene["photo"], scene["ids"]

    chosen = engine.choose(photo, scene["draft"].carry, frozenset({ids["subject"], ids["big"]}))
    result = engine.finish(photo, chosen.carry)

    assert {person.id for person in engine.people(chosen.carry) if person.kept} == {ids["subject"], ids["big"]}
    assert result.media_type == "image/png"
    after, original = pixels_of(result), np.asarray(photo.open())
    for kept in (scene["subject"], scene["big"]):
        assert np.array_equal(after[kept], original[kept])
    small = scene["small"]
    assert error(after[..., :3], scene["empty"], small) < 0.5 * error(original[..., :3], scene["empty"], small)
    # The preview shows the same choice: the big passer-by is there again.
    assert chosen.note == ""
    preview = np.asarray(chosen.preview.convert("RGB"))
    first = np.asarray(scene["draft"].preview.convert("RGB"))
    assert not np.array_equal(preview, first)


def test_the_subject_can_be_erased_too(scene):
    engine, photo, ids = LocalCrowd(), scene["photo"], scene["ids"]

    chosen = engine.choose(photo, scene["draft"].carry, frozenset({ids["small"]}))
    after, original = pixels_of(engine.finish(photo, chosen.carry)), np.asarray(photo.open())

    assert np.array_equal(after[scene["small"]], original[scene["small"]])
    for gone in (scene["subject"], scene["big"]):
        assert error(after[..., :3], scene["empty"], gone) < 0.5 * error(original[..., :3], scene["empty"], gone)


def test_only_holes_that_changed_are_filled_again(scene, monkeypatch):
    engine, photo, ids = LocalCrowd(), scene["photo"], scene["ids"]
    filled = []
    fill_hole = crowd_module.fill_hole
    monkeypatch.setattr(crowd_module, "fill_hole", lambda *args: filled.append(args) or fill_hole(*args))
    first = unpack_crowd(scene["draft"].carry)
    assert len(first.holes) == 2

    # Keeping the big passer-by removes a hole and changes no other: nothing is synthesised.
    kept_big = engine.choose(photo, scene["draft"].carry, frozenset({ids["subject"], ids["big"]}))
    assert filled == []
    (small_hole,) = unpack_crowd(kept_big.carry).holes
    assert any(hole.origin == small_hole.origin and np.array_equal(hole.fill, small_hole.fill) for hole in first.holes)

    # Erasing them again fills one new hole; the small passer-by's fill is the one carried.
    again = engine.choose(photo, kept_big.carry, frozenset({ids["subject"]}))
    assert len(filled) == 1
    holes = unpack_crowd(again.carry).holes
    assert len(holes) == 2
    assert any(hole.origin == small_hole.origin and np.array_equal(hole.fill, small_hole.fill) for hole in holes)
    # The download for the same choice as at upload erases the same people.
    after = pixels_of(engine.finish(photo, again.carry))
    original = np.asarray(photo.open())
    assert np.array_equal(after[scene["subject"]], original[scene["subject"]])
    for gone in (scene["big"], scene["small"]):
        assert error(after[..., :3], scene["empty"], gone) < 0.5 * error(original[..., :3], scene["empty"], gone)


def test_keeping_everyone_gives_the_photo_back_unchanged(scene):
    engine, photo = LocalCrowd(), scene["photo"]

    chosen = engine.choose(photo, scene["draft"].carry, frozenset(range(3)))

    assert unpack_crowd(chosen.carry).holes == []
    assert engine.finish(photo, chosen.carry).data == photo.upright_bytes()[0]


@pytest.mark.parametrize("keep", [frozenset(), frozenset({3}), frozenset({0, -1})])
def test_a_choice_of_nobody_or_of_unknown_people_is_refused(scene, keep):
    with pytest.raises(EngineError):
        LocalCrowd().choose(scene["photo"], scene["draft"].carry, keep)


def test_a_lost_carry_cannot_be_chosen_from(scene):
    with pytest.raises(EngineError) as caught:
        LocalCrowd().choose(scene["photo"], None, frozenset({0}))
    assert "upload it again" in caught.value.visitor_message
