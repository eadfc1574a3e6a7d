"""What a DashScope crowd job keeps between preview and download, and what unlocking then costs.

Two ways to carry a job from `start` (upload) to `finish` (unlock):

* frame: the model's whole frame (a PNG of up to 2048 px a side); `finish` finds the changes again
  at full resolution, then applies them. (How jobs were carried before.)
* packed: `composite.pack` — the changes found at upload (mask at working size, alignment, colour
  fit) and only the model's pixels inside the changed regions; `finish` applies them directly.

Photos as in bench/composite.py: scikit-image's astronaut scaled up with grain, the fake DashScope's
redraw at 2048 px with two people erased, softer, +2 colour shift, 0.5% zoom. The model frame is
measured both as the fake sends it (zlib level 1) and as a default PNG encoder writes it (level 6).

    .venv/bin/python bench/dashscope_carry.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portraitsite.settings")
os.environ.setdefault("DEBUG", "true")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data as skimage_data  # noqa: E402

from segmentation import composite  # noqa: E402
from segmentation.images import accept_upload  # noqa: E402
from tests.fakes.dashscope import encode, redraw  # noqa: E402

SIZES = {"3 MP": (2000, 1500), "12 MP": (4000, 3000)}
ERASED = [(0.70, 0.02, 0.86, 0.50), (0.02, 0.55, 0.12, 0.95)]


def photo_of(size: tuple[int, int]) -> Image.Image:
    portrait = Image.fromarray(skimage_data.astronaut())
    grain = np.random.default_rng(1).normal(0, 3, (size[1], size[0], 3))
    scaled = np.asarray(portrait.resize(size, Image.Resampling.BICUBIC)).astype(np.float64)
    return Image.fromarray(np.clip(scaled + grain, 0, 255).astype(np.uint8))


def timed(function, runs: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(runs):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    print(f"cores: {os.cpu_count()}, runs: {arguments.runs} (median)")
    for label, size in SIZES.items():
        image = photo_of(size)
        photo = accept_upload(encode(image, quality=92))
        frame = redraw(image, (2048, 1536), erase=ERASED, colour_shift=2, blur=0.8, zoom=1.005)
        frame_png = encode(frame, "PNG", compress_level=1)
        frame_png6 = encode(frame, "PNG")

        def start_extra():  # what start does beyond the call and decoding the model's frame
            working = photo.open_reduced(composite.WORKING_LONG_SIDE)
            changes = composite.find_changes(working, frame)
            return composite.apply_changes(working, frame, changes), composite.pack(changes, frame)

        find_s, _ = timed(lambda: composite.find_changes(photo.open_reduced(composite.WORKING_LONG_SIDE), frame),
                          arguments.runs)
        start_s, (_, packed) = timed(start_extra, arguments.runs)
        unpack_s, _ = timed(lambda: composite.unpack(packed), arguments.runs)
        old_finish_s, _ = timed(lambda: composite.full_resolution_result(photo, frame_png), arguments.runs)
        new_finish_s, result = timed(lambda: composite.full_resolution_result(photo, packed), arguments.runs)
        changes, _ = composite.unpack(packed)
        print(f"{label} {size[0]}x{size[1]}, {changes.fraction * 100:.1f}% of the frame from the model:")
        print(f"  carry: frame {len(frame_png) / 1e6:.2f} MB (level 1) / {len(frame_png6) / 1e6:.2f} MB (level 6), "
              f"packed {len(packed) / 1e6:.3f} MB")
        print(f"  start after the call: find changes {find_s * 1000:.0f} ms; with preview composite and pack "
              f"{start_s * 1000:.0f} ms")
        print(f"  finish (incl. decode + JPEG q95): frame carry {old_finish_s * 1000:.0f} ms, packed carry "
              f"{new_finish_s * 1000:.0f} ms (unpack {unpack_s * 1000:.0f} ms); {len(result.data) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
