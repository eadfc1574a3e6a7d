"""The embedded crowd engine: the photo's subject stays exactly as it was, everyone else is erased.

1. People: the people finder (`people.py`) on the working image (~1.2 MP), also on its tiles for
   people a sixth of the frame high or less.
2. Who stays at first: the subject and the people with them (`group.py`), as long as they are
   about the subject's size (`kept_at_first`). The visitor may choose otherwise (`choose`).
3. Holes: every other person's outline, grown by a margin and feathered, never reaching a kept
   person. Each connected hole is filled by PatchMatch texture synthesis at the working size from
   the background around it (`fill_hole`).
4. The carry keeps each person found (packing.py), who is kept, and each hole's alpha and fill, so
   another choice re-fills only the holes that changed. The full-resolution phase blends the fills
   into the original hole by hole, with the grain the working size lost added back (`add_grain`):
   every pixel outside the holes, a kept person's among them, is the visitor's own.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np
from django.utils.translation import gettext as _
from patchmatch import patch_match
from PIL import Image

from segmentation.engines import people as people_finder
from segmentation.engines.base import Draft, Engine, EngineError, PersonChoice, Result
from segmentation.engines.group import subject_group, touches
from segmentation.engines.local import _rgb_of
from segmentation.engines.packing import Outline, pack_people, unpack_people
from segmentation.engines.people import Person
from segmentation.intake import WORKING_LONG_SIDE, Photo
from segmentation.pixels import blend, disk, encode, encode_jpeg, encode_png, fit_pixels

CROWD_WORKING_PIXELS = 1_200_000  # detection and inpainting size: ~1265×949 for a 4:3 photo
# Someone the group keeps stays only if at least this share of the subject's size by the body's
# height or by the outline's, or if touching the subject. Measured on bench/people.py's scenes:
# companions 0.81–1.08 of the subject by the larger of the two (a bust cut by the frame has a
# short body, a footballer bent double a short outline), passers-by the group kept by torso or
# head at most 0.47; the threshold sits in the gap.
COMPANION_SIZE = 0.65
# ... and standing with the group: at most this share of the subject's body height from someone
# kept (box to box). bench/people.py's companions stand 0–0.19 from their nearest; walkers of the
# subject's size across a street (OpenCV's vtest.avi) 1–2 apart.
COMPANION_GAP = 0.5
OUTLINE_LEVEL = 128  # of 255: where an outline counts as the person
ERASE_MARGIN = 0.008  # of the long side: the model's outline sits a little inside hair and edges
ERASE_FEATHER = 0.006  # of the long side: width of the soft seam around an erased person
PROTECT_MARGIN = 4  # working pixels kept around a kept person, > 1 so upscaling cannot reach them
INPAINT_RADIUS = 5  # Telea, only for a hole with no background anywhere around it to copy from
FILL_CONTEXT = 0.3  # of a hole's larger side, around it: the background PatchMatch copies from
DETAIL_SIGMA = 2.0  # working pixels: the detail add_detail restores is what this blur removes
DETAIL_TILE = 12  # working pixels: the detail is copied in tiles of this side
DETAIL_CLIP = 2.5  # copied detail is limited to this many times the ring's strength
DETAIL_RING = 40  # working pixels around a hole: the background whose detail it should have
GRAIN_SEED = 7  # the added grain is the same on every run: one photo, one result
FILL_CROP_PIXELS = 250_000  # larger crops are filled at a reduced size (_patch_match)
FILL_PATCH_RADIUS = 3  # PatchMatch compares 7×7 patches (15×15: 1.4× the time, no visible gain)


@dataclass(frozen=True)
class Hole:
    """One connected erased area of the working image: how much of the fill to take (uint8 alpha)
    and the fill (RGB, kept as the JPEG the carry holds), over the box at `origin`. A hole carried
    from one choice to the next keeps its JPEG's bytes: never re-encoded, never degraded."""

    origin: tuple[int, int]
    alpha: np.ndarray
    jpeg: bytes

    @classmethod
    def made(cls, origin: tuple[int, int], alpha: np.ndarray, fill: np.ndarray) -> Hole:
        return cls(origin, alpha, encode(Image.fromarray(fill), "JPEG", quality=95))

    @cached_property
    def fill(self) -> np.ndarray:
        with Image.open(io.BytesIO(self.jpeg)) as image:
            fill = np.asarray(image.convert("RGB"))
        if fill.shape != (*self.alpha.shape, 3):
            raise ValueError("a hole's fill does not fit its box")
        return fill


