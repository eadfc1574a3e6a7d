"""Erasing someone DashScope's model left in place ([T2.2]), without a new call: the local crowd's
fill (crowd.py) on the visitor's photo, combined with the model's own edit for the people it erased.
The kept people stay bit for bit, the fill copies only from background, preview and download agree,
and another choice re-fills only the holes that changed."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from segmentation import composite
from segmentation.engines import crowd
from segmentation.engines.base import EngineError
from segmentation.engines.dashscope import DashScopeCrowd
from segmentation.engines.sections import pack_sections, unpack_sections
from segmentation.intake import accept_upload
from segmentation.pixels import encode, encode_jpeg
from tests.test_dashscope_choice import PLACEMENTS, SIZE, box_of, by_position, decoded, inside
from tests.test_local_cutout import background
from tests.test_local_cutout import encode as encode_scene
from tests.test_people import scene_with

KIND = "landscape"  # texture to fill, unlike the sky


def error(pixels: np.ndarray, truth: np.ndarray, where: np.ndarray) -> float:
    return float(np.abs(pixels[..., :3].astype(int) - truth[..., :3])[where].mean())


def at(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(np.ascontiguousarray(pixels), size, interpolation=cv2.INTER_AREA)


def fill_of(carry: bytes) -> crowd.Crowd | None:
    sections = unpack_sections(b"DSC1", carry)
    return crowd.unpack_crowd(sections["fill"]) if "fill" in sections else None


@pytest.fixture
def scene():
    """The scene, the same scene without anyone, and each person's truth (subject, left, right)."""
    pixels, truths = scene_with(PLACEMENTS, kind=KIND, size=SIZE)
    return pixels, background(KIND, *SIZE, seed=0), truths


@pytest.fixture
def count_fills(monkeypatch):
    """How many holes PatchMatch fills (crowd.fill_hole), from here on."""
    calls = []
    original = crowd.fill_hole

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(crowd, "fill_hole", counted)
    return calls


def test_someone_the_model_left_is_erased_by_the_local_fill_without_a_call(scene, dashscope_fake):
    pixels, empty, truths = scene
    dashscope_fake.erase = [box_of(truths[2])]  # the model erases the right passer-by, leaves the left
    photo = accept_upload(encode_scene(pixels))
    engine = DashScopeCrowd()
    draft = engine.start(photo)
    subject, left, right = by_position(engine, draft.carry)
    assert (subject.kept, left.kept, right.kept) == (True, True, False)

    chosen = engine.choose(photo, draft.carry, frozenset({subject.id}))

    assert [person.kept for person in by_position(engine, chosen.carry)] == [True, False, False]
    preview, before = np.asarray(chosen.preview).astype(int), np.asarray(draft.preview).astype(int)
    working = np.asarray(photo.open_reduced(composite.COMPARISON_LONG_SIDE)).astype(int)
    size = chosen.preview.size
    where_subject = inside(truths[0], size, 0)
    assert np.array_equal(preview[where_subject], working[where_subject])
    gone_right = inside(truths[2], size, 0)
    assert np.array_equal(preview[gone_right], before[gone_right])  # the model's own edit
    gone_left = inside(truths[1], size, 0)
    small_empty = at(empty, size)
    assert error(preview, small_empty, gone_left) < 0.5 * error(working, small_empty, gone_left)
    assert chosen.note == ""

    result = engine.finish(photo, chosen.carry)

    out, original = decoded(result.data), decoded(encode_jpeg(photo.open(), quality=95))
    where = inside(truths[0], SIZE, 24)  # away from JPEG blocks next to a changed one
    assert np.array_equal(out[where], original[where])
    gone = inside(truths[1], SIZE, 4)
    assert error(out, empty, gone) < 0.5 * error(original, empty, gone)
    assert error(out, empty, inside(truths[2], SIZE, 4)) < 0.5 * error(original, empty, inside(truths[2], SIZE, 4))
    # Preview and download agree where the fill went.
    assert np.abs(at(out.astype(np.uint8), size).astype(int) - preview)[gone_left].mean() < 6
    assert len(dashscope_fake.generation_calls) == 1 and len(dashscope_fake.downloads) == 1


