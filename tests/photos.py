"""Test photos, made in memory: generated scenes and real people from skimage.data."""

from __future__ import annotations

import numpy as np
from PIL import Image

from segmentation import pixels


def encode(image: Image.Image, format: str = "JPEG", **params) -> bytes:
    return pixels.encode(image, format, **params)


def astronaut() -> Image.Image:
    """A real portrait (512×512, Eileen Collins), bundled in scikit-image's wheel."""
    from skimage import data

    return Image.fromarray(data.astronaut())


def portrait_scene(width: int = 1200, height: int = 900, seed: int = 1) -> Image.Image:
    """The astronaut on a generated background: a plausible upload with a person in it."""
    rng = np.random.default_rng(seed)
    gradient = np.linspace(60, 200, width, dtype=np.float32)[None, :, None]
    background = np.broadcast_to(gradient, (height, width, 3)).copy()
    background += rng.normal(0, 6, background.shape)
    scene = Image.fromarray(np.clip(background, 0, 255).astype("uint8"))
    person = astronaut().resize((height * 512 // 512, height))
    scene.paste(person, ((width - person.width) // 2, 0))
    return scene


def gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    rgb = np.stack(
        [
            np.broadcast_to(x, (height, width)),
            np.broadcast_to(y, (height, width)),
            np.full((height, width), 128, np.uint8),
        ],
        axis=-1,
    )
    return Image.fromarray(rgb)


def id_portrait(height: int = 1800, seed: int = 2) -> Image.Image:
    """A photo an ID photo can be made from: the astronaut (head, shoulders, looking at the
    camera) enlarged so her head is about 500 px high, on a plain light wall, with room above."""
    rng = np.random.default_rng(seed)
    width = height * 3 // 4
    wall = np.full((height, width, 3), (205, 200, 190), np.float32) + rng.normal(0, 3, (height, width, 3))
    scene = Image.fromarray(np.clip(wall, 0, 255).astype("uint8"))
    side = height * 9 // 10
    person = astronaut().resize((side, side), Image.Resampling.LANCZOS)
    scene.paste(person, ((width - side) // 2, height - side))
    return scene
