"""A full-resolution crowd result from a provider's reduced, regenerated frame.

Image-editing models (DashScope's qwen-image-edit-plus) return the whole frame regenerated at
≤ 2048 px a side: the erased passers-by are gone, but every other pixel is re-synthesised too, a
little softer, with a slight global colour drift and sometimes a small zoom or shift. Upscaling that
frame would sell the visitor a blurry copy of their own photo. Instead we find where the model
really changed the picture and take only those regions from it; everywhere else the visitor keeps
their original pixels, exactly.

Finding the changes happens at a working resolution (about 1 MP), where it is cheap:

1. align the model's frame to the original (matched features and RANSAC; identity when that fails
   or the drift found is implausible),
2. undo the global colour drift (per-channel gain and offset, fitted on the bulk of the frame),
3. blur both, so that regenerated texture and sharpness differences fall below the threshold,
4. per-pixel colour distance (CIE76 ΔE) tolerant of outlines that moved by a pixel or two, an
   adaptive threshold with hysteresis,
5. clean the mask: open (specks), close (join a person's fragments), drop small components,
6. dilate (catch edges and shadows) and feather (no visible seam).

The mask and the alignment are then applied at full resolution, one changed region at a time, so
a 12 MP photo with two erased people never allocates a full-frame float image.

A job finds the changes once, at upload, and previews them at working size (`apply_changes` on the
working copy): the preview shows exactly the regions the download will take from the model. What
the unlock needs is kept as `pack(changes, frame)`: the mask, the alignment, the colour fit, and only
those pixels of the model's frame the full-resolution composite reads.
"""

from __future__ import annotations

import io
import logging
import zipfile
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from segmentation.engines.base import EngineError, Result
from segmentation.intake import Photo
from segmentation.pixels import blend, disk, encode_jpeg, encode_png

logger = logging.getLogger(__name__)

# Long side of the image the changes are looked for in (not intake's WORKING_LONG_SIDE, which is
# larger: finding changes needs less); parameters below are in pixels at this size and scale with
# the actual working size.
COMPARISON_LONG_SIDE = 1024
ALIGNMENT_FEATURES = 1500
ALIGNMENT_MIN_INLIERS = 12
BLUR_SIGMA = 2.0
# ΔE (CIE76) a change must reach: the adaptive threshold never goes below it. About the difference
# between two clearly different shades of the same colour; the model's re-rendered texture stays
# well under it once blurred.
MIN_DELTA_E = 10.0
# Local misalignment that does not count as a change, in pixels of the model's frame (the model
# draws outlines a few of its own pixels off, whatever the photo's size).
SHIFT_TOLERANCE = 4.0
# How far above the frame's typical difference (in robust standard deviations) a change must be.
NOISE_SIGMAS = 8.0
# Pixels above a fraction of the threshold join a change that they touch (hysteresis), so a person
# whose clothes resemble the background is still taken whole.
WEAK_FRACTION = 0.5
OPEN_RADIUS = 1
CLOSE_RADIUS = 8
# Smallest change kept, as a fraction of the frame: a far-away person in a 12 MP photo is still
# above it (about 9×9 working pixels), isolated flecks of regenerated texture are not.
MIN_REGION_FRACTION = 0.00012
DILATE_RADIUS = 10
# Plausible model drift; an alignment estimate beyond it is a failure, not a drift.
MAX_ALIGN_SCALE = 0.06
MAX_ALIGN_SHIFT = 0.05  # of the long side, at any corner

WHITE = (255, 255, 255)


@dataclass
class Changes:
    """Where the model's frame differs from the original, at working resolution."""

    alpha: np.ndarray  # float32, working size, 0 = keep the original, 1 = take the model
    # 3×3 affine: working pixel (x, y, 1) → pixel of the model's frame it corresponds to.
    to_edited: np.ndarray
    gain: np.ndarray  # per channel: corrected model = gain * model + offset
    offset: np.ndarray
    work_size: tuple[int, int]

    @property
    def fraction(self) -> float:
        """Share of the frame taken from the model."""
        return float(np.count_nonzero(self.alpha > 0.5)) / self.alpha.size

    @property
    def any(self) -> bool:
        return bool(self.alpha.any())


