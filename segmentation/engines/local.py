"""The embedded engines: background removal and passer-by removal without any third party.

The cutout finds every person with the people finder (`people.py`: detectors, then MediaPipe's pose
landmark model on an upright crop of each), keeps the subject's group (`group.py`) and widens
their outlines with the selfie model (`selfie.py`) close to them. The crowd engine reads people
from the selfie model alone. The models see people at 256×256, so everything they say is blurry
at photo scale; the work here is turning that into clean full-resolution results cheaply:

* cutout: the outlines are sharpened along the photo's own edges by a colour guided filter at
  the working size (~1536 px) at upload. That alpha matte is the carry (with each person's
  outline, `packing.py`), so the preview shows exactly the edges the download will have, and the
  full-resolution phase is only a decode, a bilinear upscale of the matte and a PNG encode.
* crowd: people are found on the whole frame and on overlapping tiles (see `LocalCrowd`); the
  passers-by are filled by PatchMatch texture synthesis at about 1.2 MP at upload, and only that
  patch and its feathered mask are carried to the full-resolution phase, which blends them into
  the original.
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

from segmentation.engines import people as people_finder
from segmentation.engines.base import Draft, Engine, EngineError, Result
from segmentation.engines.group import subject_group
from segmentation.engines.packing import pack_people
from segmentation.engines.people import Person
from segmentation.engines.selfie import MODEL_SIDE, person_probability, probability_by_scale
from segmentation.intake import WORKING_LONG_SIDE, Photo
from segmentation.pixels import blend, disk, encode, encode_jpeg, encode_png, fit_pixels
from segmentation.previews import PREVIEW_MAX_PIXELS

# A subject smaller than this share of the frame is either not there or too small for the model
# (which was trained on selfies) to outline usefully. Measured: photos without a salient subject
# (landscapes, gradients, textures) stay below 0.01 %; a person filling a tenth of the frame is
# found at over 95 % IoU.
MIN_SUBJECT_SHARE = 0.01
# Blobs smaller than this share of the largest one are specks of misread background, not a second
# person: a group photo's people are each far larger.
MIN_BLOB_SHARE_OF_LARGEST = 0.02
# The selfie model may add to the finder's outline within this share of the person's height of
# it: about a hand's width, what the finder's 256 px outline most often misses (not tuned further).
SELFIE_REACH = 0.04
CLOSER_LOOK_MARGIN = 0.15  # of the people's box, each side: room for hair and arms the first look cut
# Guided filter, in pixels of the 1536 px working image: the model's edge is uncertain over about
# two of its cells (1536 / 256 = 6 px each), so the filter looks a little further than that.
MATTE_RADIUS = 16
MATTE_EPS = 1e-3  # small: follow colour edges closely (measured better than 1e-2 on hair)
MATTE_SUBSAMPLE = 4  # fast guided filter: coefficients at 1/4, applied at full working size
MATTE_GAIN = 3.0  # probabilities 0.33..0.67 become the soft edge; the rest is fully in or out


class LocalCutout(Engine):
    def start(self, photo: Photo) -> Draft:
        working = photo.open_reduced(WORKING_LONG_SIDE)
        rgb = _rgb_of(working)
        found = people_finder.find_people(rgb)
        chance = subject_probability(rgb, found)
        alpha = refine_matte(rgb, chance)
        if working.mode == "RGBA":  # already partly transparent: never make hidden pixels visible
            alpha = np.minimum(alpha, np.asarray(working.getchannel("A")))
        cutout = working.convert("RGB")
        cutout.putalpha(Image.fromarray(alpha))
        carry = pack_cutout(alpha, pack_people(working.size, found))
        return Draft(preview=fit_pixels(cutout, PREVIEW_MAX_PIXELS), carry=carry)

    def finish(self, photo: Photo, carry: bytes | None) -> Result:
        if not carry:
            raise EngineError(_("This photo has expired. Please upload it again."), "local cutout: no matte")
        matte, _people = unpack_cutout(carry)
        image = photo.open()
        # Bilinear is enough: the matte was already refined along the photo's edges at the working
        # size, and upscaling it at most ~3× (12–24 MP) keeps the edge smooth, never stair-stepped.
        alpha = cv2.resize(matte, image.size, interpolation=cv2.INTER_LINEAR)
        if image.mode == "RGBA":
            alpha = np.minimum(alpha, np.asarray(image.getchannel("A")))
            image = image.convert("RGB")
        # Fully transparent pixels are made black: their colour is never seen, and a constant
        # background makes the PNG about a third of the size and twice as fast to encode
        # (12 MP: 22.7 → 7.3 MB, 2.1 → 0.9 s), for ~0.1 s here.
        image.paste((0, 0, 0), mask=Image.fromarray(cv2.compare(alpha, 0, cv2.CMP_EQ)))
        image.putalpha(Image.fromarray(alpha))
        return Result(encode_png(image), "image/png", image.width, image.height)


def subject_probability(rgb: np.ndarray, found: list[Person]) -> np.ndarray:
    """Probability that each pixel shows the photo's subject (a person or a group), float32 at the
    image's size, or EngineError when no one is there.

    The people finder's outlines of the subject's group; for a subject alone, widened by the
    selfie model's closer look where it sees more of them close by. The selfie model, trained at
    256 px on whole frames, draws hair, hands and held things more fully, but it also keeps sofas,
    walls and the gaps between people, so it may only add near a single person. Measured on
    bench/people.py's composites, IoU finder alone → widened: full body 0.963 → 0.989, rotated
    action 0.894 → 0.916, side view 0.822 → 0.800; for groups it lost (three people 0.987 →
    0.895), so groups keep the finder's outlines. The cutout tests' close-ups: 0.982 → 0.990.
    """
    group = subject_group(found)
    if len(group) > 1:
        return _outlines(group, rgb.shape[:2])
    try:
        selfie = _selfie_probability(rgb)
    except EngineError:
        if not group:
            raise
        return _outlines(group, rgb.shape[:2])
    if not group:  # a close-up the finder could not place (a face filling the frame)
        return selfie
    (person,) = group
    chance = _outlines(group, rgb.shape[:2])
    reach = SELFIE_REACH * person.height
    near = cv2.dilate((chance > 0.5).astype(np.uint8), disk(reach))
    return np.maximum(chance, selfie * near)


def _outlines(people: list[Person], shape: tuple[int, int]) -> np.ndarray:
    chance = np.zeros(shape, np.float32)
    for person in people:
        left, top = person.origin
        window = chance[top : top + person.mask.shape[0], left : left + person.mask.shape[1]]
        np.maximum(window, person.mask * np.float32(1 / 255), out=window)
    return chance


def _selfie_probability(rgb: np.ndarray) -> np.ndarray:
    """The selfie model's person probability at the image's size, from a second, closer look, or
    EngineError when it sees no one.

    The first look (whole frame) finds where the people are. The model, trained on selfies, is
    far surer of itself when they fill the picture, so it looks again at the box around them
    (plus a margin) and only that answer is kept; everything outside the box, where the first
    look saw only specks and faint guesses, is background. Measured on the cutout test scenes:
    mean IoU 0.979 → 0.984; on a portrait pasted into a photo of a coffee table, the lower body
    went from a patchy 0.3–0.6 to solid.
    """
    height, width = rgb.shape[:2]
    first = person_probability(rgb)
    count, labels, stats, _centroids = cv2.connectedComponentsWithStats((first > 0.5).astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if count < 2 or areas.max() < MIN_SUBJECT_SHARE * first.size:
        raise EngineError(
            _("We could not find a person in this photo. Please choose a photo in which someone is clearly visible."),
            f"local cutout: largest blob {areas.max() if count > 1 else 0} of {first.size} cells",
        )
    people = np.flatnonzero(areas >= MIN_BLOB_SHARE_OF_LARGEST * areas.max()) + 1
    rows, cols = np.nonzero(np.isin(labels, people))
    # Box of the people in image pixels (the 256 grid is stretched over the image), plus margin.
    left, right = cols.min() * width / MODEL_SIDE, (cols.max() + 1) * width / MODEL_SIDE
    top, bottom = rows.min() * height / MODEL_SIDE, (rows.max() + 1) * height / MODEL_SIDE
    margin_x, margin_y = CLOSER_LOOK_MARGIN * (right - left), CLOSER_LOOK_MARGIN * (bottom - top)
    x0, x1 = int(max(0, left - margin_x)), int(min(width, right + margin_x))
    y0, y1 = int(max(0, top - margin_y)), int(min(height, bottom + margin_y))
    chance = np.zeros((height, width), np.float32)
    chance[y0:y1, x0:x1] = person_probability(rgb[y0:y1, x0:x1], (x1 - x0, y1 - y0))
    return chance


def refine_matte(rgb: np.ndarray, chance: np.ndarray) -> np.ndarray:
    """An 8-bit alpha matte at the image's size from the model's low-resolution map.

    Colour guided filter (He, Sun & Tang), fast variant: the linear coefficients that map the
    image's colours to the probability are fitted at 1/4 size and applied to the full image, so
    the matte's edge follows the photo's edges (hair, shoulders) instead of the model's 256-cell
    grid. Measured on people pasted into generated scenes: 27 % less error along the outline
    than the upscaled map alone, at ~70 ms for a 1536 px image.
    """
    height, width = rgb.shape[:2]
    if chance.shape != (height, width):
        chance = cv2.resize(chance, (width, height), interpolation=cv2.INTER_LINEAR)
    guided = _guided_filter(rgb, chance, MATTE_RADIUS * max(width, height) // WORKING_LONG_SIDE or 1)
    alpha = (guided - 0.5) * (MATTE_GAIN * 255) + 127.5
    return np.clip(alpha, 0, 255).astype(np.uint8)


def _guided_filter(rgb: np.ndarray, target: np.ndarray, radius: int) -> np.ndarray:
    height, width = target.shape
    guide = rgb.astype(np.float32) * np.float32(1 / 255)
    small_size = (max(1, width // MATTE_SUBSAMPLE), max(1, height // MATTE_SUBSAMPLE))
    I = cv2.resize(guide, small_size, interpolation=cv2.INTER_AREA)  # noqa: E741 (the paper's name for the guide)
    p = cv2.resize(target, small_size, interpolation=cv2.INTER_AREA)
    window = (2 * max(1, radius // MATTE_SUBSAMPLE) + 1,) * 2

    def mean(x: np.ndarray) -> np.ndarray:
        return cv2.blur(x, window, borderType=cv2.BORDER_REFLECT)

    mean_I, mean_p = mean(I), mean(p)
    cov_Ip = mean(I * p[..., None]) - mean_I * mean_p[..., None]
    r, g, b = I[..., 0], I[..., 1], I[..., 2]
    mr, mg, mb = mean_I[..., 0], mean_I[..., 1], mean_I[..., 2]
    # The colour covariance per window (symmetric 3×3, regularised), inverted in closed form:
    # np.linalg.solve on a million tiny systems is ten times slower.
    rr = mean(r * r) - mr * mr + MATTE_EPS
    rg = mean(r * g) - mr * mg
    rb = mean(r * b) - mr * mb
    gg = mean(g * g) - mg * mg + MATTE_EPS
    gb = mean(g * b) - mg * mb
    bb = mean(b * b) - mb * mb + MATTE_EPS
    inv_rr, inv_rg, inv_rb = gg * bb - gb * gb, rb * gb - rg * bb, rg * gb - rb * gg
    inv_gg, inv_gb, inv_bb = rr * bb - rb * rb, rg * rb - rr * gb, rr * gg - rg * rg
    det = rr * inv_rr + rg * inv_rg + rb * inv_rb
    x, y, z = cov_Ip[..., 0], cov_Ip[..., 1], cov_Ip[..., 2]
    a = (
        np.dstack(
            [
                inv_rr * x + inv_rg * y + inv_rb * z,
                inv_rg * x + inv_gg * y + inv_gb * z,
                inv_rb * x + inv_gb * y + inv_bb * z,
            ]
        )
        / det[..., None]
    )
    offset = mean_p - (a * mean_I).sum(axis=2)
    a = cv2.resize(mean(a), (width, height), interpolation=cv2.INTER_LINEAR)
    offset = cv2.resize(mean(offset), (width, height), interpolation=cv2.INTER_LINEAR)
    return (a * guide).sum(axis=2) + offset


def _rgb_of(image: Image.Image) -> np.ndarray:
    """Pixels for the model: transparent areas of an RGBA upload shown as neutral grey, since the
    colour hidden under alpha 0 is arbitrary (often black) and could read as a silhouette."""
    if image.mode != "RGBA":
        return np.asarray(image.convert("RGB"))
    grey = Image.new("RGB", image.size, (128, 128, 128))
    grey.paste(image, mask=image.getchannel("A"))
    return np.asarray(grey)


# The cutout's carry: the refined matte at the working size (PNG), then each person found (packing.py)
# for choosing who stays later without finding them again.
_CUTOUT = struct.Struct(">4sI")
_CUTOUT_MAGIC = b"LCC2"


def pack_cutout(matte: np.ndarray, people: bytes) -> bytes:
    matte_png = _png(matte)
    return _CUTOUT.pack(_CUTOUT_MAGIC, len(matte_png)) + matte_png + people


def unpack_cutout(carry: bytes) -> tuple[np.ndarray, bytes]:
    """The matte and the packed people. EngineError when the carry is not a cutout's."""
    try:
        magic, length = _CUTOUT.unpack_from(carry)
        if magic != _CUTOUT_MAGIC:
            raise ValueError("not a local cutout carry")
        matte = _unpng(carry[_CUTOUT.size : _CUTOUT.size + length])
    except (struct.error, ValueError) as error:
        raise EngineError(_("This photo has expired. Please upload it again."), f"local cutout: {error}") from error
    return matte, carry[_CUTOUT.size + length :]


def _png(mask: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    return data.tobytes()


def _unpng(data: bytes) -> np.ndarray:
    mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise ValueError("carry is not a PNG")
    return mask


# --- Crowd ------------------------------------------------------------------------------------------

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
