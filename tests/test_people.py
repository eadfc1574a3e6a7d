"""The people finder: real people found whole, where they are; photos without anyone give nobody;
each person's outline survives packing into a job's carry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from segmentation.engines import group
from segmentation.engines.packing import pack_people, unpack_people
from segmentation.engines.people import Person, find_people, merge_duplicates
from tests.test_local_cutout import background, iou, paste_person


def scene_with(placements: list[tuple[int, int, int]], kind: str = "landscape", size=(1536, 1152), seed: int = 0):
    """A generated scene with the astronaut pasted at each (height, left, top); its truth per person."""
    width, height = size
    pixels = background(kind, width, height, seed=seed)
    truths = []
    for placement in placements:
        truth = np.zeros((height, width), bool)
        paste_person(pixels, truth, *placement)
        truths.append(truth)
    return pixels, truths


def test_a_person_in_a_generated_scene_is_found_with_a_tight_outline():
    pixels, (truth,) = scene_with([(900, 400, 252)])
    (person,) = find_people(pixels)
    assert person.score > 0.9
    assert iou(person.full_mask() >= 128, truth) > 0.93
    rows, cols = np.nonzero(truth)
    left, top, right, bottom = person.box
    assert abs(left - cols.min()) < 40 and abs(right - cols.max()) < 40 and abs(top - rows.min()) < 40


def test_two_people_side_by_side_are_two_people_and_each_outline_is_their_own():
    pixels, truths = scene_with([(700, 100, 452), (700, 800, 452)], kind="sky")
    found = sorted(find_people(pixels), key=lambda person: person.box[0])
    assert len(found) == 2
    for person, truth in zip(found, truths, strict=True):
        assert iou(person.full_mask() >= 128, truth) > 0.9


@pytest.mark.parametrize("kind", ["sky", "landscape", "bricks", "colour fields"])
def test_generated_scenes_without_anyone_have_nobody(kind):
    assert find_people(background(kind, 1536, 1152, seed=5)) == []


@pytest.mark.parametrize("name", ["coffee", "rocket", "chelsea", "immunohistochemistry"])
def test_real_photos_without_people_have_nobody(name):
    assert find_people(getattr(data, name)()) == []


def test_real_photos_of_people_have_them():
    (astronaut,) = find_people(data.astronaut())
    assert astronaut.box[0] < 40 and astronaut.box[2] > 300  # her shoulders span the left of the photo
    (cameraman,) = find_people(np.dstack([data.camera()] * 3))
    assert cameraman.area > 0.2 * 512 * 512


def test_a_leaning_person_is_outlined_in_a_crop_turned_with_them():
    pixels, (truth,) = scene_with([(800, 368, 176)], kind="sky")
    turn = cv2.getRotationMatrix2D((768, 576), 30, 1.0)
    leaning = cv2.warpAffine(pixels, turn, (1536, 1152), borderMode=cv2.BORDER_REFLECT)
    truth = cv2.warpAffine(truth.astype(np.uint8), turn, (1536, 1152), flags=cv2.INTER_NEAREST) > 0
    (person,) = find_people(leaning)
    assert iou(person.full_mask() >= 128, truth) > 0.85


def test_the_group_keeps_companions_and_drops_a_small_passer_by():
    pixels, truths = scene_with([(800, 200, 352), (760, 800, 392), (200, 1300, 300)], kind="sky")
    found = find_people(pixels)
    assert len(found) == 3
    kept = group.subject_group(found)
    kept_mask = np.zeros(truths[0].shape, bool)
    for person in kept:
        kept_mask |= person.full_mask() >= 128
    assert iou(kept_mask, truths[0] | truths[1]) > 0.85
    assert np.count_nonzero(kept_mask & truths[2]) < 0.1 * np.count_nonzero(truths[2])


def test_a_fragment_of_a_stranger_at_the_frame_edge_is_not_part_of_the_group():
    # The subject in the middle; someone of the same size cut by the right edge, a third showing.
    pixels, truths = scene_with([(900, 450, 252), (900, 1536 - 300, 252)], kind="landscape")
    kept = group.subject_group(find_people(pixels))
    kept_mask = np.zeros(truths[0].shape, bool)
    for person in kept:
        kept_mask |= person.full_mask() >= 128
    assert iou(kept_mask, truths[0]) > 0.9


def reading(top: int, bottom: int, score: float) -> Person:
    """A person read as the outline of rows top..bottom of one 100 px wide body."""
    mask = np.full((bottom - top, 100), 255, np.uint8)
    return Person(mask, (200, top), score, np.zeros((33, 2)), np.ones(33), bottom - top, (800, 600))


def test_of_two_sure_readings_of_one_body_the_larger_stays():
    # A detector box around a walker's upper body is read as a small whole person, as surely as
    # the whole walker; kept first, the walker's legs were left out (and stayed in a crowd photo).
    upper_body, whole = reading(100, 250, 0.99991), reading(100, 400, 0.99987)
    assert merge_duplicates([upper_body, whole]) == [whole]
    # An unsure reading never replaces a sure one, larger or not.
    unsure = reading(100, 400, 0.6)
    assert merge_duplicates([upper_body, unsure]) == [upper_body]
    # People side by side are not readings of one body.
    beside = Person(
        np.full((300, 100), 255, np.uint8), (400, 100), 0.99, np.zeros((33, 2)), np.ones(33), 300, (800, 600)
    )
    assert merge_duplicates([whole, beside]) == [whole, beside]


def test_people_survive_packing_for_the_carry():
    pixels, _truths = scene_with([(700, 100, 452), (700, 800, 452)], kind="sky")
    found = find_people(pixels)
    packed = pack_people((1536, 1152), found)
    assert len(packed) < 40_000 * len(found)
    size, unpacked = unpack_people(packed)
    assert size == (1536, 1152) and len(unpacked) == len(found)
    for person, again in zip(found, unpacked, strict=True):
        assert np.array_equal(person.mask, again.mask) and person.origin == again.origin
        assert again.score == pytest.approx(person.score, abs=1e-4)
    with pytest.raises(ValueError):
        unpack_people(packed[:-5])
    with pytest.raises(ValueError):
        unpack_people(b"XXXX" + packed[4:])