@dataclass(frozen=True)
class Crowd:
    """What the carry holds: the working size (width, height), each person found, who is kept,
    and the holes that choice made."""

    size: tuple[int, int]
    people: Sequence[Outline]
    kept: tuple[bool, ...]
    holes: list[Hole]


class LocalCrowd(Engine):
    def start(self, photo: Photo) -> Draft:
        working = fit_pixels(photo.open_reduced(WORKING_LONG_SIDE), CROWD_WORKING_PIXELS)
        rgb = _rgb_of(working)
        found = people_finder.find_people(rgb, small=True)
        if not found:
            raise EngineError(
                _("We could not find a person in this photo. Please choose a photo in which you are clearly visible."),
                "local crowd: nobody found",
            )
        kept = kept_at_first(found)
        draft = _draw(working, rgb, Crowd(working.size, found, kept, []))
        if all(kept):
            draft.note = _("We found no one to remove besides the main person, so your photo is unchanged.")
        return draft

    def people(self, carry: bytes | None) -> list[PersonChoice]:
        if carry is None:
            return []
        crowd = _unpacked(carry)
        return [
            PersonChoice(index, _box_fractions(person, crowd.size), kept)
            for index, (person, kept) in enumerate(zip(crowd.people, crowd.kept, strict=True))
        ]

    def choose(self, photo: Photo, carry: bytes | None, keep: frozenset[int]) -> Draft:
        """The people in `keep` stay, the others are erased. A hole that this choice leaves
        exactly as it was keeps its fill; only new or changed holes are filled."""
        crowd = _unpacked(carry)
        if not keep or not keep <= set(range(len(crowd.people))):
            raise EngineError(_("Please choose at least one of the people shown."), f"local crowd: keep {sorted(keep)}")
        working = fit_pixels(photo.open_reduced(WORKING_LONG_SIDE), CROWD_WORKING_PIXELS)
        if working.size != crowd.size:
            raise EngineError(_("This photo has expired. Please upload it again."), "local crowd: working size changed")
        kept = tuple(index in keep for index in range(len(crowd.people)))
        return _draw(working, _rgb_of(working), Crowd(crowd.size, crowd.people, kept, crowd.holes))

    def finish(self, photo: Photo, carry: bytes | None) -> Result:
        crowd = _unpacked(carry)
        if not crowd.holes:  # nobody erased, as the visitor was told: the download is their own photo
            data, media_type = photo.upright_bytes()
            return Result(data, media_type, photo.width, photo.height)
        image = photo.open()
        for hole in crowd.holes:
            blend_hole(image, hole, crowd.size)
        if image.mode == "RGBA":
            return Result(encode_png(image), "image/png", image.width, image.height)
        return Result(encode_jpeg(image, quality=95), "image/jpeg", image.width, image.height)


