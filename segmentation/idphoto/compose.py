"""The framed ID photo as pixels: the photo and the person's mask turned, scaled and cropped to the
spec, with the old background's colour taken out of the edges, then laid on a new background,
alone or as a print sheet, as a JPEG with its print resolution recorded.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from segmentation.idphoto.specs import DPI, Spec

# Blur-fusion foreground estimation (Forte & Pitié, "Approximate Fast Foreground Colour
# Estimation", ICIP 2021): a wide pass, then narrower ones, each starting from the last estimate.
# The paper's two passes (90 px at full size, then 6) leave some of the old colour on edges wider
# than a few pixels; measured on a red edge over green, 12 px wide: green left at the edge's
# faint end 105 of 200 with radii (18, 6), 61 with (36, 12, 6, 3). The wide radius is a share of
# the ID photo's long side, at least 36 px.
WIDE_RADIUS_SHARE = 0.09
MIN_WIDE_RADIUS = 36
NARROW_RADII = (12, 6, 3)


def framed_cutout(rgb: np.ndarray, alpha: np.ndarray, matrix: np.ndarray, spec: Spec) -> Image.Image:
    """An RGBA image of the spec's size: the person of `rgb` (H×W×3 uint8) with `alpha` (uint8, any
    size: it is mapped through its own scale) placed by `matrix` (relative coordinates → ID photo
    pixels), foreground colours cleaned of the old background."""
    size = (spec.width_px, spec.height_px)
    colour = _warp(rgb, matrix, size)
    opacity = _warp(alpha, matrix, size)
    foreground = decontaminate(colour, opacity)
    return Image.fromarray(np.dstack([foreground, opacity]), "RGBA")


def _warp(pixels: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`pixels` through the relative `matrix` onto `size`. A large photo is first reduced by area
    near the output's scale: a warp samples, and sampling a 12 MP photo down to 0.2 MP aliases."""
    height, width = pixels.shape[:2]
    to_output = matrix @ np.diag([1 / width, 1 / height, 1.0])
    scale = float(np.sqrt(abs(np.linalg.det(to_output[:, :2]))))
    if scale < 0.5:
        # Only the part that lands in the ID photo (plus a margin for the turn) is reduced.
        back = cv2.invertAffineTransform(to_output)
        corners = np.array([[0, 0], [size[0], 0], [0, size[1]], [size[0], size[1]]], np.float64)
        source = corners @ back[:, :2].T + back[:, 2]
        x0, y0 = np.floor(source.min(axis=0)).astype(int) - 2
        x1, y1 = np.ceil(source.max(axis=0)).astype(int) + 2
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
        if x1 > x0 and y1 > y0:
            reduce = 2 * scale  # leave the last 2× to the bilinear warp, which is exact there
            crop = pixels[y0:y1, x0:x1]
            small = cv2.resize(
                crop,
                (max(1, round((x1 - x0) * reduce)), max(1, round((y1 - y0) * reduce))),
                interpolation=cv2.INTER_AREA,
            )
            step_x, step_y = (x1 - x0) / small.shape[1], (y1 - y0) / small.shape[0]
            to_output = to_output @ np.array([[step_x, 0, x0], [0, step_y, y0], [0, 0, 1.0]])
            pixels = small
    # Past the photo's edges the last pixels repeat: below the photo that prolongs the shoulders a
    # few rows (framing refuses more); above the head the mask is transparent anyway.
    return cv2.warpAffine(pixels, to_output, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def decontaminate(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The person's own colours where the mask is partial (hair, edges), estimated without the old
    background that showed through: without it, a grey or green wall leaves a grey or green fringe
    around the head on a blue background."""
    image = rgb.astype(np.float32) / 255
    a = alpha.astype(np.float32) / 255
    foreground = background = image
    for radius in (max(MIN_WIDE_RADIUS, round(WIDE_RADIUS_SHARE * max(alpha.shape))), *NARROW_RADII):
        foreground, background = _blur_fusion(image, foreground, background, a, radius)
    return np.clip(foreground * 255 + 0.5, 0, 255).astype(np.uint8)


def _blur_fusion(image, foreground, background, a, radius):
    size = (radius, radius)
    blurred_a = cv2.blur(a, size)[..., None]
    a = a[..., None]
    blurred_f = cv2.blur(foreground * a, size) / (blurred_a + 1e-5)
    blurred_b = cv2.blur(background * (1 - a), size) / ((1 - blurred_a) + 1e-5)
    foreground = blurred_f + a * (image - a * blurred_f - (1 - a) * blurred_b)
    return np.clip(foreground, 0, 1), blurred_b


def on_background(cutout: Image.Image, colour: str) -> Image.Image:
    """The RGBA cutout laid on a solid RRGGBB colour."""
    ground = Image.new("RGB", cutout.size, "#" + colour)
    ground.paste(cutout, mask=cutout.getchannel("A"))
    return ground


# The 6×4 in print sheet (landscape, 300 dpi): copies in a centred grid, a gap between them, and
# a thin grey cut line along every edge of every copy, run across the sheet.
SHEET_SIZE = (1800, 1200)
SHEET_GAP = 12  # px between copies (1 mm): room to cut without touching the next copy
CUT_LINE = (170, 170, 170)


def _grid(width: int, height: int) -> tuple[int, int]:
    # Copies and the gaps between them, plus one pixel each side for the outer cut lines.
    columns = max(1, (SHEET_SIZE[0] - 2 + SHEET_GAP) // (width + SHEET_GAP))
    rows = max(1, (SHEET_SIZE[1] - 2 + SHEET_GAP) // (height + SHEET_GAP))
    return columns, rows


def copies_per_sheet(spec: Spec) -> int:
    columns, rows = _grid(spec.width_px, spec.height_px)
    return columns * rows


def sheet(photo: Image.Image) -> Image.Image:
    """As many copies of `photo` as fit on a 6×4 in sheet, with cut lines."""
    width, height = photo.size
    columns, rows = _grid(width, height)
    used_w, used_h = columns * width + (columns - 1) * SHEET_GAP, rows * height + (rows - 1) * SHEET_GAP
    left0, top0 = (SHEET_SIZE[0] - used_w) // 2, (SHEET_SIZE[1] - used_h) // 2
    xs = [left0 + column * (width + SHEET_GAP) for column in range(columns)]
    ys = [top0 + row * (height + SHEET_GAP) for row in range(rows)]
    pixels = np.full((SHEET_SIZE[1], SHEET_SIZE[0], 3), 255, np.uint8)
    # Lines just outside each copy: cutting along them leaves the copy whole at its exact size.
    for x in xs:
        pixels[:, [max(0, x - 1), min(SHEET_SIZE[0] - 1, x + width)]] = CUT_LINE
    for y in ys:
        pixels[[max(0, y - 1), min(SHEET_SIZE[1] - 1, y + height)], :] = CUT_LINE
    page = Image.fromarray(pixels)
    for y in ys:
        for x in xs:
            page.paste(photo, (x, y))
    return page


def jpeg(image: Image.Image, quality: int = 95) -> bytes:
    """A JPEG that records 300 dpi (JFIF density), so it prints at the spec's size."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality, dpi=(DPI, DPI))
    return buffer.getvalue()


# "For online forms": many upload forms cap the file size. Quality goes down, the pixels never do.
LOWEST_QUALITY = 30


def jpeg_under(image: Image.Image, max_bytes: int) -> bytes | None:
    """The best-quality JPEG (95 down to 30) of `image` within `max_bytes`, None if none fits."""
    low, high, best = LOWEST_QUALITY, 95, None
    while low <= high:  # quality → size is monotonic enough for a binary search
        quality = (low + high) // 2
        data = jpeg(image, quality)
        if len(data) <= max_bytes:
            best, low = data, quality + 1
        else:
            high = quality - 1
    return best
