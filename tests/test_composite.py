"""The full-resolution crowd composite: original pixels wherever the model did not really change
anything, the model's pixels where it erased someone."""

import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data

from segmentation import composite
from tests.fakes.dashscope import redraw, street_scene


def model_frame(scene, size=(2048, 1365), **drift):
    """What the model returns for `scene` asked to remove its passers-by."""
    return redraw(scene.image, size, erase=scene.passers_by, **drift)


def composite_of(original: Image.Image, edited: Image.Image) -> tuple[Image.Image, composite.Changes]:
    """The original with the model's changes taken in, at the original's size (what a job does in
    two steps, at upload and at unlock, in one)."""
    changes = composite.find_changes(original, edited)
    return composite.apply_changes(original, edited, changes), changes


def box_pixels(array: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    left, top, right, bottom = box
    return array[top:bottom, left:right]


def shrink(box: tuple[int, int, int, int], margin: int) -> tuple[int, int, int, int]:
    return box[0] + margin, box[1] + margin, box[2] - margin, box[3] - margin


@pytest.mark.parametrize(
    "drift",
    [
        {"colour_shift": 2},
        {"colour_shift": 3, "blur": 1.2},
        {"colour_shift": 2, "zoom": 1.01},
        {"colour_shift": -3, "blur": 0.8, "zoom": 0.992},
    ],
    ids=["colour-shift", "softer", "zoomed-in", "zoomed-out"],
)
def test_subject_keeps_its_exact_original_pixels_despite_model_drift(drift):
    scene = street_scene(3000, 2000)
    result, changes = composite_of(scene.image, model_frame(scene, **drift))

    original, out = np.asarray(scene.image), np.asarray(result)
    subject = scene.pixels(scene.subject)
    assert np.array_equal(box_pixels(out, subject), box_pixels(original, subject))
    # Only the two passers-by changed: each 3.2% of the frame, plus a dilated, feathered edge.
    assert 0.064 < changes.fraction < 0.11


def test_only_pixels_near_the_erased_passers_by_differ_from_the_original():
    scene = street_scene(2400, 1600)
    result, _ = composite_of(scene.image, model_frame(scene, size=(2048, 1365), blur=1.0))

    changed = np.any(np.asarray(result) != np.asarray(scene.image), axis=2)
    near_passers_by = np.zeros_like(changed)
    for passer_by in scene.passers_by:
        left, top, right, bottom = scene.pixels(passer_by)
        margin = 60  # dilation and feathering: about 2.5% of the long side
        near_passers_by[max(0, top - margin) : bottom + margin, max(0, left - margin) : right + margin] = True
    assert changed.any()
    assert not (changed & ~near_passers_by).any()


def test_erased_passers_by_come_from_the_model_with_its_colour_drift_undone():
    scene = street_scene(3000, 2000)
    frame = model_frame(scene, colour_shift=4)
    result, _ = composite_of(scene.image, frame)

    out = np.asarray(result).astype(int)
    for passer_by in scene.passers_by:
        inside = shrink(scene.pixels(passer_by), 20)
        model_inside = shrink(scene.pixels(passer_by, frame.size), 14)
        fill = np.asarray(frame).astype(int)[model_inside[1] : model_inside[3], model_inside[0] : model_inside[2]]
        region = box_pixels(out, inside)
        # The dark figure is gone: the region holds the model's fill, shifted back by its drift.
        assert region.mean() > 120
        assert np.abs(region.mean(axis=(0, 1)) - (fill.mean(axis=(0, 1)) - 4)).max() < 1.5


def test_nothing_removed_gives_back_the_original_exactly():
    scene = street_scene(1600, 1200)
    frame = redraw(scene.image, (2048, 1536), erase=[], colour_shift=2, blur=1.0)
    result, changes = composite_of(scene.image, frame)

    assert not changes.any
    assert np.array_equal(np.asarray(result), np.asarray(scene.image))


def test_a_frame_with_a_slightly_different_aspect_ratio_is_aligned_by_resizing():
    scene = street_scene(3000, 2000)
    frame = model_frame(scene, size=(2048, 1328))  # 3% flatter than the photo
    result, changes = composite_of(scene.image, frame)

    subject = scene.pixels(scene.subject)
    assert np.array_equal(box_pixels(np.asarray(result), subject), box_pixels(np.asarray(scene.image), subject))
    assert changes.fraction < 0.11


def test_transparency_is_kept_exactly():
    scene = street_scene(1200, 800)
    rgba = scene.image.convert("RGBA")
    alpha = np.full((800, 1200), 255, np.uint8)
    alpha[:, :60] = 0  # a transparent strip on the left
    alpha[:, 60:90] = 128
    rgba.putalpha(Image.fromarray(alpha))
    frame = redraw(composite.on_white(rgba), (1536, 1024), erase=scene.passers_by)

    result, _ = composite_of(rgba, frame)

    assert result.mode == "RGBA"
    assert np.array_equal(np.asarray(result)[..., 3], alpha)
    subject = scene.pixels(scene.subject)
    assert np.array_equal(box_pixels(np.asarray(result), subject), box_pixels(np.asarray(rgba), subject))


def test_a_real_photo_keeps_the_astronaut_and_loses_the_erased_object():
    photo = Image.fromarray(skimage_data.astronaut())  # 512×512, a real person
    rocket = (0.66, 0.0, 0.9, 0.55)  # the model of the shuttle behind her, as if it were a passer-by
    frame = redraw(photo, (1024, 1024), erase=[rocket], colour_shift=2, blur=0.7)

    result, changes = composite_of(photo, frame)

    out, original = np.asarray(result), np.asarray(photo)
    face_and_suit = (100, 30, 300, 512)
    assert np.array_equal(box_pixels(out, face_and_suit), box_pixels(original, face_and_suit))
    rocket_pixels = (360, 40, 440, 260)
    assert np.abs(box_pixels(out, rocket_pixels).astype(int) - box_pixels(original, rocket_pixels)).mean() > 20
    assert changes.fraction < 0.25


def wobble(image: Image.Image, pixels: float, seed: int = 0) -> Image.Image:
    """`image` with its content displaced by a smooth random field of `pixels` standard deviation:
    a regenerated frame's outlines never sit exactly where the original's do."""
    import cv2

    array = np.asarray(image)
    height, width = array.shape[:2]
    rng = np.random.default_rng(seed)
    fields = []
    for _ in range(2):
        field = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), width / 30)
        fields.append(field * (pixels / field.std()))
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    moved = cv2.remap(array, grid_x + fields[0], grid_y + fields[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return Image.fromarray(moved)


def test_outlines_that_moved_a_pixel_or_two_are_not_changes():
    photo = Image.fromarray(skimage_data.astronaut())
    rocket = (0.66, 0.0, 0.9, 0.55)
    alone = redraw(photo, (1024, 1024), erase=[rocket], colour_shift=2)
    frame = wobble(alone, pixels=1.5)  # up to about 4 px of the model's frame, 2 px of the photo's

    result, changes = composite_of(photo, frame)
    _, reference = composite_of(photo, alone)

    face_and_suit = (100, 30, 300, 512)
    assert np.array_equal(box_pixels(np.asarray(result), face_and_suit), box_pixels(np.asarray(photo), face_and_suit))
    assert changes.fraction < reference.fraction + 0.02


@pytest.mark.parametrize(
    "drift",
    [{"colour_shift": 2}, {"colour_shift": 3, "blur": 1.0, "zoom": 1.01}, {"colour_shift": -2, "zoom": 0.992}],
    ids=["plain", "zoomed-in", "zoomed-out"],
)
def test_the_packed_carry_gives_the_same_full_resolution_composite(drift):
    scene = street_scene(3000, 2000)
    pixels = np.array(scene.image)
    pixels[:600, :180] = (20, 20, 20)  # a third passer-by cut by the frame's corner
    original = Image.fromarray(pixels)
    frame = redraw(original, (2048, 1365), erase=[*scene.passers_by, (0.0, 0.0, 0.06, 0.3)], **drift)
    changes = composite.find_changes(original, frame)

    unpacked, kept = composite.unpack(composite.pack(changes, frame))

    assert np.array_equal(unpacked.alpha, changes.alpha)
    assert (unpacked.work_size, unpacked.to_edited.tolist()) == (changes.work_size, changes.to_edited.tolist())
    # The blanked frame holds every model pixel the composite reads: the result is bit for bit the same.
    expected = composite.apply_changes(original, frame, changes)
    assert np.array_equal(np.asarray(composite.apply_changes(original, kept, unpacked)), np.asarray(expected))
    assert np.asarray(kept).any(axis=2).mean() < 0.25


def test_a_carry_without_changes_holds_no_frame():
    scene = street_scene(1600, 1200)
    frame = redraw(scene.image, (2048, 1536), erase=[], colour_shift=2, blur=1.0)
    changes = composite.find_changes(scene.image, frame)

    unpacked, kept = composite.unpack(composite.pack(changes, frame))

    assert kept is None and not unpacked.any
