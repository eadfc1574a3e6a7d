"""Time the crowd composite (segmentation.composite) at 3 and 12 MP.

The "photo" is scikit-image's astronaut (a real portrait) scaled up with fine grain added, and the
"model output" is the fake DashScope's redraw of it at 2048 px: two rectangles erased, a +2 colour
shift, slightly softer and 0.5% zoomed, as an image-edit model returns it.

    .venv/bin/python bench/composite.py [--runs 3] [--save /tmp/composite]

--save writes before/after/mask PNGs under that prefix (keep it in /tmp).
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
    portrait = Image.fromarray(skimage_data.astronaut()).resize((size[1], size[1]), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", size, (128, 128, 128))
    canvas.paste(portrait.resize(size, Image.Resampling.BICUBIC))
    grain = np.random.default_rng(1).normal(0, 3, (size[1], size[0], 3))
    return Image.fromarray(np.clip(np.asarray(canvas) + grain, 0, 255).astype(np.uint8))


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
    parser.add_argument("--save", default="")
    arguments = parser.parse_args()
    print(f"cores: {os.cpu_count()}, runs: {arguments.runs} (median)")
    for label, size in SIZES.items():
        image = photo_of(size)
        photo = accept_upload(encode(image, quality=92))
        frame = redraw(image, (2048, 1536), erase=ERASED, colour_shift=2, blur=0.8, zoom=1.005)
        frame_png = encode(frame, "PNG", compress_level=1)
        original = photo.open()

        decode_s, _ = timed(photo.open, arguments.runs)
        preview_s, _ = timed(lambda: composite.find_changes(photo.open_reduced(composite.WORKING_LONG_SIDE), frame),
                             arguments.runs)
        find_s, changes = timed(lambda: composite.find_changes(original, frame), arguments.runs)
        apply_s, result = timed(lambda: composite.apply_changes(original, frame, changes), arguments.runs)
        total_s, download = timed(lambda: composite.full_resolution_result(photo, frame_png), arguments.runs)
        print(f"{label} {size[0]}x{size[1]}: decode {decode_s * 1000:.0f} ms, "
              f"find changes {find_s * 1000:.0f} ms (at upload, from the reduced copy: {preview_s * 1000:.0f} ms), "
              f"apply {apply_s * 1000:.0f} ms, whole result incl. decode + JPEG q95 {total_s * 1000:.0f} ms "
              f"({len(download.data) / 1e6:.1f} MB); {changes.fraction * 100:.1f}% of the frame from the model")
        if arguments.save:
            small = (1200, 900)
            Image.fromarray(np.hstack([np.asarray(original.resize(small)), np.asarray(result.resize(small))])).save(
                f"{arguments.save}-{size[0]}x{size[1]}-before-after.png")
            mask = Image.fromarray((changes.alpha * 255).astype(np.uint8))
            mask.save(f"{arguments.save}-{size[0]}x{size[1]}-mask.png")
            crop = (1300, 200, 2300, 1200) if size[0] > 3000 else (650, 100, 1150, 600)
            Image.fromarray(np.hstack([np.asarray(original.crop(crop)), np.asarray(result.crop(crop)),
                                       np.asarray(frame.resize(size).crop(crop))])).save(
                f"{arguments.save}-{size[0]}x{size[1]}-face-original-composite-model.png")


if __name__ == "__main__":
    main()
