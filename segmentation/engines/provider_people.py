"""The people in a provider's answer, so that the visitor can choose who stays without a new call.

remove.bg and DashScope say nothing about people: one returns an alpha matte, the other a redrawn
frame. At upload the provider engines therefore also run the embedded people finder
(`people.py`) on the working image and judge each person against the provider's answer: kept by
remove.bg when its alpha covers most of their outline, erased by DashScope when the model's
changes do (`covered`). That is the starting choice. A changed choice is carried as a `Cast`
(the outlines, the starting choice, the current one) and takes effect only in zones around the
people whose state changed (`reach`, `soften`), so everyone else keeps what the provider made.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from segmentation.engines.base import PersonChoice
from segmentation.engines.packing import PackedPerson, pack_people, unpack_people
from segmentation.engines.people import find_people
from segmentation.engines.sections import pack_sections, unpack_sections
from segmentation.intake import WORKING_LONG_SIDE, Photo
from segmentation.pixels import disk

# A person counts as in the provider's answer (kept by remove.bg, erased by DashScope) when it
# covers more than this share of their solid outline (outline probability ≥ 0.5).
MOSTLY = 0.5
# A changed choice reaches this far beyond the finder's outline (of the grid's long side): the
# finder draws at 256 px per person and sits a little inside hair and loose clothes.
REACH = 0.012
# Width of the soft seam where a changed choice ends (of the grid's long side).
FEATHER = 0.006

_MAGIC = b"CST1"


@dataclass(frozen=True)
class Cast:
    """The people found at upload (on a working image of `size`), who the provider's answer kept
    (`start`) and who the visitor keeps now (`keep`, ids = positions in `people`)."""

    size: tuple[int, int]
    people: tuple[PackedPerson, ...]
    start: frozenset[int]
    keep: frozenset[int]

    @property
    def changed(self) -> bool:
        return self.keep != self.start

    def choices(self) -> list[PersonChoice]:
        return [PersonChoice(i, _box(person, self.size), i in self.keep) for i, person in enumerate(self.people)]

    def with_keep(self, keep: frozenset[int]) -> Cast:
        return Cast(self.size, self.people, self.start, frozenset(keep))


def find(photo: Photo, small: bool) -> tuple[tuple[int, int], list]:
    """The working image's size and the people on it (`people.find_people`). Transparent parts of an
    upload are shown to the finder as white, as the crowd model sees them."""
    working = photo.open_reduced(WORKING_LONG_SIDE)
    if working.mode == "RGBA":
        from segmentation.composite import on_white

        working = on_white(working)
    rgb = np.asarray(working.convert("RGB"))
    return working.size, find_people(rgb, small=small)


def covered(people, size: tuple[int, int], cover: np.ndarray) -> list[float]:
    """For each person, the mean of `cover` (0..1 at `size`, any grid is resized to it) over their
    solid outline: how much of them the provider's answer holds."""
    width, height = size
    if cover.shape != (height, width):
        cover = cv2.resize(cover.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    shares = []
    for person in people:
        solid = _placed(person, size) >= 128
        shares.append(float(cover[solid].mean()) if solid.any() else 0.0)
    return shares


def solid(cast: Cast, ids, grid: tuple[int, int]) -> np.ndarray:
    """bool at `grid` (width, height): the solid outlines (probability ≥ 0.5) of the people `ids`."""
    canvas = np.zeros(cast.size[::-1], np.uint8)
    for i in ids:
        np.maximum(canvas, _placed(cast.people[i], cast.size), out=canvas)
    if grid != cast.size:
        canvas = cv2.resize(canvas, grid, interpolation=cv2.INTER_LINEAR)
    return canvas >= 128


def outlines_at(cast: Cast, ids, grid: tuple[int, int]) -> list[PackedPerson]:
    """The outlines of the people `ids`, each crop scaled to `grid` (width, height): for code that
    works on another working size than the finder's (the local fill, crowd.py)."""
    scale_x, scale_y = grid[0] / cast.size[0], grid[1] / cast.size[1]
    scaled = []
    for i in ids:
        person = cast.people[i]
        height, width = person.mask.shape
        left, top = round(person.origin[0] * scale_x), round(person.origin[1] * scale_y)
        right, bottom = round((person.origin[0] + width) * scale_x), round((person.origin[1] + height) * scale_y)
        size = (max(1, right - left), max(1, bottom - top))
        mask = person.mask if size == (width, height) else cv2.resize(person.mask, size, interpolation=cv2.INTER_LINEAR)
        scaled.append(PackedPerson(mask, (left, top), person.score))
    return scaled


def reach(mask: np.ndarray) -> np.ndarray:
    """`mask` (bool) grown by REACH of its grid's long side."""
    if not mask.any():
        return mask
    return cv2.dilate(mask.astype(np.uint8), disk(REACH * max(mask.shape))) > 0


def soften(zone: np.ndarray, protected: np.ndarray | None = None) -> np.ndarray:
    """uint8 weights: 255 over `zone`, falling smoothly to 0 within FEATHER of it, and 0 over
    `protected` whatever the zone's seam (a kept person's pixels are never touched)."""
    if not zone.any():
        return np.zeros(zone.shape, np.uint8)
    feather = max(1, round(FEATHER * max(zone.shape)))
    grown = cv2.dilate(zone.astype(np.uint8) * 255, disk(feather))
    soft = cv2.GaussianBlur(grown, (0, 0), feather / 2.5)
    np.maximum(soft, zone.astype(np.uint8) * 255, out=soft)
    if protected is not None:
        soft[protected] = 0
    return soft


def pack_cast(cast: Cast) -> bytes:
    return pack_sections(
        _MAGIC,
        {
            "people": pack_people(cast.size, cast.people),
            "start": _flags(cast.start, len(cast.people)),
            "keep": _flags(cast.keep, len(cast.people)),
        },
    )


def unpack_cast(data: bytes) -> Cast:
    """What `pack_cast` packed. ValueError when damaged."""
    sections = unpack_sections(_MAGIC, data)
    size, people = unpack_people(sections["people"])
    start, keep = (_ids(sections[name], len(people)) for name in ("start", "keep"))
    return Cast(size, tuple(people), start, keep)


def cast_of(size: tuple[int, int], people, start: frozenset[int]) -> Cast:
    """A new cast from the finder's people (any with mask, origin and score), as the carry keeps
    them."""
    packed = tuple(PackedPerson(person.mask, tuple(person.origin), person.score) for person in people)
    return Cast(size, packed, frozenset(start), frozenset(start))


def _flags(ids: frozenset[int], count: int) -> bytes:
    return bytes(1 if i in ids else 0 for i in range(count))


def _ids(flags: bytes, count: int) -> frozenset[int]:
    if len(flags) != count or set(flags) - {0, 1}:
        raise ValueError("a choice that does not fit the people")
    return frozenset(i for i, flag in enumerate(flags) if flag)


def _placed(person: PackedPerson, size: tuple[int, int]) -> np.ndarray:
    """The person's outline (uint8) over the whole working image, clipped to it."""
    width, height = size
    whole = np.zeros((height, width), np.uint8)
    left, top = person.origin
    mask_height, mask_width = person.mask.shape
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(width, left + mask_width), min(height, top + mask_height)
    if x1 > x0 and y1 > y0:
        whole[y0:y1, x0:x1] = person.mask[y0 - top : y1 - top, x0 - left : x1 - left]
    return whole


def _box(person: PackedPerson, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The person's solid outline's box (the whole outline's when nothing is solid), as fractions
    of the image: x, y, width, height."""
    width, height = size
    mask = person.mask >= 128 if (person.mask >= 128).any() else person.mask > 0
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    left = min(max(person.origin[0] + x, 0), width)
    top = min(max(person.origin[1] + y, 0), height)
    right = min(max(person.origin[0] + x + w, 0), width)
    bottom = min(max(person.origin[1] + y + h, 0), height)
    return (left / width, top / height, (right - left) / width, (bottom - top) / height)
