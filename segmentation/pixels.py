"""Small pixel helpers that more than one image module needs."""

import cv2
import numpy as np


def disk(radius: float) -> np.ndarray:
    """A round structuring element (for dilate, erode, open, close) reaching `radius` pixels from
    its centre, rounded, and at least 1: a radius that a small working size scales below one pixel
    still does something."""
    size = 2 * max(1, round(radius)) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
