"""Rebuild the person masks of bench/people.py from their recipes in `sources.json`.

Each person is cut from a permissively licensed real photo: Debian's `opencv-doc` samples (OpenCV's
samples/data, Apache-2.0/BSD-3-Clause) and scikit-image's bundled data (CC0/public domain photos).
A recipe gives the source, the crop box and how the outline was first drawn:

* "polygon": traced by hand just outside the person, on a zoomed grid of the photo;
* "motion": the person's difference from the median of the video's frames (an empty street), for
  the walkers of vtest.avi, who are too small to trace by hand.

GrabCut then refines that outline along the photo's edges: the drawn shape, shrunk by a few pixels,
is "probably person", a band around it "probably background", and everything farther is background.
The result is stored as a 1-bit PNG of the crop box, so the composites' ground truth is exactly the
silhouette that is pasted.

    .venv/bin/python bench/people_masks/make.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from bench.people_masks.sources import load_source, median_frame  # noqa: E402

BAND = 4  # pixels each side of the drawn outline that GrabCut may move it by


def first_outline(recipe: dict, pixels: np.ndarray) -> np.ndarray:
    height, width = pixels.shape[:2]
    if recipe["method"] == "polygon":
        drawn = np.zeros((height, width), np.uint8)
        cv2.fillPoly(drawn, [np.array(recipe["polygon"], np.int32)], 1)
        return drawn
    empty = median_frame(recipe["source"])
    moving = np.abs(pixels.astype(np.int16) - empty).max(axis=2) > recipe.get("threshold", 40)
    moving = cv2.morphologyEx(moving.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    left, top, right, bottom = recipe["box"]
    box = np.zeros_like(moving)
    box[top:bottom, left:right] = 1
    moving &= box
    count, labels, stats, _ = cv2.connectedComponentsWithStats(moving)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == largest).astype(np.uint8)


def refine(pixels: np.ndarray, drawn: np.ndarray, polygon: bool) -> np.ndarray:
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * BAND + 1, 2 * BAND + 1))
    grown = cv2.dilate(drawn, disc)
    shrunk = cv2.erode(drawn, disc)
    mask = np.full(drawn.shape, cv2.GC_BGD, np.uint8)
    mask[grown > 0] = cv2.GC_PR_BGD
    mask[drawn > 0] = cv2.GC_PR_FGD
    # A hand-drawn polygon is trusted well inside; a motion mask has holes, so only its core is.
    core = cv2.erode(shrunk, disc) if not polygon else shrunk
    mask[core > 0] = cv2.GC_FGD
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(np.ascontiguousarray(pixels[..., ::-1]), mask, None, background, foreground, 5, cv2.GC_INIT_WITH_MASK)
    person = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    # One piece, no pinholes: keep the largest component and fill holes smaller than a finger.
    count, labels, stats, _ = cv2.connectedComponentsWithStats(person)
    person = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    holes = cv2.connectedComponentsWithStats(1 - person)
    for label in range(1, holes[0]):
        if holes[2][label, cv2.CC_STAT_AREA] < 0.002 * person.sum():
            person[holes[1] == label] = 1
    return person


def main() -> None:
    recipes = json.loads((HERE / "sources.json").read_text())
    for recipe in recipes["people"]:
        pixels = load_source(recipe["source"])
        drawn = first_outline(recipe, pixels)
        person = refine(pixels, drawn, recipe["method"] == "polygon")
        left, top, right, bottom = recipe["box"]
        crop = person[top:bottom, left:right] * 255
        cv2.imwrite(str(HERE / f"{recipe['name']}.png"), crop, [cv2.IMWRITE_PNG_BILEVEL, 1])
        print(f"{recipe['name']:22} {right - left}×{bottom - top} person {crop.mean() / 2.55:4.1f} % of the box")


if __name__ == "__main__":
    main()
