"""Small pixel helpers that more than one image module needs."""

import io

import cv2
import numpy as np
from PIL import Image


def disk(radius: float) -> np.ndarray:
    """A round structuring element (for dilate, erode, open, close) reaching `radius` pixels from
    its centre, rounded, and at least 1: a radius that a small working size scales below one pixel
    still does something."""
    size = 2 * max(1, round(radius)) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def encode(image: Image.Image, format: str, **options) -> bytes:
    """`image` saved as `format` with Pillow's `options`, in memory: an image never touches a disk."""
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def encode_png(image: Image.Image) -> bytes:
    """Full-resolution cutouts: zlib level 1 is several times faster than the default for a few
    percent more bytes, which matters at 12 MP and more."""
    return encode(image, "PNG", compress_level=1)


def encode_jpeg(image: Image.Image, quality: int = 95) -> bytes:
    return encode(image if image.mode == "RGB" else image.convert("RGB"), "JPEG", quality=quality)


def fit_pixels(image: Image.Image, max_pixels: int) -> Image.Image:
    if image.width * image.height <= max_pixels:
        return image
    scale = (max_pixels / (image.width * image.height)) ** 0.5
    size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def blend(base: np.ndarray, fill: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """base·(255−α) + fill·α, rounded, in integers (α: 0-255, one per pixel): where α is 0 the
    result is `base` exactly, so what a blend does not touch stays the visitor's own pixel."""
    weight = alpha.astype(np.uint16)[..., None]
    mixed = base.astype(np.uint16) * (255 - weight) + fill.astype(np.uint16) * weight + 127
    return (mixed // 255).astype(np.uint8)
