"""Decoding the detectors' answers: anchors, box order, logits, overlap; and the crop maths."""

import math

import numpy as np
import pytest

from segmentation.engines import crops, detection


@pytest.mark.parametrize(
    ("grid", "count", "first_cells"),
    [(detection.SSD_ANCHORS, 1917, 19), (detection.POSE_ANCHORS, 2254, 28), (detection.FACE_ANCHORS, 896, 16)],
)
def test_anchor_grids_have_the_models_row_count_and_order(grid, count, first_cells):
    rows = detection.anchors(grid)
    assert rows.shape == (count, 4)
    # Row order: cell by cell along x first, every anchor of a cell together.
    per_cell = 3 if grid.reduce_boxes_in_lowest_layer else 2
    assert np.allclose(rows[:per_cell, :2], 0.5 / first_cells)
    assert np.allclose(rows[per_cell, :2], (1.5 / first_cells, 0.5 / first_cells))
    assert np.allclose(rows[per_cell * first_cells, :2], (0.5 / first_cells, 1.5 / first_cells))
    last_cells = math.ceil(grid.input_side / grid.strides[-1])
    assert np.allclose(rows[-1, :2], (last_cells - 0.5) / last_cells)


def test_ssd_anchor_shapes_follow_scales_and_aspect_ratios():
    rows = detection.anchors(detection.SSD_ANCHORS)
    # Lowest layer, reduced: a small square (0.1), then 2:1 and 1:2 at scale 0.2.
    assert np.allclose(rows[0, 2:], (0.1, 0.1))
    assert np.allclose(rows[1, 2:], (0.2 * math.sqrt(2), 0.2 / math.sqrt(2)))
    assert np.allclose(rows[2, 2:], (0.2 / math.sqrt(2), 0.2 * math.sqrt(2)))
    # The last layer (1 cell, scale 0.95): five ratios and a square between 0.95 and 1.
    assert np.allclose(rows[-6, 2:], (0.95, 0.95))
    assert np.allclose(rows[-1, 2:], (math.sqrt(0.95), math.sqrt(0.95)))


def test_pose_and_face_anchors_are_unit_sized():
    assert np.all(detection.anchors(detection.POSE_ANCHORS)[:, 2:] == 1)
    assert np.all(detection.anchors(detection.FACE_ANCHORS)[:, 2:] == 1)


def test_ssd_boxes_are_y_first_and_sizes_exponential():
    grid = np.array([[0.5, 0.5, 0.2, 0.4]], np.float32)
    assert np.allclose(detection.decode_ssd(np.zeros((1, 4), np.float32), grid), [[0.4, 0.3, 0.6, 0.7]])
    # ty = 1 moves the centre down by a tenth of the anchor's height, tx by a tenth of its width.
    moved = detection.decode_ssd(np.array([[1.0, 0.0, 0.0, 0.0]], np.float32), grid)
    assert np.allclose(moved, [[0.4, 0.34, 0.6, 0.74]])
    moved = detection.decode_ssd(np.array([[0.0, 1.0, 0.0, 0.0]], np.float32), grid)
    assert np.allclose(moved, [[0.42, 0.3, 0.62, 0.7]])
    # th = 5 makes the box e times as tall; tw = 5 e times as wide.
    taller = detection.decode_ssd(np.array([[0.0, 0.0, 5.0, 0.0]], np.float32), grid)
    assert np.isclose(taller[0, 3] - taller[0, 1], 0.4 * math.e)
    wider = detection.decode_ssd(np.array([[0.0, 0.0, 0.0, 5.0]], np.float32), grid)
    assert np.isclose(wider[0, 2] - wider[0, 0], 0.2 * math.e)


def test_blaze_boxes_are_x_first_in_input_pixels_with_key_points():
    grid = np.array([[0.25, 0.75, 1, 1]], np.float32)
    raw = np.array([[32, -16, 64, 32, 0, 0, 128, 128]], np.float32)
    boxes, points = detection.decode_blaze(raw, grid, 128)
    assert np.allclose(boxes, [[0.25, 0.5, 0.75, 0.75]])
    assert np.allclose(points, [[[0.25, 0.75], [1.25, 1.75]]])