def on_white(image: Image.Image) -> Image.Image:
    """RGB with any transparency flattened onto white: what the model is shown, and so what its
    output is compared with."""
    if image.mode == "RGB":
        return image
    if image.mode != "RGBA":
        return image.convert("RGB")
    background = Image.new("RGBA", image.size, WHITE + (255,))
    background.alpha_composite(image)
    return background.convert("RGB")


def find_changes(original: Image.Image, edited: Image.Image) -> Changes:
    """Locate the model's edits. `original` is the visitor's photo at any size (RGB or RGBA),
    `edited` the model's frame at any size (its aspect ratio may differ slightly)."""
    source = np.asarray(on_white(original))
    model = np.asarray(edited.convert("RGB"))
    height, width = source.shape[:2]
    scale = min(1.0, COMPARISON_LONG_SIDE / max(width, height))
    work_w, work_h = max(1, round(width * scale)), max(1, round(height * scale))
    unit = max(work_w, work_h) / COMPARISON_LONG_SIDE  # pixel parameters scale with the working size

    work_original = _resize(source, (work_w, work_h)).astype(np.float32)
    model_to_work = _resize(model, (work_w, work_h))
    alignment = _alignment(work_original, model_to_work.astype(np.float32))
    if _is_identity(alignment):
        work_model = model_to_work.astype(np.float32)
        valid = np.ones((work_h, work_w), bool)
    else:
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        work_model = cv2.warpAffine(
            model_to_work, alignment[:2], (work_w, work_h), flags=flags, borderMode=cv2.BORDER_REPLICATE
        ).astype(np.float32)
        # Where the model zoomed in, it has nothing to say about the original's border: keep it.
        inside = np.full((work_h, work_w), 255, np.uint8)
        valid = cv2.warpAffine(inside, alignment[:2], (work_w, work_h), flags=flags, borderValue=0) == 255

    sigma = max(0.8, BLUR_SIGMA * unit)
    blurred_original = cv2.GaussianBlur(work_original, (0, 0), sigma)
    blurred_model = cv2.GaussianBlur(work_model, (0, 0), sigma)
    gain, offset = _colour_drift(blurred_model, blurred_original, valid)
    corrected = blurred_model * gain + offset

    tolerance = max(1.0, SHIFT_TOLERANCE * max(work_w, work_h) / max(model.shape[:2]))
    distance = _delta_e(blurred_original, corrected, tolerance)
    distance[~valid] = 0.0
    mask = _changed_regions(distance, valid, unit)
    alpha = _feather(mask, unit) * valid
    # In 1/255 steps, as the blend uses it: the packed (uint8) mask is then this one exactly, and the
    # preview and the download take the same weights.
    alpha = np.rint(alpha * 255) / 255

    # Working pixel → model pixel: the alignment, then the working size → model size mapping.
    to_edited = _pixel_scale(model.shape[1] / work_w, model.shape[0] / work_h) @ alignment
    return Changes(alpha.astype(np.float32), to_edited, gain, offset, (work_w, work_h))


