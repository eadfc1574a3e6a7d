"""Intake and previews against the physical floor: one full decode of the same JPEG.

For camera-like JPEGs of 1, 12, 24 and 48 MP (quality 90, with EXIF; see bench/support.py) this
times, interleaved round by round so that other load on the machine hits all three alike:

  decode   Pillow decoding the whole file at full size: what any server must at least pay
           if it looks at every pixel once;
  intake   segmentation.intake.accept_upload: validation, metadata cut at the byte level, and
           the reduced working copy (JPEG draft mode);
  +preview intake plus what phase one adds around the engine: the engine's preview-sized draft
           watermarked and encoded, and the "before" image made from the working copy.

Target: intake + preview ≤ 2 × decode.

    .venv/bin/python bench/intake.py [--runs 5] [--sizes 1 12 24 48]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portraitsite.settings")
os.environ.setdefault("DEBUG", "true")
# A 48 MP camera JPEG at quality 90 may exceed the default 20 MB upload cap; the cap is not what
# is measured here.
os.environ.setdefault("MAX_UPLOAD_BYTES", str(64 * 1024**2))

import django  # noqa: E402

django.setup()

from PIL import Image  # noqa: E402

from bench.support import camera_jpeg, load_average, mb  # noqa: E402
from segmentation import intake, pixels, previews  # noqa: E402


def full_decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as im:
        im.load()


def accept(data: bytes) -> intake.Photo:
    return intake.accept_upload(data)


def render_previews(photo: intake.Photo, draft: Image.Image) -> None:
    """Phase one's own work around the engine: watermark and encode the engine's preview-sized
    draft, and make the "before" image from the working copy."""
    previews.render_preview(draft)
    previews.render_before(photo.working)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 12, 24, 48])
    arguments = parser.parse_args()
    print(f"# bench/intake.py — {load_average()}; median of {arguments.runs} runs")
    print(f"{'size':>6} {'file':>9} {'decode':>8} {'intake':>8} {'+preview':>9} {'ratio':>6}")
    for megapixels in arguments.sizes:
        data = camera_jpeg(megapixels)
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
        times: dict[str, list[float]] = {"decode": [], "intake": [], "preview": []}
        for _ in range(arguments.runs):
            start = time.perf_counter()
            full_decode(data)
            times["decode"].append(time.perf_counter() - start)
            start = time.perf_counter()
            photo = accept(data)
            times["intake"].append(time.perf_counter() - start)
            # What an engine hands back: a preview-sized image (its cost is in bench/engines.py).
            draft = pixels.fit_pixels(photo.working, previews.PREVIEW_MAX_PIXELS)
            start = time.perf_counter()
            render_previews(photo, draft)
            times["preview"].append(time.perf_counter() - start)
        median = {name: sorted(values)[len(values) // 2] for name, values in times.items()}
        total = median["intake"] + median["preview"]
        print(
            f"{width * height / 1e6:5.1f}M {mb(len(data)):>9} {median['decode'] * 1000:6.0f}ms "
            f"{median['intake'] * 1000:6.0f}ms {total * 1000:7.0f}ms {total / median['decode']:5.2f}×",
            flush=True,
        )
    cold = []
    for _ in range(arguments.runs):
        previews._watermark_layer.cache_clear()
        start = time.perf_counter()
        previews._watermark_layer((577, 433), previews.WATERMARK_TEXT)
        cold.append(time.perf_counter() - start)
    print(
        f"# +preview reuses the watermark of its size; drawing one for a new size (once per size and "
        f"process) adds {sorted(cold)[len(cold) // 2] * 1000:.0f} ms"
    )
    print(f"# {load_average()}")


if __name__ == "__main__":
    main()
