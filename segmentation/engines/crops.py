"""Square crops, rotated upright around a person, cut from a photo for a model and put back.

A crop is a square of `side` pixels of the photo centred on (x, y) and turned by `angle` radians
(MediaPipe's convention: positive turns the crop's "up" towards the photo's right). The model sees
it as an n×n picture; `to_photo` maps the model's pixels to the photo's, and everything else here
(cutting, landmarks, pasting masks back) goes through that one matrix, so the maths cannot drift
between the directions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Crop:
    x: float
    y: float
    side: float
    angle: float = 0.0

    def to_photo(self, n: int) -> np.ndarray:
        """2×3 affine matrix from the model's n×n pixels to the photo's pixels."""
        scale = self.side / n
        cos, sin = math.cos(self.angle) * scale, math.sin(self.angle) * scale
        # Model pixel (u, v) → photo: centre + R(angle)·scale·(u − n/2, v − n/2).
        return np.array(
            [
                [cos, -sin, self.x - cos * n / 2 + sin * n / 2],
                [sin, cos, self.y - sin * n / 2 - cos * n / 2],
            ],
            np.float64,
        )

    def corners(self) -> np.ndarray:
        """The square's four corners in photo pixels."""
        square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)
        return points_to_photo(self, square, 1)

    def bounds(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The axis-aligned pixel box (left, top, right, bottom) holding the square, within the photo."""
        corners = self.corners()
        left, top = np.floor(corners.min(axis=0)).astype(int)
        right, bottom = np.ceil(corners.max(axis=0)).astype(int)
        return max(0, left), max(0, top), min(width, right), min(height, bottom)


def letterbox(width: int, height: int) -> Crop:
    """The whole photo in a square, its aspect kept, the rest of the square black."""
    return Crop(width / 2, height / 2, max(width, height))


def around(left: float, top: float, right: float, bottom: float, scale: float = 1.0, angle: float = 0.0) -> Crop:
    """The square on a box's centre whose side is the box's longer side × `scale`."""
    return Crop((left + right) / 2, (top + bottom) / 2, max(right - left, bottom - top) * scale, angle)


def from_points(centre: np.ndarray, scale_point: np.ndarray, scale: float) -> Crop:
    """MediaPipe's AlignmentPointsRects then RectTransformation: centred on `centre`, the side is
    twice the distance to `scale_point` × `scale`, and turned so that `scale_point` is straight up."""
    dx, dy = float(scale_point[0] - centre[0]), float(scale_point[1] - centre[1])
    angle = math.pi / 2 - math.atan2(-dy, dx)
    angle = (angle + math.pi) % (2 * math.pi) - math.pi
    return Crop(float(centre[0]), float(centre[1]), 2 * math.hypot(dx, dy) * scale, angle)


def cut(rgb: np.ndarray, crop: Crop, n: int) -> np.ndarray:
    """The crop as an n×n uint8 picture; outside the photo is black (as MediaPipe pads).

    A crop much larger than n is first shrunk by area averaging, so that fine detail (a striped
    shirt, a brick wall) does not alias into patterns the model has never seen.
    """
    height, width = rgb.shape[:2]
    matrix = crop.to_photo(n)
    shrink = crop.side / n / 1.5
    if shrink > 1:
        left, top, right, bottom = crop.bounds(width, height)
        if right - left < 2 or bottom - top < 2:
            return np.zeros((n, n, 3), np.uint8)
        size = (max(1, round((right - left) / shrink)), max(1, round((bottom - top) / shrink)))
        region = cv2.resize(rgb[top:bottom, left:right], size, interpolation=cv2.INTER_AREA)
        factor_x, factor_y = size[0] / (right - left), size[1] / (bottom - top)
        # Model pixel → photo pixel → shrunk region pixel.
        matrix = np.array([[factor_x, 0, -left * factor_x], [0, factor_y, -top * factor_y]]) @ np.vstack(
            [matrix, [0, 0, 1]]
        )
        rgb = region
    return cv2.warpAffine(
        rgb, matrix, (n, n), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT
    )


def points_to_photo(crop: Crop, points: np.ndarray, n: float) -> np.ndarray:
    """K×2 points in the model's n×n pixels as photo pixels."""
    matrix = crop.to_photo(1)
    return points / n @ matrix[:, :2].T + matrix[:, 2]


def paste(mask: np.ndarray, crop: Crop, width: int, height: int) -> tuple[np.ndarray, tuple[int, int]] | None:
    """A model's n×n map (float or uint8) laid on the photo: the part of the photo's box around
    the crop it covers, and where that part's top-left corner sits (x, y). None when the crop lies
    wholly outside the photo."""
    left, top, right, bottom = crop.bounds(width, height)
    if right <= left or bottom <= top:
        return None
    matrix = crop.to_photo(mask.shape[0])
    matrix[:, 2] -= (left, top)
    placed = cv2.warpAffine(
        mask, matrix, (right - left, bottom - top), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    return placed, (left, top)