def apply_changes(original: Image.Image, edited: Image.Image, changes: Changes) -> Image.Image:
    """The original at full size with the changed regions taken from the model (colour-corrected).
    Every pixel where `changes.alpha` is 0 is the original's, bit for bit (alpha included)."""
    result = np.array(original)  # a writable copy, RGB or RGBA
    if not changes.any:
        return Image.fromarray(result, original.mode)
    source = np.asarray(original)
    model = np.asarray(edited.convert("RGB"))
    height, width = result.shape[:2]
    work_w, work_h = changes.work_size
    step_x, step_y = work_w / width, work_h / height

    regions = (changes.alpha > 0).astype(np.uint8)
    count, _labels, stats, _centroids = cv2.connectedComponentsWithStats(regions, connectivity=8)
    for x, y, w, h, _area in stats[1:count]:
        # The region's box at full size, with a pixel of margin for the interpolation.
        left = max(0, int(np.floor(x / step_x)) - 1)
        top = max(0, int(np.floor(y / step_y)) - 1)
        right = min(width, int(np.ceil((x + w) / step_x)) + 1)
        bottom = min(height, int(np.ceil((y + h) / step_y)) + 1)
        box_to_work = _pixel_scale(step_x, step_y) @ _translation(left, top)
        size = (right - left, bottom - top)
        flags = cv2.WARP_INVERSE_MAP
        alpha = cv2.warpAffine(changes.alpha, box_to_work[:2], size, flags=flags | cv2.INTER_LINEAR, borderValue=0)
        weight = np.rint(np.clip(alpha, 0.0, 1.0) * 255).astype(np.uint8)
        patch = cv2.warpAffine(
            model,
            (changes.to_edited @ box_to_work)[:2],
            size,
            flags=flags | cv2.INTER_CUBIC,
            borderMode=cv2.BORDER_REPLICATE,
        ).astype(np.float32)
        patch = np.clip(patch * changes.gain + changes.offset + 0.5, 0, 255).astype(np.uint8)
        # Integer blend: where the weight is 0 this is exactly the original pixel.
        result[top:bottom, left:right, :3] = blend(source[top:bottom, left:right, :3], patch, weight)
    return Image.fromarray(result, original.mode)


def full_resolution_result(photo: Photo, carry: bytes) -> Result:
    """The download for a crowd job: the composite at the photo's full size, JPEG quality 95, or
    PNG when the photo has transparency (which the composite keeps).

    `carry` is what `pack` made at upload.
    """
    return result_with(photo, *unpack(carry))


def result_with(photo: Photo, changes: Changes, edited: Image.Image | None) -> Result:
    """`full_resolution_result` for changes already unpacked (and perhaps narrowed to a choice of
    people: any alpha within the packed one reads only model pixels the carry kept)."""
    return encoded(composed(photo, changes, edited))


def composed(photo: Photo, changes: Changes, edited: Image.Image | None) -> Image.Image:
    """The photo at full size with `changes` taken from the model (a new image, RGB or RGBA)."""
    original = photo.open()
    image = apply_changes(original, edited, changes) if edited is not None else original
    logger.info(
        "Crowd composite %dx%d: %.1f%% of the frame taken from the model's output",
        photo.width,
        photo.height,
        changes.fraction * 100,
    )
    return image


def encoded(image: Image.Image) -> Result:
    """A full-size crowd result as the download: JPEG quality 95, or PNG when it has transparency."""
    if image.mode == "RGBA":
        return Result(encode_png(image), "image/png", image.width, image.height)
    return Result(encode_jpeg(image, quality=95), "image/jpeg", image.width, image.height)


# --- What a job keeps between preview and download --------------------------------------------------

CARRY_VERSION = 1
# Model pixels kept around each changed region, beyond what the resampling reads: rounding only.
CARRY_MARGIN = 2


