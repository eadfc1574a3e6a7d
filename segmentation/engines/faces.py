"""Faces and their landmarks: MediaPipe's short-range BlazeFace detector.

The model (`face_detection_short_range.tflite`, Apache-2.0, from the `mediapipe==0.10.21` wheel:
see weights/SOURCE.md) sees the photo letterboxed into 128×128 and answers, for each of its 896
anchors, a score and a box with six landmarks. Decoding follows the wheel's own graph
(`face_detection_short_range_cpu.binarypb`): SSD anchors on strides 8, 16, 16, 16 (detection.py),
offsets scaled by 128, sigmoid scores above 0.5, then weighted non-maximum suppression at IoU 0.3.
It finds faces within about two metres of the camera, filling at least a tenth of the frame's
short side: the faces of portraits and selfies, which is what an ID photo is made from. It runs on
LiteRT like the other models (runtime.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from segmentation.engines import runtime
from segmentation.engines.detection import FACE_ANCHORS, anchors, sigmoid

MODEL_FILE = "face_detection_short_range.tflite"
MODEL_SIDE = 128
_ANCHOR_CENTRES = anchors(FACE_ANCHORS)[:, :2]  # x, y in 0..1, in the model's row order
MIN_SCORE = 0.5  # the graph's own threshold
NMS_IOU = 0.3  # the graph's own min_suppression_threshold

# Landmark order in the model's output. "Right" is the person's right: the eye on the left of the
# picture.
RIGHT_EYE, LEFT_EYE, NOSE, MOUTH, RIGHT_EAR, LEFT_EAR = range(6)


@dataclass(frozen=True)
class Face:
    """One face, in pixels of the picture it was found in."""

    score: float
    box: tuple[float, float, float, float]  # left, top, width, height
    landmarks: np.ndarray  # 6×2: right eye, left eye, nose tip, mouth centre, right ear, left ear

    @property
    def right_eye(self) -> np.ndarray:
        return self.landmarks[RIGHT_EYE]

    @property
    def left_eye(self) -> np.ndarray:
        return self.landmarks[LEFT_EYE]

    @property
    def eye_centre(self) -> np.ndarray:
        return (self.landmarks[RIGHT_EYE] + self.landmarks[LEFT_EYE]) / 2

    @property
    def eye_distance(self) -> float:
        return float(np.hypot(*(self.landmarks[LEFT_EYE] - self.landmarks[RIGHT_EYE])))


# Faces smaller than about a tenth of the frame's side are beyond the short-range model on the
# whole frame (letterboxed to 128 px, such a face is 12 px). When the whole frame shows none, the
# model looks again at squares half the short side, overlapping by half, like the selfie tiles.
TILE_FRACTION = 1 / 2


def detect_faces(rgb: np.ndarray) -> list[Face]:
    """Every face in an H×W×3 uint8 RGB picture, most confident first, in its pixels."""
    found = _look(rgb, 0, 0)
    height, width = rgb.shape[:2]
    side = int(min(height, width) * TILE_FRACTION)
    if found[0].size == 0 and side >= MODEL_SIDE:
        step = side // 2
        looks = [
            _look(rgb[y : y + side, x : x + side], x, y)
            for y in _starts(height, side, step)
            for x in _starts(width, side, step)
        ]
        found = tuple(np.concatenate(parts) for parts in zip(*looks, strict=True))
    if found[0].size == 0:
        return []
    return [
        _closer(rgb, Face(float(score), tuple(map(float, box)), points)) for score, box, points in _weighted_nms(*found)
    ]


# A face found on the whole frame may be 20 px wide in the model's input, its landmarks several of
# the photo's pixels off per model pixel. Measured on skimage's astronaut enlarged to 1536 px (face
# 282 px wide): the eye line tilts 2.6° between the pupils read by hand, 9.8° from the whole
# frame, 3.8° from a closer look. The model looks again at a square this many face widths wide.
CLOSER_LOOK_FACE_WIDTHS = 2.5


def _closer(rgb: np.ndarray, face: Face) -> Face:
    """The face as the model sees it in a square around it, where it fills about 40 % of the
    input; the first answer when the closer look finds nothing overlapping it."""
    height, width = rgb.shape[:2]
    left, top, box_width, box_height = face.box
    side = int(CLOSER_LOOK_FACE_WIDTHS * max(box_width, box_height))
    x0 = int(min(max(0, left + box_width / 2 - side / 2), max(0, width - side)))
    y0 = int(min(max(0, top + box_height / 2 - side / 2), max(0, height - side)))
    scores, boxes, points = _look(rgb[y0 : y0 + side, x0 : x0 + side], x0, y0)
    if scores.size == 0:
        return face
    overlap = _iou(np.array(face.box), boxes)
    best = int(np.argmax(overlap))
    if overlap[best] < NMS_IOU:
        return face
    return Face(float(scores[best]), tuple(map(float, boxes[best])), points[best])


def _starts(length: int, side: int, step: int) -> list[int]:
    last = max(0, length - side)
    points = list(range(0, last + 1, step))
    return points if points[-1] == last else [*points, last]


def _look(rgb: np.ndarray, x0: int, y0: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's detections above MIN_SCORE on one picture (letterboxed, as the graph's
    ImageToTensor does): scores, boxes (left, top, width, height) and 6×2 landmarks, in pixels of
    the picture offset by (x0, y0)."""
    height, width = rgb.shape[:2]
    side = max(height, width)
    scale = MODEL_SIDE / side
    small = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    square = np.zeros((MODEL_SIDE, MODEL_SIDE, 3), np.uint8)
    pad_x, pad_y = (MODEL_SIDE - small.shape[1]) // 2, (MODEL_SIDE - small.shape[0]) // 2
    square[pad_y : pad_y + small.shape[0], pad_x : pad_x + small.shape[1]] = small
    outputs = runtime.run(MODEL_FILE, square[None].astype(np.float32) * np.float32(1 / 127.5) - 1)  # −1..1
    scores = sigmoid(outputs["classificators"].reshape(-1).astype(np.float64))
    keep = np.flatnonzero(scores >= MIN_SCORE)
    centres = _ANCHOR_CENTRES[keep]
    raw = outputs["regressors"].reshape(-1, 16)[keep] / MODEL_SIDE
    # From the 0..1 square to the picture's pixels.
    offset = np.array([x0, y0], np.float64) - np.array([pad_x, pad_y]) / scale
    points = (raw[:, 4:16].reshape(-1, 6, 2) + centres[:, None, :]) * side + offset
    sizes = raw[:, 2:4] * side
    corners = (raw[:, 0:2] + centres) * side + offset - sizes / 2
    return scores[keep], np.concatenate([corners, sizes], axis=1), points


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[0] + box[2], boxes[:, 0] + boxes[:, 2])
    y1 = np.minimum(box[1] + box[3], boxes[:, 1] + boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    return inter / (box[2] * box[3] + boxes[:, 2] * boxes[:, 3] - inter + 1e-9)


def _weighted_nms(scores: np.ndarray, boxes: np.ndarray, points: np.ndarray) -> list:
    """MediaPipe's WEIGHTED suppression: each cluster of overlapping detections becomes their
    score-weighted mean, which steadies the landmarks (several anchors fire on one face)."""
    order = np.argsort(-scores)
    scores, boxes, points = scores[order], boxes[order], points[order]
    remaining = np.ones(len(scores), bool)
    faces = []
    for index in range(len(scores)):
        if not remaining[index]:
            continue
        cluster = remaining & (_iou(boxes[index], boxes) > NMS_IOU)
        remaining &= ~cluster
        weights = scores[cluster] / scores[cluster].sum()
        box = (boxes[cluster] * weights[:, None]).sum(axis=0)
        landmarks = (points[cluster] * weights[:, None, None]).sum(axis=0)
        faces.append((scores[index], box, landmarks))
    return faces
