"""MediaPipe's selfie-segmentation model, run through `runtime.py`.

The model ships inside the package (`weights/`, see SOURCE.md there) and is never downloaded. It
takes the whole picture stretched to 256×256 (MediaPipe's own graph does not keep the aspect ratio
either) and answers, for each of its 256×256 cells, the probability that the cell shows a person.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from segmentation.engines import runtime

MODEL_FILE = "selfie_segmentation.tflite"
MODEL_SIDE = 256


def model_input(rgb: np.ndarray) -> np.ndarray:
    """An HxWx3 uint8 RGB array as the model's 1x256x256x3 float32 tensor in 0..1."""
    square = cv2.resize(rgb, (MODEL_SIDE, MODEL_SIDE), interpolation=cv2.INTER_AREA)
    return square[None].astype(np.float32) * np.float32(1 / 255)


def probabilities(tensor: np.ndarray) -> np.ndarray:
    """Run the model on one tensor from `model_input`: a 256x256 float32 map in 0..1."""
    (output,) = runtime.run(MODEL_FILE, tensor).values()
    return output[0, ..., 0]


def person_probability(image: Image.Image | np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Person probability for each pixel of an RGB(A) picture, float32 in 0..1.

    The map is 256x256, or resized (bilinear) to `size` = (width, height) when given, e.g. the
    image's own size.
    """
    rgb = _rgb_array(image)
    chance = probabilities(model_input(rgb))
    if size is not None and size != (MODEL_SIDE, MODEL_SIDE):
        chance = cv2.resize(chance, size, interpolation=cv2.INTER_LINEAR)
    return chance


def _rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, np.ndarray):
        return image[..., :3] if image.shape[-1] == 4 else image
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image)


# Tiles for finding people far smaller than the frame, as fractions of the image's short side.
# The model was trained on selfies, where the person fills most of the picture: a passer-by a
# tenth of the frame high is invisible to it on the whole frame but plain in a tile half the
# frame high (measured: mean probability over such people 0.1–0.5 whole-frame, 0.85–0.98 in
# tiles). Neighbouring tiles overlap by half, so anyone smaller than half a tile is whole in one.
TILE_FRACTIONS = (1 / 2, 1 / 3)


def tile_origins(width: int, height: int, side: int) -> list[tuple[int, int]]:
    """Top-left corners of square tiles of `side` covering the image, overlapping by half."""
    step = max(1, side // 2)

    def starts(length: int) -> list[int]:
        last = max(0, length - side)
        points = list(range(0, last + 1, step))
        if points[-1] != last:
            points.append(last)
        return points

    return [(x, y) for y in starts(height) for x in starts(width)]


def probability_by_scale(rgb: np.ndarray, fractions: tuple[float, ...] = TILE_FRACTIONS) -> list[np.ndarray]:
    """Person probability at the image's size as seen at each scale: the whole frame first, then
    for each tile size the most confident of the tiles covering each pixel. float32 HxW in 0..1.

    Tiles of the second and later sizes are only looked at where an earlier scale saw someone
    (probability > 0.5 somewhere in the tile) and left at 0 elsewhere: the crowd engine counts a
    pixel as a person only when the whole frame or two tile sizes agree, so a tile where nothing
    was seen before could not change its answer, and skipping them saves half the model runs on
    a typical photo.
    """
    height, width = rgb.shape[:2]
    maps = [person_probability(rgb, (width, height))]
    seen = maps[0] > 0.5
    for index, fraction in enumerate(fractions):
        side = int(min(width, height) * fraction)
        chance = np.zeros((height, width), np.float32)
        if side >= MODEL_SIDE // 2:  # smaller tiles have too little detail to say anything
            for x, y in tile_origins(width, height, side):
                if index > 0 and not seen[y : y + side, x : x + side].any():
                    continue
                window = chance[y : y + side, x : x + side]
                np.maximum(window, person_probability(rgb[y : y + side, x : x + side], (side, side)), out=window)
        maps.append(chance)
        seen |= chance > 0.5
    return maps