def pack(changes: Changes, edited: Image.Image) -> bytes:
    """The changes and the model's pixels the full-resolution composite will read, as bytes.

    Everything else of the model's frame is blanked (black compresses to nearly nothing), so the
    carry costs about the erased share of the frame instead of a whole ≤ 2048 px PNG; when nothing
    was erased no frame is kept at all. An uncompressed zip (numpy's .npz) holding two PNGs and a few
    numbers: loaded without pickle, so a carry from a shared cache can hold nothing executable.
    """
    arrays = {
        "version": np.array([CARRY_VERSION]),
        "alpha": _png_array(Image.fromarray(np.rint(changes.alpha * 255).astype(np.uint8), "L")),
        "to_edited": changes.to_edited.astype(np.float64),
        "gain": changes.gain.astype(np.float32),
        "offset": changes.offset.astype(np.float32),
        "work_size": np.array(changes.work_size),
    }
    if changes.any:
        frame = np.asarray(edited.convert("RGB"))
        arrays["frame"] = _png_array(Image.fromarray(frame * _read_region(changes, frame.shape[:2])[..., None]))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def unpack(data: bytes) -> tuple[Changes, Image.Image | None]:
    """What `pack` kept: the changes, and the model's frame (blanked where not needed; None when
    nothing was erased)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            if int(stored["version"][0]) != CARRY_VERSION:
                raise ValueError(f"carry version {int(stored['version'][0])}")
            alpha = np.asarray(_png_image(stored["alpha"]), np.float32) / 255
            frame = _png_image(stored["frame"]).convert("RGB") if "frame" in stored.files else None
            changes = Changes(
                alpha,
                stored["to_edited"],
                stored["gain"],
                stored["offset"],
                tuple(int(side) for side in stored["work_size"]),
            )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise EngineError(_unusable_message(), f"crowd carry unreadable: {type(exc).__name__}: {exc}") from exc
    if alpha.shape != changes.work_size[::-1] or (changes.any and frame is None):
        raise EngineError(
            _unusable_message(),
            f"crowd carry inconsistent: mask {alpha.shape} for "
            f"{changes.work_size}, frame {'absent' if frame is None else 'kept'}",
        )
    return changes, frame


def _read_region(changes: Changes, frame_shape: tuple[int, int]) -> np.ndarray:
    """uint8 0/1 over the model's frame: the pixels `apply_changes` can read, at any output size.

    For each changed region it reads the model inside the region's working box, widened by the
    full-resolution box's margins (under two working pixels before, one after), mapped through
    `to_edited`; bicubic interpolation reaches one model pixel before and two after, and the frame's
    edge pixels stand in for anything outside it (BORDER_REPLICATE), hence the clamping.
    """
    height, width = frame_shape
    keep = np.zeros((height, width), np.uint8)
    regions = (changes.alpha > 0).astype(np.uint8)
    count, _labels, stats, _centroids = cv2.connectedComponentsWithStats(regions, connectivity=8)
    for x, y, w, h, _area in stats[1:count]:
        corners = np.array(
            [[x - 2, y - 2, 1], [x + w + 1, y - 2, 1], [x - 2, y + h + 1, 1], [x + w + 1, y + h + 1, 1]], float
        ).T
        mapped = (changes.to_edited @ corners)[:2]
        reach = 2 + CARRY_MARGIN
        left, right = (
            int(np.clip(v, 0, width - 1)) for v in (np.floor(mapped[0].min()) - reach, np.ceil(mapped[0].max()) + reach)
        )
        top, bottom = (
            int(np.clip(v, 0, height - 1))
            for v in (np.floor(mapped[1].min()) - reach, np.ceil(mapped[1].max()) + reach)
        )
        keep[top : bottom + 1, left : right + 1] = 1
    return keep


def _png_array(image: Image.Image) -> np.ndarray:
    return np.frombuffer(encode_png(image), np.uint8)


def _png_image(stored: np.ndarray) -> Image.Image:
    with Image.open(io.BytesIO(stored.tobytes())) as im:
        if im.format != "PNG":
            raise ValueError(f"expected a PNG, got {im.format}")
        im.load()
        return im.copy()


def _unusable_message() -> str:
    from django.utils.translation import gettext

    return gettext("The crowd-removal service returned an image we cannot use. Please try again.")


# --- Steps ---------------------------------------------------------------------------------------


def _resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (pixels.shape[1], pixels.shape[0]) == size:
        return pixels
    shrinking = size[0] <= pixels.shape[1] and size[1] <= pixels.shape[0]
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def _pixel_scale(sx: float, sy: float) -> np.ndarray:
    """3×3 map from pixel (x, y) of one grid to the pixel of a grid `sx`, `sy` times as dense,
    pixel centres aligned (the convention cv2.resize uses)."""
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def _translation(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def _is_identity(matrix: np.ndarray) -> bool:
    return bool(np.allclose(matrix, np.eye(3)))


def _alignment(original: np.ndarray, model: np.ndarray) -> np.ndarray:
    """3×3 affine map from a working pixel of the original to the same point in the model's frame
    (both at working size), or the identity when no plausible drift is found.

    Features matched with RANSAC rather than a global fit (ECC, phase correlation): the erased
    people are exactly where the frames disagree, and a global fit is pulled, sometimes far, by
    them, while RANSAC sets them aside as outliers. A similarity (zoom, shift, a hint of rotation)
    covers the drift these models show.
    """
    height, width = original.shape[:2]
    if min(width, height) < 64:
        return np.eye(3)
    # Softened alike: the photo's grain would give FAST corners by the thousand that the model's
    # smoother frame does not have (slow to find, useless to match).
    gray_original = _soft_gray(original)
    gray_model = _soft_gray(model)
    points_original, descriptors_original = _features(gray_original)
    points_model, descriptors_model = _features(gray_model)
    if descriptors_original is None or descriptors_model is None:
        return np.eye(3)
    # Lowe's ratio test drops ambiguous matches (repeated patterns: windows, stripes, tiles).
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(descriptors_original, descriptors_model, k=2)
    matches = [pair[0] for pair in pairs if len(pair) == 2 and pair[0].distance < 0.8 * pair[1].distance]
    if len(matches) < ALIGNMENT_MIN_INLIERS:
        return np.eye(3)
    source = np.float32([points_original[m.queryIdx].pt for m in matches])
    target = np.float32([points_model[m.trainIdx].pt for m in matches])
    warp, inliers = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=1.5, maxIters=4000, confidence=0.999
    )
    if warp is None or int(inliers.sum()) < ALIGNMENT_MIN_INLIERS:
        return np.eye(3)
    matrix = np.vstack([warp.astype(np.float64), [0.0, 0.0, 1.0]])
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]], float).T
    moved = np.abs((matrix @ corners)[:2] - corners[:2]).max()
    if np.abs(warp[:, :2] - np.eye(2)).max() > MAX_ALIGN_SCALE or moved > MAX_ALIGN_SHIFT * max(width, height):
        logger.info("Ignoring an implausible alignment of the model's frame: %s", np.round(warp, 4).tolist())
        return np.eye(3)
    if moved < 0.25:
        return np.eye(3)  # under a quarter of a pixel anywhere: not worth resampling for
    # Features may cluster on one object (a plain scene has little else), which leaves the zoom
    # poorly determined: keep the estimate only if it really fits the frames better.
    aligned = cv2.warpAffine(
        gray_model,
        warp,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    if _misfit(gray_original, aligned) >= _misfit(gray_original, gray_model):
        return np.eye(3)
    return matrix


def _misfit(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference over the best-matching 80% of pixels (the erased people are
    expected to differ and must not decide)."""
    difference = np.abs(a.astype(np.int16) - b)
    values = difference.ravel()
    cut = np.partition(values, int(values.size * 0.8))[: int(values.size * 0.8)]
    return float(cut.mean())


