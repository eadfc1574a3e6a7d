"""What a visitor sees before paying and what a download can be flattened onto: the watermarked
preview, the "before" picture (and each person cut from it, for choosing who stays), and the solid
backgrounds behind a cutout."""

from __future__ import annotations

import functools
import io

from PIL import Image, ImageDraw, ImageFont, ImageOps

from segmentation.pixels import encode, encode_jpeg, fit_pixels

WATERMARK_TEXT = "PREVIEW"
PREVIEW_MAX_PIXELS = 250_000
# Effort 2 of 6: half the time of 4 for 3% more bytes at the same quality.
PREVIEW_WEBP = {"quality": 80, "method": 2}


def render_preview(image: Image.Image, label: str = "") -> bytes:
    """The free preview: at most 0.25 MP, a watermark repeated across the whole frame (subject
    included), encoded as WebP, which keeps transparency at a fraction of PNG's size."""
    small = fit_pixels(image, PREVIEW_MAX_PIXELS)
    base = small.convert("RGBA")
    base.alpha_composite(_watermark_layer(base.size, label or WATERMARK_TEXT))
    if small.mode != "RGBA":
        base = base.convert("RGB")
    return encode(base, "WEBP", **PREVIEW_WEBP)


def render_before(image: Image.Image) -> bytes:
    """The visitor's own photo at preview size, for the before/after comparison."""
    small = fit_pixels(image, PREVIEW_MAX_PIXELS)
    return encode(small.convert("RGB"), "WEBP", **PREVIEW_WEBP)


@functools.lru_cache(maxsize=16)
def _watermark_layer(size: tuple[int, int], text: str) -> Image.Image:
    """The watermark for a preview of `size`. Drawing and rotating it costs more than the rest of a
    preview; previews come in a few sizes (one per aspect ratio), so the last 16 (1 MB each) are
    kept. Shared between threads: callers only read it."""
    width, height = size
    font_size = max(12, min(width, height) // 9)
    font = ImageFont.load_default(size=font_size)
    # Draw rows of text on a canvas large enough to cover the frame once rotated.
    diagonal = int((width**2 + height**2) ** 0.5) + font_size * 2
    tile = Image.new("RGBA", (diagonal, diagonal), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    line = ("  " + text + "  ") * (diagonal // max(1, font_size * len(text) // 2) + 2)
    step = int(font_size * 2.2)
    for row, y in enumerate(range(0, diagonal, step)):
        offset = -(row % 2) * font_size * 2
        draw.text(
            (offset, y),
            line,
            font=font,
            fill=(255, 255, 255, 120),
            stroke_width=max(1, font_size // 14),
            stroke_fill=(0, 0, 0, 90),
        )
    tile = tile.rotate(30, resample=Image.Resampling.BICUBIC)
    left, top = (diagonal - width) // 2, (diagonal - height) // 2
    return tile.crop((left, top, left + width, top + height))


# --- Downloads -----------------------------------------------------------------------------------------

NAMED_BACKGROUNDS = {"white": "FFFFFF", "blue": "438EDB", "red": "BE0000"}


def parse_background(value: str | None) -> str | None:
    """None for transparent, else an RRGGBB hex string; ValueError for anything else."""
    if value is None or value == "" or value == "transparent":
        return None
    value = NAMED_BACKGROUNDS.get(value.lower(), value)
    if len(value) == 6 and all(c in "0123456789abcdefABCDEF" for c in value):
        return value.upper()
    raise ValueError(value)


def on_background(png: bytes, colour: str) -> bytes:
    """A cutout flattened onto a solid colour, as a JPEG (quality 95)."""
    with Image.open(io.BytesIO(png)) as im:
        im.load()
        cutout = im if im.mode == "RGBA" else im.convert("RGBA")
        background = Image.new("RGB", cutout.size, "#" + colour)
        background.paste(cutout, mask=cutout.getchannel("A"))  # no RGBA copy of the background
    return encode_jpeg(background, quality=95)


# --- People to choose from ---------------------------------------------------------------------------

PERSON_SIDE = 160  # px: the list of who stays shows each at 80 CSS px, sharp on 2× screens
PERSON_MARGIN = 0.08  # of the person's box, each side: a little of what is around them


def render_person(before: bytes, box: tuple[float, float, float, float]) -> bytes:
    """One person for the list of who stays: their box (`x, y, w, h` as fractions of the photo),
    with a margin, cut from the "before" picture and scaled to fit PERSON_SIDE, as WebP."""
    with Image.open(io.BytesIO(before)) as im:
        im.load()
        width, height = im.size
        x, y, w, h = box
        left, top = max(0.0, x - PERSON_MARGIN * w), max(0.0, y - PERSON_MARGIN * h)
        right, bottom = min(1.0, x + w + PERSON_MARGIN * w), min(1.0, y + h + PERSON_MARGIN * h)
        area = (int(left * width), int(top * height), max(1, round(right * width)), max(1, round(bottom * height)))
        person = ImageOps.contain(im.crop(area).convert("RGB"), (PERSON_SIDE, PERSON_SIDE), Image.Resampling.LANCZOS)
    return encode(person, "WEBP", **PREVIEW_WEBP)