def kept_at_first(found: list[Person]) -> tuple[bool, ...]:
    """Who stays before the visitor chooses, per person found: the subject's group (group.py),
    but of those not touching the subject only the ones at least COMPANION_SIZE of the subject's
    size and standing with the group (within COMPANION_GAP of someone kept). The cutout's group
    also keeps people about half the subject's size by one measure, and people of the subject's
    size anywhere in the frame, which here would keep a passer-by walking a little behind, or
    walkers across a street: the very people the tool is for."""
    group = subject_group(found)
    subject = group[0]

    def outline_height(person: Person) -> int:
        return person.box[3] - person.box[1]

    def companion(person: Person) -> bool:
        return (
            person.height >= COMPANION_SIZE * subject.height
            or outline_height(person) >= COMPANION_SIZE * outline_height(subject)
            or touches(person, subject)
        )

    candidates = [person for person in group[1:] if companion(person)]
    kept = [subject]
    while True:  # the group grows from the subject, person by person
        joining = [
            person
            for person in candidates
            if min(_gap(person, member) for member in kept) <= COMPANION_GAP * subject.height
        ]
        if not joining:
            break
        kept += joining
        candidates = [person for person in candidates if not any(person is joined for joined in joining)]
    return tuple(any(person is member for member in kept) for person in found)


def _gap(a: Person, b: Person) -> int:
    """Pixels between two people's boxes (0 when they overlap)."""
    across = max(a.box[0], b.box[0]) - min(a.box[2], b.box[2])
    down = max(a.box[1], b.box[1]) - min(a.box[3], b.box[3])
    return max(0, across, down)


def _draw(working: Image.Image, rgb: np.ndarray, crowd: Crowd) -> Draft:
    """The preview and carry for `crowd`'s choice; its holes are the ones an earlier choice
    filled, reused where a hole is still exactly the same."""
    alpha = erase_alpha(crowd.people, crowd.kept, rgb.shape[:2])
    holes = fill_holes(rgb, alpha, _union(crowd.people, rgb.shape[:2]), crowd.holes)
    result = np.array(working.convert("RGB"))
    for hole in holes:
        left, top = hole.origin
        height, width = hole.alpha.shape
        window = result[top : top + height, left : left + width]
        window[:] = blend(window, hole.fill, hole.alpha)
    preview = Image.fromarray(result)
    if working.mode == "RGBA":
        preview.putalpha(working.getchannel("A"))
    return Draft(preview=preview, carry=pack_crowd(Crowd(crowd.size, crowd.people, crowd.kept, holes)))


def _union(people: Sequence[Outline], shape: tuple[int, int]) -> np.ndarray:
    """Where any of `people` is (uint8 0 or 255) on a working image of `shape`."""
    where = np.zeros(shape, np.uint8)
    for person in people:
        left, top = person.origin
        height, width = person.mask.shape
        window = where[max(0, top) : top + height, max(0, left) : left + width]
        mask = person.mask[max(0, -top) :, max(0, -left) :][: window.shape[0], : window.shape[1]]
        window[mask >= OUTLINE_LEVEL] = 255
    return where


def erase_alpha(people: Sequence[Outline], kept: Sequence[bool], shape: tuple[int, int]) -> np.ndarray:
    """How much of the fill to take at each working pixel (uint8): 255 over the erased people and
    a margin, a soft seam around that, 0 on and near the kept people."""
    erased = _union([person for person, stays in zip(people, kept, strict=True) if not stays], shape)
    if not erased.any():
        return erased
    long_side = max(shape)
    margin = max(1, round(ERASE_MARGIN * long_side))
    feather = max(1, round(ERASE_FEATHER * long_side))
    core = cv2.dilate(erased, disk(margin))
    # Blur a mask grown by the seam's width, so the blur's fall-off lies outside the core.
    alpha = cv2.GaussianBlur(cv2.dilate(erased, disk(margin + feather)), (0, 0), feather / 2.5)
    np.maximum(alpha, core, out=alpha)
    protect = cv2.dilate(
        _union([person for person, stays in zip(people, kept, strict=True) if stays], shape), disk(PROTECT_MARGIN)
    )
    alpha[protect > 0] = 0
    return alpha


