"""MediaPipe's pose landmark model ("full") on one square crop: where the body's 39 points are, how
sure it is that the crop shows a person, and the person's outline.

Measured on the model file (tests/test_people.py): the presence output is already a probability
(0.91 on the astronaut, 0.03 on a coffee cup, 3e-9 on noise), while the landmarks' visibility and
the segmentation are logits (the segmentation spans about −1,600..270).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segmentation.engines import runtime
from segmentation.engines.crops import Crop, cut, from_points, points_to_photo
from segmentation.engines.detection import sigmoid

# "full" finds the body (6.4 MB, ~40 ms); "heavy" outlines it (27.7 MB, ~150 ms) — see people.py.
MODEL_FILE = "pose_landmark_full.tflite"
HEAVY_MODEL_FILE = "pose_landmark_heavy.tflite"
SIDE = 256
# Landmarks 33 and 34 are the model's own hip centre and body-scale point, from which MediaPipe
# crops the next look (pose_landmarks_to_roi: side twice their distance × 1.25, turned upright).
HIP_CENTRE, SCALE_POINT = 33, 34
CROP_SCALE = 1.25
NOSE, LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP = 0, 11, 12, 23, 24
BODY = slice(0, 33)  # the 33 points of the body (the rest are the model's own helpers)


@dataclass(frozen=True)
class Look:
    crop: Crop
    points: np.ndarray  # 39×2 photo pixels
    visibility: np.ndarray  # 39 probabilities that each point is visible (not hidden or outside)
    presence: float  # probability that the crop shows a person
    outline: np.ndarray  # SIDE×SIDE float32 person probability over the crop

    def next_crop(self) -> Crop:
        """The crop MediaPipe looks at next: upright around the body these landmarks describe."""
        return from_points(self.points[HIP_CENTRE], self.points[SCALE_POINT], CROP_SCALE)

    @property
    def height(self) -> float:
        """The body's full height in photo pixels, standing or not (twice the hip centre to
        body-scale point distance: that point is placed a little above the head)."""
        return float(2 * np.linalg.norm(self.points[SCALE_POINT] - self.points[HIP_CENTRE]))


def look(rgb: np.ndarray, crop: Crop, model_file: str = MODEL_FILE) -> Look:
    """Run a landmark model (full or heavy) on `crop` of an H×W×3 uint8 RGB picture."""
    tensor = cut(rgb, crop, SIDE)[None].astype(np.float32) * np.float32(1 / 255)
    outputs = runtime.run(model_file, tensor)
    landmarks = outputs["Identity"].reshape(39, 5)
    return Look(
        crop=crop,
        points=points_to_photo(crop, landmarks[:, :2], SIDE),
        visibility=sigmoid(landmarks[:, 3]),
        presence=float(outputs["Identity_1"].ravel()[0]),
        outline=sigmoid(outputs["Identity_2"][0, ..., 0]).astype(np.float32),
    )
