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