def fill_holes(rgb: np.ndarray, alpha: np.ndarray, occupied: np.ndarray, earlier: Sequence[Hole]) -> list[Hole]:
    """Each connected area where `alpha` > 0, with its fill: an earlier hole's when that one had
    exactly this box and alpha (its surroundings are the same photo), else a new one."""
    hole_mask = (alpha > 0).astype(np.uint8)
    unusable = (occupied > 0) | (hole_mask > 0)
    count, labels, stats, _centroids = cv2.connectedComponentsWithStats(hole_mask, connectivity=8)
    reusable = {(hole.origin, hole.alpha.shape): hole for hole in earlier}
    holes = []
    for label in range(1, count):
        left, top, width, height, _area = (int(v) for v in stats[label])
        box = (slice(top, top + height), slice(left, left + width))
        this_alpha = np.where(labels[box] == label, alpha[box], 0).astype(np.uint8)
        old = reusable.get(((left, top), this_alpha.shape))
        if old is not None and np.array_equal(old.alpha, this_alpha):
            holes.append(old)
            continue
        holes.append(Hole.made((left, top), this_alpha, fill_hole(rgb, labels == label, unusable, stats[label])))
    return holes


def fill_hole(rgb: np.ndarray, hole: np.ndarray, unusable: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """The hole's box of the working image with the hole filled by PatchMatch texture synthesis
    (Barnes et al. 2009, `pypatchmatch`), on a crop around it, copying only from background: no
    person the finder outlined (the kept ones among them) and no other hole is ever a source.

    Measured with bench/people.py (3 MP scenes, the fine texture of each fill against the true
    background there: variance of the Laplacian): Telea inpainting plus a Poisson-blended patch
    of nearby background (the fill before this one) kept 1-74 %, median 5 %, a smooth smudge;
    Telea plus high frequencies copied from a nearby patch 7-130 %, uneven and still smudged;
    PatchMatch at half size plus copied detail 8-130 %; PatchMatch at the working size on crops
    (this, with add_grain at full size) 43-126 %, median 94 %, and erased walkers are hard to find.
    Its cost grows with the crop, hence the crops (0.4 of the hole's size around it) and 7×7
    patches: on the scene with four passers-by 3.3 s of CPU with 15×15 patches and whole-hole
    context, 2.4 s like this."""
    height, width = hole.shape
    left, top, hole_width, hole_height, area = (int(v) for v in stats)
    reach = max(8, int(FILL_CONTEXT * max(hole_width, hole_height)))
    while True:  # widen the crop until it holds at least as much usable background as hole
        x0, y0 = max(0, left - reach), max(0, top - reach)
        x1, y1 = min(width, left + hole_width + reach), min(height, top + hole_height + reach)
        sources = np.count_nonzero(~unusable[y0:y1, x0:x1])
        if sources >= area or (x1 - x0, y1 - y0) == (width, height):
            break
        reach *= 2
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    this = hole[y0:y1, x0:x1].astype(np.uint8)
    if sources == 0:  # nothing in the photo to copy from: a smooth guess is all there is
        filled = cv2.inpaint(crop, this, INPAINT_RADIUS, cv2.INPAINT_TELEA)
    else:
        excluded = (unusable[y0:y1, x0:x1] & (this == 0)).astype(np.uint8)
        filled = _patch_match(crop, this, excluded)
        add_detail(filled, this > 0, ~unusable[y0:y1, x0:x1])
    return np.ascontiguousarray(filled[top - y0 : top - y0 + hole_height, left - x0 : left - x0 + hole_width])


def _patch_match(crop: np.ndarray, hole: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """PatchMatch on the crop; a crop of more than FILL_CROP_PIXELS (someone filling much of the
    frame, erased by the visitor's choice) is filled at a reduced size and scaled back, its fine
    detail left to add_detail. PatchMatch's time grows with the crop: erasing a subject 0.84 of
    the frame high took 3.7 s of CPU at the working size."""
    height, width = hole.shape
    scale = (FILL_CROP_PIXELS / (width * height)) ** 0.5
    if scale >= 1:
        return patch_match.inpaint(crop, hole, global_mask=excluded, patch_size=FILL_PATCH_RADIUS)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small_hole = (cv2.resize(hole, size, interpolation=cv2.INTER_AREA) > 0).astype(np.uint8)  # any hole pixel
    small_excluded = (cv2.resize(excluded, size, interpolation=cv2.INTER_AREA) > 0) & (small_hole == 0)
    small = patch_match.inpaint(
        cv2.resize(crop, size, interpolation=cv2.INTER_AREA),
        small_hole,
        global_mask=small_excluded.astype(np.uint8),
        patch_size=FILL_PATCH_RADIUS,
    )
    filled = crop.copy()
    inside = hole > 0
    filled[inside] = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)[inside]
    return filled


def add_detail(filled: np.ndarray, hole: np.ndarray, usable: np.ndarray) -> None:
    """Give PatchMatch's fill (in place) the fine detail its voting averaged away.

    PatchMatch makes each pixel the mean of the patches covering it; where they come from
    different places (a large hole in gravel or grass) that mean is smooth, a visible smudge.
    The fine detail (what a blur of DETAIL_SIGMA removes) that the background just around the
    hole has and the fill lacks is copied in, tile by tile, from randomly chosen places of that
    same ring of background, scaled to the missing strength: texture from the photo itself, not
    noise. Strengths are robust ones (median absolute deviation), so that a few strong edges
    near a hole in the sky do not count as texture."""
    detail = filled.astype(np.float32) - cv2.GaussianBlur(filled, (0, 0), DETAIL_SIGMA).astype(np.float32)
    ring = cv2.dilate(hole.astype(np.uint8), disk(DETAIL_RING)) > 0
    near = ring & usable
    if np.count_nonzero(near) < DETAIL_TILE**2:
        return
    around, has = _strength(detail[near]), _strength(detail[hole])
    missing = (max(0.0, around**2 - has**2)) ** 0.5
    if missing < 0.5:
        return
    tile = DETAIL_TILE
    # Tiles wholly of that ring: an integral image counts the other pixels in each.
    outside = cv2.integral((~near).astype(np.uint8))
    other = outside[tile:, tile:] - outside[:-tile, tile:] - outside[tile:, :-tile] + outside[:-tile, :-tile]
    sources = np.argwhere(other == 0)
    if len(sources) == 0:
        return
    rng = np.random.default_rng(GRAIN_SEED)
    added = np.zeros(detail.shape, np.float32)
    rows, cols = np.nonzero(hole)
    for y in range(rows.min(), rows.max() + 1, tile):
        for x in range(cols.min(), cols.max() + 1, tile):
            sy, sx = sources[rng.integers(len(sources))]
            h, w = min(tile, added.shape[0] - y), min(tile, added.shape[1] - x)
            added[y : y + h, x : x + w] = detail[sy : sy + h, sx : sx + w]
    # Edges (a window frame, the rim of an ornament) would show as copied marks: only texture is.
    np.clip(added, -DETAIL_CLIP * around, DETAIL_CLIP * around, out=added)
    result = filled.astype(np.float32) + added * np.float32(missing / around)
    filled[hole] = np.clip(result[hole] + 0.5, 0, 255).astype(np.uint8)


def _strength(detail: np.ndarray) -> float:
    """A robust standard deviation: 1.4826 × the median absolute deviation."""
    return float(1.4826 * np.median(np.abs(detail - np.median(detail))))


def blend_hole(image: Image.Image, hole: Hole, working: tuple[int, int]) -> None:
    """Blend one hole's fill into the full-resolution `image` (in place). Only the hole's box,
    grown by a quarter for add_grain to see the grain around it, is read and written back; every
    pixel where the upscaled alpha is 0 keeps the original's exact value."""
    left, top = hole.origin
    height, width = hole.alpha.shape
    reach = max(width, height) // 4
    x0, y0 = max(0, left - reach), max(0, top - reach)
    x1, y1 = min(working[0], left + width + reach), min(working[1], top + height + reach)
    alpha = np.zeros((y1 - y0, x1 - x0), np.uint8)
    alpha[top - y0 : top - y0 + height, left - x0 : left - x0 + width] = hole.alpha
    fill = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    fill[top - y0 : top - y0 + height, left - x0 : left - x0 + width] = hole.fill
    full_box = _scale_box((x0, y0, x1, y1), working, image.size)
    size = (full_box[2] - full_box[0], full_box[3] - full_box[1])
    region = np.array(image.crop(full_box))
    alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR)
    # Cubic, not bilinear: the synthesised grain survives the upscale better (fine texture of iid
    # noise after working size → 1.26× → working size again: 0.43 of the original, bilinear 0.28).
    fill = cv2.resize(fill, size, interpolation=cv2.INTER_CUBIC)
    add_grain(fill, region[..., :3], alpha, scale=size[0] / (x1 - x0))
    region[..., :3] = blend(region[..., :3], fill, alpha)
    image.paste(Image.fromarray(region, image.mode), full_box[:2])