def test_scores_are_logits_through_a_sigmoid_that_never_overflows():
    with np.errstate(over="raise"):
        chance = detection.sigmoid(np.array([-1e6, -2, 0, 2, 1e6], np.float32))
    assert np.allclose(chance, [0, 0.1192, 0.5, 0.8808, 1], atol=1e-4)


def test_non_max_suppression_keeps_the_best_of_each_overlapping_set():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]], np.float32)
    scores = np.array([0.6, 0.9, 0.5, 0.7])
    assert detection.non_max_suppression(boxes, scores, 0.5) == [1, 2]
    assert detection.non_max_suppression(boxes, scores, 0.99) == [1, 3, 0, 2]


@pytest.mark.parametrize("angle", [0.0, 0.3, -1.2, math.pi])
def test_crop_matrix_maps_the_model_square_onto_the_turned_square(angle):
    crop = crops.Crop(200.0, 150.0, 100.0, angle)
    centre = crops.points_to_photo(crop, np.array([[128.0, 128.0]]), 256)
    assert np.allclose(centre, [[200, 150]])
    # The model's "up" is the photo direction (sin, −cos) of the angle.
    top = crops.points_to_photo(crop, np.array([[128.0, 0.0]]), 256)
    assert np.allclose(top, [[200 + 50 * math.sin(angle), 150 - 50 * math.cos(angle)]])
    corners = crop.corners()
    assert np.allclose(np.linalg.norm(corners - corners[[1, 2, 3, 0]], axis=1), 100)


def test_from_points_turns_the_scale_point_straight_up():
    # Someone lying with the head to the photo's right: the crop turns by +90°.
    crop = crops.from_points(np.array([100.0, 100.0]), np.array([140.0, 100.0]), 1.25)
    assert math.isclose(crop.angle, math.pi / 2) and math.isclose(crop.side, 100)
    top = crops.points_to_photo(crop, np.array([[0.5, 0.1]]), 1)
    assert top[0, 0] > 130 and abs(top[0, 1] - 100) < 1e-6
    upright = crops.from_points(np.array([100.0, 100.0]), np.array([100.0, 60.0]), 1.0)
    assert math.isclose(upright.angle, 0, abs_tol=1e-12) and math.isclose(upright.side, 80)


@pytest.mark.parametrize("angle", [0.0, 0.5, -2.0])
def test_cut_then_paste_puts_a_shape_back_where_it_was(angle):
    height, width = 300, 400
    photo = np.zeros((height, width, 3), np.uint8)
    photo[100:200, 150:230] = 255  # a bright rectangle
    crop = crops.Crop(190.0, 150.0, 180.0, angle)
    seen = crops.cut(photo, crop, 64)[..., 0]
    placed, (left, top) = crops.paste(seen.astype(np.float32) / 255, crop, width, height)
    back = np.zeros((height, width), np.float32)
    back[top : top + placed.shape[0], left : left + placed.shape[1]] = placed
    truth = photo[..., 0] > 0
    found = back > 0.5
    assert np.count_nonzero(found & truth) / np.count_nonzero(found | truth) > 0.9


def test_a_large_crop_is_shrunk_by_area_averaging_not_aliased():
    # Stripes one pixel wide average to mid grey; point sampling would show stripes or a flat colour.
    photo = np.zeros((1024, 1024, 3), np.uint8)
    photo[:, ::2] = 255
    seen = crops.cut(photo, crops.Crop(512.0, 512.0, 1024.0), 64)
    assert abs(float(seen.mean()) - 127.5) < 3 and seen.min() > 110 and seen.max() < 145


def test_letterbox_keeps_the_aspect_and_pads_black():
    photo = np.full((100, 200, 3), 200, np.uint8)
    seen = crops.cut(photo, crops.letterbox(200, 100), 64)
    assert seen[:14].max() == 0 and seen[-14:].max() == 0 and seen[20:44].min() == 200


def test_paste_outside_the_photo_is_nothing():
    assert crops.paste(np.ones((8, 8), np.float32), crops.Crop(-100.0, -100.0, 50.0), 100, 100) is None