def _soft_gray(pixels: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(np.clip(pixels, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    return cv2.GaussianBlur(gray, (0, 0), 1.0)


def _features(gray: np.ndarray):
    """ORB keypoints and descriptors. FAST's usual contrast threshold first: on grainy photos a low
    one finds corners in the noise by the hundred thousand and is slow; on plain, smooth frames
    (which find few) the low threshold gives RANSAC enough points for an accurate fit."""
    points, descriptors = cv2.ORB_create(nfeatures=ALIGNMENT_FEATURES, fastThreshold=20).detectAndCompute(gray, None)
    if len(points) < ALIGNMENT_FEATURES // 2:
        points, descriptors = cv2.ORB_create(nfeatures=ALIGNMENT_FEATURES, fastThreshold=8).detectAndCompute(gray, None)
    return points, descriptors


def _colour_drift(model: np.ndarray, original: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel gain and offset taking the model's colours to the original's, fitted on the
    pixels that agree best (the erased regions are outliers and must not pull the fit)."""
    rows = np.flatnonzero(valid.ravel())
    if rows.size > 50_000:  # six parameters: a regular subsample is as good and much cheaper
        rows = rows[:: rows.size // 50_000]
    x = model.reshape(-1, 3)[rows].astype(np.float64)
    y = original.reshape(-1, 3)[rows].astype(np.float64)
    gain, offset = np.ones(3), np.median(y - x, axis=0)
    if rows.size < 16:
        return gain.astype(np.float32), offset.astype(np.float32)
    keep = np.ones(rows.size, bool)
    for _ in range(2):
        for channel in range(3):
            xs, ys = x[keep, channel], y[keep, channel]
            spread = xs.std()
            if spread < 4.0:  # too little range to tell a gain from an offset
                gain[channel], offset[channel] = 1.0, np.median(ys - xs)
                continue
            slope = float(np.cov(xs, ys, bias=True)[0, 1] / spread**2)
            if not 0.8 <= slope <= 1.25:
                slope = 1.0
            gain[channel], offset[channel] = slope, float(np.mean(ys - slope * xs))
        residual = np.abs(y - (x * gain + offset)).sum(axis=1)
        keep = residual <= np.percentile(residual, 80)
    return gain.astype(np.float32), offset.astype(np.float32)


def _delta_e(a: np.ndarray, b: np.ndarray, radius: float) -> np.ndarray:
    """Per-pixel colour distance (CIE76 ΔE) that tolerates local shifts up to `radius` pixels.

    A regenerated frame is never aligned to the pixel everywhere: outlines move by a pixel or two,
    differently in different places, and a plain difference lights up every strong edge. Here a
    pixel only differs by how far its colour lies outside the range of colours found within
    `radius` of it in the other image, and that in both directions: an edge that merely moved
    finds its colour nearby, an erased person does not find theirs anywhere close.
    """
    lab_a = cv2.cvtColor(np.clip(a / 255.0, 0, 1).astype(np.float32), cv2.COLOR_RGB2Lab)
    lab_b = cv2.cvtColor(np.clip(b / 255.0, 0, 1).astype(np.float32), cv2.COLOR_RGB2Lab)
    window = disk(radius)
    return np.minimum(_outside_range(lab_a, lab_b, window), _outside_range(lab_b, lab_a, window))


def _outside_range(pixels: np.ndarray, other: np.ndarray, window: np.ndarray) -> np.ndarray:
    low, high = cv2.erode(other, window), cv2.dilate(other, window)
    excess = np.maximum(low - pixels, 0) + np.maximum(pixels - high, 0)
    return np.sqrt((excess**2).sum(axis=2))


def _changed_regions(distance: np.ndarray, valid: np.ndarray, unit: float) -> np.ndarray:
    """uint8 mask (0/1) of the real changes: threshold with hysteresis, then cleaned."""
    values = distance[valid][::4]  # the typical level and spread, from a quarter of the pixels
    if values.size == 0:
        return np.zeros(distance.shape, np.uint8)
    typical = float(np.median(values))
    spread = float(np.median(np.abs(values - typical))) * 1.4826
    threshold = max(MIN_DELTA_E, typical + NOISE_SIGMAS * spread)
    strong = (distance > threshold).astype(np.uint8)
    strong = cv2.morphologyEx(strong, cv2.MORPH_OPEN, disk(OPEN_RADIUS * unit))
    if not strong.any():
        return strong
    weak = (distance > threshold * WEAK_FRACTION).astype(np.uint8) | strong
    count, labels = cv2.connectedComponents(weak, connectivity=8)
    seeded = np.zeros(count, bool)
    seeded[np.unique(labels[strong > 0])] = True
    seeded[0] = False
    mask = seeded[labels].astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, disk(CLOSE_RADIUS * unit))

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    smallest = MIN_REGION_FRACTION * mask.size
    large = np.zeros(count, bool)
    large[1:] = stats[1:, cv2.CC_STAT_AREA] >= smallest
    return large[labels].astype(np.uint8)


def _feather(mask: np.ndarray, unit: float) -> np.ndarray:
    """Soft weights: 1 over the dilated change, falling smoothly to exactly 0 outside it."""
    if not mask.any():
        return np.zeros(mask.shape, np.float32)
    radius = DILATE_RADIUS * unit
    grown = cv2.dilate(mask, disk(radius)).astype(np.float32)
    soft = cv2.GaussianBlur(grown, (0, 0), max(0.5, radius / 2))
    soft[soft < 1.0 / 255] = 0.0  # the Gaussian's far tail would otherwise touch most of the frame
    return soft