def add_grain(fill: np.ndarray, original: np.ndarray, alpha: np.ndarray, scale: float) -> None:
    """Give the upscaled fill (in place) the fine grain the working size cannot hold.

    The fill is made at ~1.2 MP; at 12 MP each of its pixels covers ~10 of the photo's, so sensor
    grain and the finest texture are missing and the fill looks smoother than its surroundings.
    Per erased area, the grain the photo has around it (what a round trip through the working
    size removes, measured on the pixels left untouched) is compared with what the upscaled fill
    has, and the difference is added back as grey noise of that strength: film-grain synthesis.
    Measured: the tests' noisy backgrounds at 1.9 MP kept 0.43 of their fine texture in the
    upscaled fill, 0.6-1 with the grain; on bench/people.py's 3 MP scenes one fill went from 0.71
    to 1.03, the coarser textures changed little. 0.13 s of CPU for two people erased at 12 MP
    (only boxes around them are read).
    """
    if scale <= 1.05:  # the photo is the working image: nothing was lost
        return
    count, areas, stats, _centroids = cv2.connectedComponentsWithStats((alpha > 0).astype(np.uint8), connectivity=8)
    rng = np.random.default_rng(GRAIN_SEED)
    height, width = alpha.shape
    for label in range(1, count):
        left, top, box_width, box_height, _area = (int(v) for v in stats[label])
        reach = max(box_width, box_height) // 4
        x0, y0 = max(0, left - reach), max(0, top - reach)
        x1, y1 = min(width, left + box_width + reach), min(height, top + box_height + reach)
        small = (max(1, round((x1 - x0) / scale)), max(1, round((y1 - y0) / scale)))
        untouched = alpha[y0:y1, x0:x1] == 0
        erased = areas[y0:y1, x0:x1] == label
        if np.count_nonzero(untouched) < 64:
            continue
        around = float(_lost_in_round_trip(original[y0:y1, x0:x1], small)[untouched].std())
        has = float(_lost_in_round_trip(fill[y0:y1, x0:x1], small)[erased].std())
        missing = (max(0.0, around**2 - has**2)) ** 0.5
        if missing < 0.5:
            continue
        grain = rng.normal(0, missing, np.count_nonzero(erased)).astype(np.float32)[:, None]
        part = fill[y0:y1, x0:x1]
        part[erased] = np.clip(part[erased] + grain, 0, 255).astype(np.uint8)


