"""Faces in a photo: MediaPipe's short-range face detector (BlazeFace), for faces that fill at
least about a tenth of the frame, as in portraits and close-ups."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segmentation.engines import runtime
from segmentation.engines.crops import cut, letterbox, points_to_photo
from segmentation.engines.detection import FACE_ANCHORS, anchors, decode_blaze, non_max_suppression, sigmoid

MODEL_FILE = "face_detection_short_range.tflite"
SIDE = 128
_ANCHORS = anchors(FACE_ANCHORS)
MIN_SCORE = 0.5  # MediaPipe's face_detection_short_range graph
OVERLAP = 0.3  # its min_suppression_threshold
# Names of the key points, in the model's order (the person's right eye is on the photo's left).
KEY_POINTS = ("right_eye", "left_eye", "nose_tip", "mouth_centre", "right_ear_tragion", "left_ear_tragion")


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # left, top, right, bottom in photo pixels
    score: float  # 0..1
    points: np.ndarray  # 6×2 photo pixels, in KEY_POINTS order


def find_faces(rgb: np.ndarray, min_score: float = MIN_SCORE) -> list[Face]:
    """Every face in an H×W×3 uint8 RGB picture, most confident first."""
    height, width = rgb.shape[:2]
    square = letterbox(width, height)
    tensor = cut(rgb, square, SIDE)[None].astype(np.float32) * np.float32(2 / 255) - 1
    outputs = runtime.run(MODEL_FILE, tensor)
    scores = sigmoid(outputs["classificators"][0, :, 0])
    boxes, points = decode_blaze(outputs["regressors"][0], _ANCHORS, SIDE)
    chosen = np.flatnonzero(scores >= min_score)
    faces = []
    for index in chosen[non_max_suppression(boxes[chosen], scores[chosen], OVERLAP)]:
        corners = points_to_photo(square, boxes[index].reshape(2, 2), 1)
        faces.append(
            Face(
                box=tuple(float(v) for v in corners.ravel()),
                score=float(scores[index]),
                points=points_to_photo(square, points[index], 1),
            )
        )
    return faces
