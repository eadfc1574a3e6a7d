"""The embedded crowd engine: passers-by erased without any third party.

People are found on the whole frame and on overlapping tiles (see `LocalCrowd`); the passers-by
are filled by PatchMatch texture synthesis at about 1.2 MP at upload, and only that patch and its
feathered mask are carried to the full-resolution phase, which blends them into the original.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import cv2
import numpy as np
from django.utils.translation import gettext as _
from patchmatch import patch_match
from PIL import Image

from segmentation.engines.base import Draft, Engine, EngineError, Result
from segmentation.engines.local import MIN_SUBJECT_SHARE, _png, _rgb_of, _unpng
from segmentation.engines.selfie import person_probability, probability_by_scale
from segmentation.intake import WORKING_LONG_SIDE, Photo
from segmentation.pixels import blend, disk, encode, encode_jpeg, encode_png, fit_pixels

CROWD_WORKING_PIXELS = 1_200_000  # detection and inpainting size: ~1265×949 for a 4:3 photo
# Smallest person worth erasing, as a share of the frame: about 15×40 px at the working size.
MIN_PERSON_SHARE = 0.0005
# On tiles the model also "finds" people in rockets, motorbikes and coffee cups: trained on
# selfies, it outlines whatever stands out when nothing else does. A passer-by must therefore be
# seen at two of the three scales (mean probability over the blob) and found again, in the same
# shape, in squares centred on it at these multiples of its size. Measured on 18 generated scenes
# with 34 pasted passers-by and on skimage's rocket, motorcycle, coffee, cat and astronaut photos:
# 33 of the people erased, nothing else erased.
SEEN = 0.5
RELOOK_CONTEXTS = (1.2, 1.6)
RELOOK_MIN_IOU = 0.55
ERASE_MARGIN = 0.008  # of the long side: the model's outline sits a little inside hair and edges
ERASE_FEATHER = 0.006  # of the long side: width of the soft seam around an erased person
PROTECT_MARGIN = 4  # working pixels kept around the subject, > 1 so upscaling cannot reach it
INPAINT_RADIUS = 5  # Telea, only for a hole with no background anywhere around it to copy from
FILL_CONTEXT = 0.4  # of a hole's larger side, around it: the background PatchMatch copies from
GRAIN_SEED = 7  # the added grain is the same on every run: one photo, one result
FILL_PATCH_RADIUS = 3  # PatchMatch compares 7×7 patches (15×15: 1.4× the time, no visible gain)


# The carry when start() found nobody to remove: said explicitly, so that a carry that went
# missing (None) is an error and not a silent delivery of the untouched photo.
NOTHING_TO_REMOVE = b""


@dataclass
class _Blob:
    label: int
    area: int
    centre: tuple[float, float]
    seen: list[float]  # mean probability over the blob: whole frame, then each tile size


class LocalCrowd(Engine):
    def start(self, photo: Photo) -> Draft:
        working = fit_pixels(photo.open_reduced(WORKING_LONG_SIDE), CROWD_WORKING_PIXELS)
        rgb = _rgb_of(working)
        labels, subject, others = find_people(rgb)
        if subject is None:
            raise EngineError(
                _("We could not find a person in this photo. Please choose a photo in which you are clearly visible."),
                "local crowd: no person on the whole frame",
            )
        if not others:
            return Draft(
                preview=working,
                carry=NOTHING_TO_REMOVE,
                note=_("We found no one to remove besides the main person, so your photo is unchanged."),
            )
        alpha = erase_alpha(labels, subject.label, others)
        filled = fill_erased(rgb, alpha, labels > 0)
        result = blend(np.asarray(working.convert("RGB")), filled, alpha)
        preview = Image.fromarray(result)
        if working.mode == "RGBA":
            preview.putalpha(working.getchannel("A"))
        people = people_of(labels, subject.label, others)
        return Draft(preview=preview, carry=pack_patch(alpha, filled, people))

    def finish(self, photo: Photo, carry: bytes | None) -> Result:
        if carry is None:  # lost (expired, or never stored): never deliver the photo unchanged by mistake
            raise EngineError(_("This photo has expired. Please upload it again."), "local crowd: no carry")
        if carry == NOTHING_TO_REMOVE:  # the visitor was told: the download is their own photo
            data, media_type = photo.upright_bytes()
            return Result(data, media_type, photo.width, photo.height)
        working_size, box, alpha, fill, _people = unpack_patch(carry)
        image = photo.open()
        full_box = _scale_box(box, working_size, image.size)
        size = (full_box[2] - full_box[0], full_box[3] - full_box[1])
        region = np.array(image.crop(full_box))
        alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR)
        # Cubic, not bilinear: the synthesised grain survives the upscale better (fine texture of iid
        # noise after working size → 1.26× → working size again: 0.43 of the original, bilinear 0.28).
        fill = cv2.resize(fill, size, interpolation=cv2.INTER_CUBIC)
        add_grain(fill, region[..., :3], alpha, scale=size[0] / (box[2] - box[0]))
        region[..., :3] = blend(region[..., :3], fill, alpha)
        # Only the erased area is touched: every pixel outside `full_box`, and every pixel inside
        # it where alpha is 0 (the subject among them), keeps the original's exact value.
        image.paste(Image.fromarray(region, image.mode), full_box[:2])
        if image.mode == "RGBA":
            return Result(encode_png(image), "image/png", image.width, image.height)
        return Result(encode_jpeg(image, quality=95), "image/jpeg", image.width, image.height)


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


def find_people(rgb: np.ndarray) -> tuple[np.ndarray, _Blob | None, list[int]]:
    """A label image of everything the model outlines, the main subject (None when the whole
    frame shows nobody) and the labels of the other people."""
    height, width = rgb.shape[:2]
    maps = probability_by_scale(rgb)
    # A pixel belongs to someone if the whole frame says so, or if the tiles of two sizes agree:
    # what one tile size alone invents (often a bridge of lawn between the subject and a
    # passer-by, which would merge them into one blob) is left out.
    votes = sum((chance_map > 0.5).astype(np.uint8) for chance_map in maps[1:])
    someone = (maps[0] > 0.5) | (votes >= 2)
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(someone.astype(np.uint8), connectivity=8)
    blobs = []
    for label in range(1, count):
        area = int(stats[label, cv2.CC_STAT_AREA])
        if area < MIN_PERSON_SHARE * width * height:
            continue
        left, top, box_width, box_height = (int(v) for v in stats[label, :4])
        box = (slice(top, top + box_height), slice(left, left + box_width))
        inside = labels[box] == label
        seen = [float(chance_map[box][inside].mean()) for chance_map in maps]
        blobs.append(_Blob(label, area, (float(centroids[label][0]), float(centroids[label][1])), seen))
    # The subject is someone the model sees on the whole frame, its own setting; tiles only add
    # the people too small for that.
    candidates = [blob for blob in blobs if blob.seen[0] > 0.5 and blob.area >= MIN_SUBJECT_SHARE * width * height]
    if not candidates:
        return labels, None, []
    subject = main_subject(candidates, (height, width))
    others = [
        blob.label
        for blob in blobs
        if blob is not subject
        and sum(share >= SEEN for share in blob.seen) >= 2
        and relook_agreement(rgb, labels, blob.label) >= RELOOK_MIN_IOU
    ]
    return labels, subject, others


def relook_agreement(rgb: np.ndarray, labels: np.ndarray, label: int) -> float:
    """How well the model finds blob `label` again in squares centred on it: the lowest overlap
    (IoU) between the blob and the new outline, counted near the blob only, where other blobs
    (the subject next to a passer-by) do not count against it."""
    height, width = labels.shape
    rows, cols = np.nonzero(labels == label)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    reach = max(bottom - top, right - left) // 4
    near = (slice(max(0, top - reach), bottom + reach), slice(max(0, left - reach), right + reach))
    blob = labels[near] == label
    counted = blob | (labels[near] == 0)
    lowest = 1.0
    for context in RELOOK_CONTEXTS:
        side = min(max(8, int(max(bottom - top, right - left) * context)), width, height)
        # Squares reaching past the frame are shifted back inside it.
        x0 = min(max(0, (left + right - side) // 2), width - side)
        y0 = min(max(0, (top + bottom - side) // 2), height - side)
        again = np.zeros(labels.shape, bool)
        again[y0 : y0 + side, x0 : x0 + side] = (
            person_probability(rgb[y0 : y0 + side, x0 : x0 + side], (side, side)) > 0.5
        )
        found = again[near] & counted
        union = np.count_nonzero(found | blob)
        lowest = min(lowest, np.count_nonzero(found & blob) / union if union else 0.0)
    return lowest


def main_subject(people: list[_Blob], shape: tuple[int, int]) -> _Blob:
    """The largest person, favouring the centre: someone at a corner must be twice the size of
    someone at the centre to count as the subject."""
    height, width = shape
    half_diagonal = np.hypot(width, height) / 2

    def weight(person: _Blob) -> float:
        off_centre = np.hypot(person.centre[0] - width / 2, person.centre[1] - height / 2) / half_diagonal
        return person.area * (1 - 0.5 * off_centre)

    return max(people, key=weight)


def erase_alpha(labels: np.ndarray, subject: int, others: list[int]) -> np.ndarray:
    """How much of the inpainted image to take at each working pixel (uint8): 255 over the other
    people and a margin, a soft seam around that, 0 on and near the subject."""
    long_side = max(labels.shape)
    margin = max(1, round(ERASE_MARGIN * long_side))
    feather = max(1, round(ERASE_FEATHER * long_side))
    others_mask = np.isin(labels, others).astype(np.uint8) * 255
    core = cv2.dilate(others_mask, disk(margin))
    # Blur a mask grown by the seam's width, so the blur's fall-off lies outside the core.
    alpha = cv2.GaussianBlur(cv2.dilate(others_mask, disk(margin + feather)), (0, 0), feather / 2.5)
    np.maximum(alpha, core, out=alpha)
    protect = cv2.dilate((labels == subject).astype(np.uint8), disk(PROTECT_MARGIN))
    alpha[protect > 0] = 0
    return alpha


def fill_erased(rgb: np.ndarray, alpha: np.ndarray, occupied: np.ndarray) -> np.ndarray:
    """The working image with every erased hole filled by PatchMatch texture synthesis (Barnes et
    al. 2009, `pypatchmatch`), each hole on a crop around it, copying only from background: no
    person the finder outlined (the subject among them) and no other hole is ever a source.

    Measured with bench/people.py (3 MP scenes, the fine texture of each fill against the true
    background there: variance of the Laplacian): Telea inpainting plus a Poisson-blended patch
    of nearby background (the fill before this one) kept 1-74 %, median 5 %, a smooth smudge;
    Telea plus high frequencies copied from a nearby patch 7-130 %, uneven and still smudged;
    PatchMatch at half size plus copied detail 8-130 %; PatchMatch at the working size on crops
    (this, with add_grain at full size) 43-126 %, median 94 %, and erased walkers are hard to find.
    Its cost grows with the crop, hence the crops (0.4 of the hole's size around it) and 7×7
    patches: on the scene with four passers-by 3.3 s of CPU with 15×15 patches and whole-hole
    context, 2.4 s like this, 0.3 s for the old fill."""
    hole = alpha > 0
    filled = rgb.copy()
    height, width = hole.shape
    unusable = occupied | hole
    count, holes, stats, _centroids = cv2.connectedComponentsWithStats(hole.astype(np.uint8), connectivity=8)
    for label in range(1, count):
        left, top, hole_width, hole_height, area = (int(v) for v in stats[label])
        reach = max(8, int(FILL_CONTEXT * max(hole_width, hole_height)))
        while True:  # widen the crop until it holds at least as much usable background as hole
            x0, y0 = max(0, left - reach), max(0, top - reach)
            x1, y1 = min(width, left + hole_width + reach), min(height, top + hole_height + reach)
            sources = np.count_nonzero(~unusable[y0:y1, x0:x1])
            if sources >= area or (x1 - x0, y1 - y0) == (width, height):
                break
            reach *= 2
        this = holes[y0:y1, x0:x1] == label
        if sources == 0:  # nothing in the photo to copy from: a smooth guess is all there is
            smooth = cv2.inpaint(filled[y0:y1, x0:x1], this.astype(np.uint8), INPAINT_RADIUS, cv2.INPAINT_TELEA)
            filled[y0:y1, x0:x1][this] = smooth[this]
            continue
        excluded = unusable[y0:y1, x0:x1] & ~this
        synthesised = patch_match.inpaint(
            np.ascontiguousarray(filled[y0:y1, x0:x1]),
            this.astype(np.uint8),
            global_mask=excluded.astype(np.uint8),
            patch_size=FILL_PATCH_RADIUS,
        )
        filled[y0:y1, x0:x1][this] = synthesised[this]
    return filled


@dataclass(frozen=True)
class CarriedPerson:
    """One person the finder outlined, as kept in the carry so that a later step can let the
    visitor choose who stays without finding the people again: the mask of the person's box at
    the working size, the box's place in the working image, and whether this person was kept."""

    left: int
    top: int
    mask: np.ndarray  # bool, the box's height × width
    kept: bool


def people_of(labels: np.ndarray, subject: int, others: list[int]) -> list[CarriedPerson]:
    """The subject and every erased person, each as its box and mask."""
    people = []
    for label in [subject, *others]:
        left, top, width, height = cv2.boundingRect((labels == label).astype(np.uint8))
        mask = labels[top : top + height, left : left + width] == label
        people.append(CarriedPerson(left, top, mask, kept=label == subject))
    return people


# The carry: working size, the box around the erased area, its alpha (PNG), its fill (JPEG), then
# each person found (box, kept or erased, 1-bit PNG of the mask). Only boxes are kept; a passer-by
# is a few percent of the frame, so this is tens of kilobytes, plus ~1 kB per person.
_PATCH = struct.Struct(">4sHHHHHHII")
_PATCH_MAGIC = b"LCP2"
_PERSON = struct.Struct(">HHHH?I")  # left, top, width, height, kept, PNG length


def pack_patch(alpha: np.ndarray, filled: np.ndarray, people: list[CarriedPerson]) -> bytes:
    left, top, width, height = cv2.boundingRect((alpha > 0).astype(np.uint8))
    crop = (slice(top, top + height), slice(left, left + width))
    mask = _png(alpha[crop])
    fill = encode(Image.fromarray(np.ascontiguousarray(filled[crop])), "JPEG", quality=95)
    header = _PATCH.pack(_PATCH_MAGIC, alpha.shape[1], alpha.shape[0], left, top, width, height, len(mask), len(fill))
    parts = [header, mask, fill]
    for person in people:
        outline = _bilevel_png(person.mask)
        box_height, box_width = person.mask.shape
        parts += [_PERSON.pack(person.left, person.top, box_width, box_height, person.kept, len(outline)), outline]
    return b"".join(parts)


def unpack_patch(
    carry: bytes,
) -> tuple[tuple[int, int], tuple[int, int, int, int], np.ndarray, np.ndarray, list[CarriedPerson]]:
    """(working size, box of the erased area, its alpha, its fill, the people), or ValueError."""
    magic, working_width, working_height, left, top, width, height, mask_length, fill_length = _PATCH.unpack_from(carry)
    if magic != _PATCH_MAGIC:
        raise ValueError("not a local crowd patch")
    start = _PATCH.size
    alpha = _unpng(carry[start : start + mask_length])
    start += mask_length
    with Image.open(io.BytesIO(carry[start : start + fill_length])) as fill:
        fill_rgb = np.asarray(fill.convert("RGB"))
    start += fill_length
    people = []
    while start < len(carry):
        person_left, person_top, box_width, box_height, kept, length = _PERSON.unpack_from(carry, start)
        start += _PERSON.size
        mask = _unpng(carry[start : start + length]) > 0
        if mask.shape != (box_height, box_width):
            raise ValueError("a person's mask does not fit its box")
        people.append(CarriedPerson(person_left, person_top, mask, kept))
        start += length
    return (working_width, working_height), (left, top, left + width, top + height), alpha, fill_rgb, people


def _bilevel_png(mask: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", mask.astype(np.uint8) * 255, [cv2.IMWRITE_PNG_BILEVEL, 1])
    return data.tobytes()


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