def _lost_in_round_trip(pixels: np.ndarray, small: tuple[int, int]) -> np.ndarray:
    """What a trip down to `small` and back up removes from the grey image (its finest detail)."""
    grey = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return grey - cv2.resize(cv2.resize(grey, small, interpolation=cv2.INTER_AREA), grey.shape[::-1])


def _scale_box(
    box: tuple[int, int, int, int], working: tuple[int, int], full: tuple[int, int]
) -> tuple[int, int, int, int]:
    scale_x, scale_y = full[0] / working[0], full[1] / working[1]
    left, top, right, bottom = box
    return (
        int(np.floor(left * scale_x)),
        int(np.floor(top * scale_y)),
        min(full[0], int(np.ceil(right * scale_x))),
        min(full[1], int(np.ceil(bottom * scale_y))),
    )


def _box_fractions(person: Outline, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """x, y, width, height of the person's outline as fractions of the photo."""
    solid = (person.mask >= OUTLINE_LEVEL).astype(np.uint8)
    x, y, w, h = cv2.boundingRect(solid) if solid.any() else (0, 0, person.mask.shape[1], person.mask.shape[0])
    left, top = max(0, person.origin[0] + x), max(0, person.origin[1] + y)
    right = min(size[0], person.origin[0] + x + w)
    bottom = min(size[1], person.origin[1] + y + h)
    width, height = size
    return left / width, top / height, max(0, right - left) / width, max(0, bottom - top) / height


# The carry: a header (magic, number of people, number of holes), who is kept (one byte each),
# each hole (box, alpha as PNG, fill as JPEG at quality 95), then the people (packing.py). A hole
# is a few percent of the frame, so this is tens of kilobytes, plus a few per person.
_HEADER = struct.Struct(">4sHH")
_HOLE = struct.Struct(">HHHHII")  # left, top, width, height, PNG length, JPEG length
_MAGIC = b"LCW1"


def pack_crowd(crowd: Crowd) -> bytes:
    parts = [_HEADER.pack(_MAGIC, len(crowd.people), len(crowd.holes)), bytes(crowd.kept)]
    for hole in crowd.holes:
        ok, alpha = cv2.imencode(".png", hole.alpha, [cv2.IMWRITE_PNG_COMPRESSION, 6])
        height, width = hole.alpha.shape
        parts += [_HOLE.pack(*hole.origin, width, height, len(alpha), len(hole.jpeg)), alpha.tobytes(), hole.jpeg]
    parts.append(pack_people(crowd.size, crowd.people))
    return b"".join(parts)


def unpack_crowd(carry: bytes) -> Crowd:
    """What `pack_crowd` packed. ValueError when the carry is not a crowd's, or damaged."""
    try:
        magic, count, hole_count = _HEADER.unpack_from(carry)
        if magic != _MAGIC:
            raise ValueError("not a local crowd carry")
        start = _HEADER.size
        kept = tuple(bool(flag) for flag in carry[start : start + count])
        if len(kept) != count or any(flag > 1 for flag in carry[start : start + count]):
            raise ValueError("damaged choice")
        start += count
        holes = []
        for _ in range(hole_count):
            left, top, width, height, alpha_length, fill_length = _HOLE.unpack_from(carry, start)
            start += _HOLE.size
            alpha = cv2.imdecode(np.frombuffer(carry, np.uint8, alpha_length, start), cv2.IMREAD_GRAYSCALE)
            start += alpha_length
            if alpha is None or alpha.shape != (height, width):
                raise ValueError("a hole's alpha does not fit its box")
            hole = Hole((left, top), alpha, carry[start : start + fill_length])
            start += fill_length
            hole.fill  # noqa: B018 (decoded now: a broken fill is a damaged carry, found before any work)
            holes.append(hole)
        size, people = unpack_people(carry[start:])
    except (struct.error, cv2.error, OSError) as error:  # OSError: Pillow's word for a broken JPEG
        raise ValueError(f"damaged local crowd carry: {error}") from error
    if len(people) != count:
        raise ValueError("the choice does not match the people")
    if any(
        hole.origin[0] + hole.alpha.shape[1] > size[0] or hole.origin[1] + hole.alpha.shape[0] > size[1]
        for hole in holes
    ):
        raise ValueError("a hole lies outside the photo")
    return Crowd(size, people, kept, holes)


def _unpacked(carry: bytes | None) -> Crowd:
    """The carry's crowd, or EngineError: never deliver the photo unchanged by mistake."""
    if carry is None:  # lost (expired, or never stored)
        raise EngineError(_("This photo has expired. Please upload it again."), "local crowd: no carry")
    try:
        return unpack_crowd(carry)
    except ValueError as error:
        raise EngineError(_("This photo has expired. Please upload it again."), f"local crowd: {error}") from error
