"""Where the bench's people and backgrounds come from: photos read at run time from Debian's
`opencv-doc` package (apt-get install opencv-doc) and from scikit-image's bundled data (a test
requirement). Nothing but the small masks next to this file is stored in the repository."""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

OPENCV_SAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")


class MissingSource(RuntimeError):
    pass


def load_source(source: dict) -> np.ndarray:
    """RGB pixels of a source photo (or one frame of a sample video)."""
    return _load(source["package"], source["file"], source.get("frame", -1)).copy()


@functools.cache
def _load(package: str, file: str, frame: int) -> np.ndarray:
    if package == "scikit-image":
        from skimage import data

        pixels = getattr(data, file)()
        return np.dstack([pixels] * 3) if pixels.ndim == 2 else pixels[..., :3]
    if package != "opencv-doc":
        raise ValueError(package)
    path = OPENCV_SAMPLES / file
    if not path.exists():
        raise MissingSource(f"{path} is missing: apt-get install opencv-doc")
    if frame < 0:
        return cv2.imread(str(path))[..., ::-1]
    video = cv2.VideoCapture(str(path))
    video.set(cv2.CAP_PROP_POS_FRAMES, frame)
    ok, pixels = video.read()
    if not ok:
        raise MissingSource(f"{path} has no frame {frame}")
    return pixels[..., ::-1]


@functools.cache
def _median(package: str, file: str) -> np.ndarray:
    """The median of every 8th frame of a fixed-camera video: the scene with nobody in it (each
    walker covers any one spot for far less than half of the time)."""
    video = cv2.VideoCapture(str(OPENCV_SAMPLES / file))
    frames = []
    index = 0
    while True:
        ok, pixels = video.read()
        if not ok:
            break
        if index % 8 == 0:
            frames.append(pixels[..., ::-1])
        index += 1
    if not frames:
        raise MissingSource(f"{OPENCV_SAMPLES / file} is missing: apt-get install opencv-doc")
    return np.median(np.stack(frames), axis=0).astype(np.uint8)


def median_frame(source: dict) -> np.ndarray:
    return _median(source["package"], source["file"]).copy()
