"""Decoding single-shot detectors (SSD, BlazePose, BlazeFace): anchors, boxes, scores, overlap.

The models answer, for each of a fixed grid of "anchors", a box relative to that anchor and a score
logit. The anchor grid is not in the model file; it is rebuilt here exactly as MediaPipe's
SsdAnchorsCalculator builds it from each graph's options, in the same order as the model's rows
(layer by layer, row by row, column by column, anchor by anchor). Coordinates are fractions of the
model's input square.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnchorGrid:
    """MediaPipe SsdAnchorsCalculatorOptions, the fields our three detectors use."""

    input_side: int
    strides: tuple[int, ...]
    min_scale: float
    max_scale: float
    aspect_ratios: tuple[float, ...] = (1.0,)
    reduce_boxes_in_lowest_layer: bool = False
    fixed_anchor_size: bool = False


# object_detection_oid_v4 (objectron's person finder): 19², 10², 5², 3², 2², 1² cells, 1,917 anchors.
SSD_ANCHORS = AnchorGrid(300, (16, 32, 64, 128, 256, 512), 0.2, 0.95, (1.0, 2.0, 0.5, 3.0, 0.3333), True)
# pose_detection_cpu: 28², 14², 7² cells, 2,254 anchors of unit size.
POSE_ANCHORS = AnchorGrid(224, (8, 16, 32, 32, 32), 0.1484375, 0.75, fixed_anchor_size=True)
# face_detection_short_range: 16², 8² cells, 896 anchors of unit size.
FACE_ANCHORS = AnchorGrid(128, (8, 16, 16, 16), 0.1484375, 0.75, fixed_anchor_size=True)


def _scale(grid: AnchorGrid, index: int) -> float:
    if len(grid.strides) == 1:
        return (grid.min_scale + grid.max_scale) / 2
    return grid.min_scale + (grid.max_scale - grid.min_scale) * index / (len(grid.strides) - 1)


def anchors(grid: AnchorGrid) -> np.ndarray:
    """N×4 float32 (x centre, y centre, width, height), in the models' row order."""
    rows = []
    layer = 0
    count = len(grid.strides)
    while layer < count:
        sizes: list[tuple[float, float]] = []  # (width, height) of each anchor at a cell
        last = layer
        # Consecutive layers with the same stride share one grid of cells.
        while last < count and grid.strides[last] == grid.strides[layer]:
            scale = _scale(grid, last)
            if last == 0 and grid.reduce_boxes_in_lowest_layer:
                shapes = [(1.0, 0.1), (2.0, scale), (0.5, scale)]
            else:
                shapes = [(ratio, scale) for ratio in grid.aspect_ratios]
                # One more square anchor between this layer's scale and the next one's.
                following = 1.0 if last == count - 1 else _scale(grid, last + 1)
                shapes.append((1.0, math.sqrt(scale * following)))
            sizes += [(s * math.sqrt(ratio), s / math.sqrt(ratio)) for ratio, s in shapes]
            last += 1
        cells = math.ceil(grid.input_side / grid.strides[layer])
        for y in range(cells):
            for x in range(cells):
                for width, height in sizes:
                    if grid.fixed_anchor_size:
                        width = height = 1.0
                    rows.append(((x + 0.5) / cells, (y + 0.5) / cells, width, height))
        layer = last
    return np.array(rows, np.float32)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(logits, -80, 80)))


def decode_ssd(raw: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """TensorFlow Object Detection API encodings (ty, tx, th, tw; centre ×10, size ×5 in log space)
    as N×4 boxes (left, top, right, bottom) in fractions of the input."""
    x = raw[:, 1] / 10 * grid[:, 2] + grid[:, 0]
    y = raw[:, 0] / 10 * grid[:, 3] + grid[:, 1]
    width = np.exp(raw[:, 3] / 5) * grid[:, 2]
    height = np.exp(raw[:, 2] / 5) * grid[:, 3]
    return np.stack([x - width / 2, y - height / 2, x + width / 2, y + height / 2], axis=1)


def decode_blaze(raw: np.ndarray, grid: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """BlazePose / BlazeFace rows (x, y, w, h, then key point x, y pairs, in pixels of the input
    square, offsets from the anchor centre) as N×4 boxes (left, top, right, bottom) and N×K×2 key
    points, in fractions of the input."""
    values = raw / side
    x = values[:, 0] + grid[:, 0]
    y = values[:, 1] + grid[:, 1]
    width, height = values[:, 2], values[:, 3]
    boxes = np.stack([x - width / 2, y - height / 2, x + width / 2, y + height / 2], axis=1)
    points = values[:, 4:].reshape(len(raw), -1, 2) + grid[:, None, :2]
    return boxes, points


def overlap(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one box with each of N boxes (left, top, right, bottom)."""
    width = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = width * height
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Indices of the boxes kept, best first: each box overlapping a better one by more than
    `threshold` (IoU) is dropped."""
    order = list(np.argsort(-scores))
    kept: list[int] = []
    while order:
        best = order.pop(0)
        kept.append(int(best))
        if order:
            rest = np.array(order)
            order = [int(i) for i in rest[overlap(boxes[best], boxes[rest]) <= threshold]]
    return kept


def letterbox(width: int, height: int) -> tuple[float, float, float]:
    """How a width×height picture sits in the models' square input when its aspect is kept: the
    scale of the square's side in picture pixels and the picture's offset inside the square, as
    fractions of it (x, y)."""
    side = max(width, height)
    return side, (side - width) / 2 / side, (side - height) / 2 / side
