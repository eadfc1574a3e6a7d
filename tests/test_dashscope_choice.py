"""Choosing who stays in a DashScope crowd removal ([T2.2]): the people are found locally at upload,
a passer-by the model erased can be brought back with their own pixels, and no choice costs another
call. Erasing someone the model left (the local fill): tests/test_dashscope_choice_fill.py."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from segmentation import composite
from segmentation.engines.base import EngineError
from segmentation.engines.dashscope import DashScopeCrowd
from segmentation.engines.sections import pack_sections, unpack_sections
from segmentation.intake import accept_upload
from segmentation.pixels import encode_jpeg
from tests.test_local_cutout import encode
from tests.test_people import scene_with

SIZE = (1536, 1152)
# (height, left, top): the subject in the middle, a passer-by to each side.
PLACEMENTS = [(800, 368, 352), (300, 40, 300), (300, 1200, 340)]


def box_of(truth: np.ndarray, margin: int = 12) -> tuple[float, float, float, float]:
    """The rectangle the fake model erases around someone: their outline's box plus a margin."""
    rows, cols = np.nonzero(truth)
    height, width = truth.shape
    return (
        (cols.min() - margin) / width,
        (rows.min() - margin) / height,
        (cols.max() + margin) / width,
        (rows.max() + margin) / height,
    )


def inside(truth: np.ndarray, size: tuple[int, int], margin: int) -> np.ndarray:
    """`truth` at `size`, shrunk by `margin` pixels there."""
    resized = cv2.resize(truth.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    return cv2.erode(resized, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)) > 0


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB")).astype(int)


@pytest.fixture
def started(dashscope_fake):
    pixels, truths = scene_with(PLACEMENTS, kind="sky", size=SIZE)
    dashscope_fake.erase = [box_of(truths[1]), box_of(truths[2])]
    photo = accept_upload(encode(pixels))
    engine = DashScopeCrowd()
    return engine, photo, truths, engine.start(photo)


def by_position(engine, carry) -> list:
    """Subject, left passer-by, right passer-by."""
    people = sorted(engine.people(carry), key=lambda person: person.box[0])
    left, subject, right = people
    return [subject, left, right]


def test_the_starting_choice_is_the_models_own(started, dashscope_fake):
    engine, _photo, _truths, draft = started
    subject, left, right = by_position(engine, draft.carry)
    assert (subject.kept, left.kept, right.kept) == (True, False, False)
    assert len(dashscope_fake.generation_calls) == 1


def test_a_passer_by_the_model_erased_can_be_brought_back_without_a_call(started, dashscope_fake):
    engine, photo, truths, draft = started
    subject, left, _right = by_position(engine, draft.carry)

    chosen = engine.choose(photo, draft.carry, frozenset({subject.id, left.id}))

    assert len(dashscope_fake.generation_calls) == 1 and len(dashscope_fake.downloads) == 1
    working = np.asarray(photo.open_reduced(composite.COMPARISON_LONG_SIDE))
    preview, before = np.asarray(chosen.preview), np.asarray(draft.preview)
    size = chosen.preview.size
    # The passer-by brought back is the visitor's own pixels; the subject too; the other
    # passer-by stays erased exactly as the model's answer had it.
    for kept in (truths[0], truths[1]):
        where = inside(kept, size, 0)
        assert np.array_equal(preview[where], working[where])
    gone = inside(truths[2], size, 0)
    assert np.array_equal(preview[gone], before[gone])
    assert np.abs(preview[gone].astype(int) - working[gone]).mean() > 30
    assert [person.kept for person in by_position(engine, chosen.carry)] == [True, True, False]
    assert chosen.note == ""


def test_the_download_follows_the_choice(started, dashscope_fake):
    engine, photo, truths, draft = started
    subject, left, right = by_position(engine, draft.carry)
    chosen = engine.choose(photo, draft.carry, frozenset({subject.id, left.id}))

    result = engine.finish(photo, chosen.carry)

    assert (result.width, result.height) == SIZE
    out, original = decoded(result.data), decoded(encode_jpeg(photo.open(), quality=95))
    # Away from JPEG blocks next to a changed one, the kept people are the original re-encoded.
    for kept in (truths[0], truths[1]):
        where = inside(kept, SIZE, 24)
        assert np.array_equal(out[where], original[where])
    gone = inside(truths[2], SIZE, 4)
    assert np.abs(out[gone] - original[gone]).mean() > 30
    # Everyone kept: the download is the photo itself, and the visitor is told before unlocking.
    everyone = engine.choose(photo, chosen.carry, frozenset({subject.id, left.id, right.id}))
    assert "everyone kept" in everyone.note
    assert engine.finish(photo, everyone.carry).data == encode_jpeg(photo.open(), quality=95)
    # The starting choice again: the model's answer as found at upload.
    again = engine.choose(photo, everyone.carry, frozenset({subject.id}))
    assert engine.finish(photo, again.carry).data == engine.finish(photo, draft.carry).data
    assert len(dashscope_fake.generation_calls) == 1


def test_a_carry_with_damaged_people_is_refused(started):
    engine, photo, _truths, draft = started
    sections = unpack_sections(b"DSC1", draft.carry)
    for broken in (
        pack_sections(b"DSC1", {**sections, "cast": sections["cast"][:-1]}),
        pack_sections(b"DSC1", {"changes": sections["changes"]}),
        draft.carry[:-100],
    ):
        with pytest.raises(EngineError):
            engine.people(broken)
        with pytest.raises(EngineError):
            engine.choose(photo, broken, frozenset({0}))
        with pytest.raises(EngineError):
            engine.finish(photo, broken)


def test_a_job_started_before_choices_still_unlocks(dashscope_fake):
    pixels, truths = scene_with(PLACEMENTS, kind="sky", size=SIZE)
    dashscope_fake.erase = [box_of(truths[1])]
    photo = accept_upload(encode(pixels))
    frame = dashscope_fake.edit(photo.open(), SIZE)
    changes = composite.find_changes(photo.open_reduced(composite.COMPARISON_LONG_SIDE), frame)
    old_carry = composite.pack(changes, frame)
    engine = DashScopeCrowd()
    assert engine.people(old_carry) == []
    assert engine.finish(photo, old_carry).data == composite.full_resolution_result(photo, old_carry).data


def test_of_two_passers_by_erased_as_one_region_one_can_be_brought_back(dashscope_fake):
    # Side by side, a few pixels apart: the model's change is one region holding both.
    pixels, truths = scene_with([(800, 200, 352), (300, 1000, 340), (300, 1225, 340)], kind="sky", size=SIZE)
    dashscope_fake.erase = [box_of(truths[1] | truths[2])]
    photo = accept_upload(encode(pixels))
    engine = DashScopeCrowd()
    draft = engine.start(photo)
    subject, near, far = sorted(engine.people(draft.carry), key=lambda person: person.box[0])
    assert (subject.kept, near.kept, far.kept) == (True, False, False)

    chosen = engine.choose(photo, draft.carry, frozenset({subject.id, far.id}))

    working = np.asarray(photo.open_reduced(composite.COMPARISON_LONG_SIDE)).astype(int)
    preview = np.asarray(chosen.preview).astype(int)
    back = inside(truths[2], chosen.preview.size, 1)
    assert np.array_equal(preview[back], working[back])
    gone = inside(truths[1], chosen.preview.size, 1)
    assert np.abs(preview[gone] - working[gone]).mean() > 30