def test_a_passer_by_brought_back_and_another_erased_in_one_choice(scene, dashscope_fake):
    pixels, empty, truths = scene
    dashscope_fake.erase = [box_of(truths[2])]
    photo = accept_upload(encode_scene(pixels))
    engine = DashScopeCrowd()
    draft = engine.start(photo)
    subject, left, right = by_position(engine, draft.carry)

    chosen = engine.choose(photo, draft.carry, frozenset({subject.id, right.id}))

    preview = np.asarray(chosen.preview).astype(int)
    working = np.asarray(photo.open_reduced(composite.COMPARISON_LONG_SIDE)).astype(int)
    size = chosen.preview.size
    for kept in (truths[0], truths[2]):
        assert np.array_equal(preview[inside(kept, size, 0)], working[inside(kept, size, 0)])
    gone = inside(truths[1], size, 0)
    assert error(preview, at(empty, size), gone) < 0.5 * error(working, at(empty, size), gone)
    assert len(dashscope_fake.generation_calls) == 1


def test_the_kept_people_are_bit_for_bit_the_photo_in_a_transparent_download(scene, dashscope_fake):
    # A PNG with transparency downloads as PNG: no JPEG blocks, every kept pixel exactly the photo's.
    pixels, _empty, truths = scene
    rgba = np.dstack([pixels, np.full(pixels.shape[:2], 255, np.uint8)])
    rgba[:40, :40, 3] = 0
    photo = accept_upload(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    dashscope_fake.erase = [box_of(truths[2])]
    engine = DashScopeCrowd()
    draft = engine.start(photo)
    subject, left, right = by_position(engine, draft.carry)
    chosen = engine.choose(photo, draft.carry, frozenset({subject.id, right.id}))

    result = engine.finish(photo, chosen.carry)

    assert result.media_type == "image/png"
    with Image.open(io.BytesIO(result.data)) as im:
        out = np.asarray(im)
    for kept in (truths[0], truths[2]):
        assert np.array_equal(out[kept], rgba[kept])
    assert np.array_equal(out[..., 3], rgba[..., 3])
    gone = inside(truths[1], SIZE, 4)
    assert np.abs(out[..., :3].astype(int) - rgba[..., :3])[gone].mean() > 10


def test_the_fill_next_to_a_kept_person_is_background(dashscope_fake):
    # The passer-by stands a few pixels from the subject: nothing of the subject's suit may
    # show up in the fill, and the subject stays as photographed.
    pixels, truths = scene_with([(800, 500, 352), (420, 1080, 640)], kind="sky", size=SIZE)
    empty = background("sky", *SIZE, seed=0)
    assert not (cv2.dilate(truths[0].astype(np.uint8), np.ones((9, 9), np.uint8)) & truths[1]).any()
    photo = accept_upload(encode_scene(pixels))
    engine = DashScopeCrowd()
    draft = engine.start(photo)  # the model erases nobody
    subject, passer_by = sorted(engine.people(draft.carry), key=lambda person: person.box[0])

    chosen = engine.choose(photo, draft.carry, frozenset({subject.id}))
    out = decoded(engine.finish(photo, chosen.carry).data)

    far_off = np.abs(out - empty).max(axis=2)[inside(truths[1], SIZE, 0)]
    assert np.count_nonzero(far_off > 30) < 0.001 * far_off.size
    where = inside(truths[0], SIZE, 24)
    assert np.array_equal(out[where], decoded(encode_jpeg(photo.open(), quality=95))[where])


def test_no_person_and_no_change_of_the_models_is_a_source_for_the_fill(scene, dashscope_fake, monkeypatch):
    pixels, _empty, truths = scene
    dashscope_fake.erase = [box_of(truths[2])]
    photo = accept_upload(encode_scene(pixels))
    engine = DashScopeCrowd()
    draft = engine.start(photo)
    subject, left, right = by_position(engine, draft.carry)
    seen = []
    original = crowd.fill_holes

    def spied(rgb, alpha, occupied, earlier):
        seen.append((alpha.copy(), occupied.copy()))
        return original(rgb, alpha, occupied, earlier)

    monkeypatch.setattr(crowd, "fill_holes", spied)
    engine.choose(photo, draft.carry, frozenset({subject.id, right.id}))

    ((alpha, occupied),) = seen
    size = occupied.shape[::-1]
    # Every person, the kept subject and the passer-by brought back included, is never a source;
    # nor is what the model changed (where the photo still shows the person it erased).
    for truth in truths:
        person = inside(truth, size, 2)
        assert np.count_nonzero(occupied[person]) > 0.97 * np.count_nonzero(person)
    changes, _frame = composite.unpack(unpack_sections(b"DSC1", draft.carry)["changes"])
    changed = cv2.resize((changes.alpha > 0).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    assert changed.any() and occupied[changed].min() == 255
    # The hole is the left passer-by's, and never reaches a kept person.
    assert alpha[inside(truths[1], size, 2)].min() == 255
    for truth in (truths[0], truths[2]):
        assert alpha[inside(truth, size, 0)].max() == 0


def test_another_choice_refills_only_the_holes_that_changed(scene, dashscope_fake, count_fills):
    pixels, _empty, truths = scene
    photo = accept_upload(encode_scene(pixels))
    engine = DashScopeCrowd()
    draft = engine.start(photo)  # the model erases nobody: everyone stays at first
    assert fill_of(draft.carry) is None
    subject, left, right = by_position(engine, draft.carry)
    assert (subject.kept, left.kept, right.kept) == (True, True, True)

    both = engine.choose(photo, draft.carry, frozenset({subject.id}))
    assert len(count_fills) == 2 and len(fill_of(both.carry).holes) == 2
    one = engine.choose(photo, both.carry, frozenset({subject.id, right.id}))
    assert len(count_fills) == 2  # the left passer-by's hole is carried, not filled again
    (hole,) = fill_of(one.carry).holes
    assert hole.jpeg in [earlier.jpeg for earlier in fill_of(both.carry).holes]
    size = one.preview.size
    working = np.asarray(photo.open_reduced(composite.COMPARISON_LONG_SIDE)).astype(int)
    preview = np.asarray(one.preview).astype(int)
    assert np.array_equal(preview[inside(truths[2], size, 0)], working[inside(truths[2], size, 0)])

    # Everyone again: no fill carried, the preview is the photo, the visitor is told.
    everyone = engine.choose(photo, one.carry, frozenset({subject.id, left.id, right.id}))
    assert fill_of(everyone.carry) is None and "everyone kept" in everyone.note
    assert np.array_equal(np.asarray(everyone.preview), np.asarray(photo.open_reduced(composite.COMPARISON_LONG_SIDE)))
    assert len(count_fills) == 2
    assert len(dashscope_fake.generation_calls) == 1


def test_a_damaged_fill_is_refused(scene, dashscope_fake):
    pixels, _empty, truths = scene
    dashscope_fake.erase = [box_of(truths[2])]
    photo = accept_upload(encode_scene(pixels))
    engine = DashScopeCrowd()
    draft = engine.start(photo)
    subject, _left, _right = by_position(engine, draft.carry)
    chosen = engine.choose(photo, draft.carry, frozenset({subject.id}))
    sections = unpack_sections(b"DSC1", chosen.carry)
    fill = crowd.unpack_crowd(sections["fill"])
    start = unpack_sections(b"DSC1", draft.carry)
    for broken in (
        pack_sections(b"DSC1", {**sections, "fill": sections["fill"][:-50]}),  # truncated
        pack_sections(b"DSC1", {name: data for name, data in sections.items() if name != "fill"}),  # lost
        pack_sections(b"DSC1", {**start, "fill": sections["fill"]}),  # a fill nobody chose
        pack_sections(b"DSC1", {**sections, "fill": crowd.pack_crowd(crowd.Crowd((900, 900), (), (), fill.holes))}),
    ):
        with pytest.raises(EngineError):
            engine.choose(photo, broken, frozenset({subject.id}))
        with pytest.raises(EngineError):
            engine.finish(photo, broken)
    assert len(dashscope_fake.generation_calls) == 1
