"""Choosing who stays in the embedded cutout: the people found at upload are listed with today's
automatic choice, and a new choice redraws the matte from the carry alone (no finding again): a
kept person stays opaque, a person cut away is fully transparent, down to the full-resolution
download."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from segmentation.engines.base import EngineError
from segmentation.engines.local import LocalCutout, unpack_cutout
from segmentation.intake import accept_upload
from tests.test_local_cutout import encode
from tests.test_people import scene_with

# Two companions of the same size and a small passer-by behind them, on a 1536×1152 sky: the
# automatic choice keeps the two and cuts the passer-by away (tests/test_people.py).
PLACEMENTS = [(800, 200, 352), (760, 800, 392), (200, 1300, 300)]


@pytest.fixture(scope="module")
def scene():
    pixels, truths = scene_with(PLACEMENTS, kind="sky")
    photo = accept_upload(encode(pixels))
    draft = LocalCutout().start(photo)
    return photo, draft, truths


def core(truth: np.ndarray, margin: int = 24) -> np.ndarray:
    """The person's pixels further than `margin` from their outline: where the answer is certain."""
    return cv2.erode(truth.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8)) > 0


def alpha_of(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).getchannel("A"))


def whose(people, truths) -> list[int]:
    """For each true person (in PLACEMENTS order), the id of the listed person whose box holds
    their centre."""
    ids = []
    for truth in truths:
        rows, cols = np.nonzero(truth)
        cx, cy = cols.mean() / truth.shape[1], rows.mean() / truth.shape[0]
        (match,) = [
            p.id for p in people if p.box[0] <= cx <= p.box[0] + p.box[2] and p.box[1] <= cy <= p.box[1] + p.box[3]
        ]
        ids.append(match)
    return ids


def test_the_people_are_listed_with_the_automatic_choice(scene):
    _photo, draft, truths = scene
    people = LocalCutout().people(draft.carry)
    assert [p.id for p in people] == list(range(3))
    first, second, passer_by = whose(people, truths)
    kept = {p.id: p.kept for p in people}
    assert kept[first] and kept[second] and not kept[passer_by]
    for person, truth in zip(sorted(people, key=lambda p: [first, second, passer_by].index(p.id)), truths, strict=True):
        rows, cols = np.nonzero(truth)
        x, y, w, h = person.box
        assert x == pytest.approx(cols.min() / 1536, abs=0.03) and y == pytest.approx(rows.min() / 1152, abs=0.03)
        assert w == pytest.approx((cols.max() - cols.min()) / 1536, abs=0.05)
        assert h == pytest.approx((rows.max() - rows.min()) / 1152, abs=0.05)


def test_a_person_cut_away_is_transparent_and_a_kept_one_opaque_down_to_the_download(scene):
    photo, draft, truths = scene
    engine = LocalCutout()
    first, second, passer_by = whose(engine.people(draft.carry), truths)
    before = alpha_of(engine.finish(photo, draft.carry).data)
    assert np.mean(before[core(truths[1])] == 255) > 0.97 and not before[core(truths[2])].any()

    # Keep the first companion and the passer-by; the second companion goes.
    chosen = engine.choose(photo, draft.carry, frozenset({first, passer_by}))

    assert {p.id for p in engine.people(chosen.carry) if p.kept} == {first, passer_by}
    after = alpha_of(engine.finish(photo, chosen.carry).data)
    assert not after[core(truths[1])].any(), "the companion cut away must be fully transparent"
    assert np.mean(after[core(truths[0])] == 255) > 0.97, "the kept companion stays opaque"
    assert np.mean(after[core(truths[2], 8)] == 255) > 0.9, "the passer-by brought back is opaque"
    # Where the kept companion was opaque before, she still is: her pixels are the photo's own.
    assert np.array_equal(after[core(truths[0])], before[core(truths[0])])
    # The preview follows the choice.
    preview_alpha = np.asarray(chosen.preview.getchannel("A").resize((1536, 1152)))
    assert not preview_alpha[core(truths[1], 40)].any()


def test_one_person_kept_alone_is_cut_out_whole(scene):
    photo, draft, truths = scene
    engine = LocalCutout()
    first, second, _passer_by = whose(engine.people(draft.carry), truths)
    alone = engine.choose(photo, draft.carry, frozenset({second}))
    alpha = unpack_cutout(alone.carry).matte
    assert np.mean(alpha[core(truths[1])] == 255) > 0.97
    assert not alpha[core(truths[0])].any() and not alpha[core(truths[2], 8)].any()
    # Choosing again from the new carry goes back to the automatic choice's matte.
    again = engine.choose(photo, alone.carry, frozenset({first, second}))
    assert np.array_equal(unpack_cutout(again.carry).matte, unpack_cutout(draft.carry).matte)


def test_a_damaged_carry_or_an_impossible_choice_is_an_engine_error(scene):
    photo, draft, _truths = scene
    engine = LocalCutout()
    for damaged in (b"", b"LCC2" + draft.carry[4:], draft.carry[:-7], draft.carry[:40]):
        with pytest.raises(EngineError):
            engine.choose(photo, damaged or None, frozenset({0}))
    with pytest.raises(EngineError):
        engine.people(draft.carry[:-7])
    for keep in (frozenset(), frozenset({3}), frozenset({0, 7})):
        with pytest.raises(EngineError):
            engine.choose(photo, draft.carry, keep)
    assert engine.people(None) == []
