"""A DashScope crowd job's own work, step by step as segmentation/engines/dashscope.py does it:

* start (upload): before the one billed call, the model's input made from the photo; after it, the
  model's frame decoded, the changes found at working size (segmentation.composite), the preview
  composited from them and the carry packed: the changes and only the model's pixels inside them;
* what the job keeps between upload and unlock: that carry, next to the whole frame it replaces;
* finish (unlock): the photo decoded, the carry unpacked, the changes applied at full resolution
  and the download encoded (JPEG q95), each step and the engine's `finish` as a whole.

The photo is bench.support's camera JPEG (scikit-image's astronaut in front of its coffee photo,
with grain) at 3 and 12 MP. The model's answer is the fake DashScope's redraw of it at the size the
client asks for: two regions at the sides erased (passers-by gone), a +2 colour shift, slightly
softer and 0.5% zoomed, as an image-edit model returns it; a PNG as the fake sends it.

    .venv/bin/python bench/composite.py [--runs 3] [--save /tmp/composite]

--save writes before/after, mask and seam PNGs under that prefix (keep it in /tmp).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portraitsite.settings")
os.environ.setdefault("DEBUG", "true")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench.support import camera_jpeg, load_average, mb, median_time  # noqa: E402
from segmentation import composite  # noqa: E402
from segmentation.engines.dashscope import DashScopeCrowd  # noqa: E402
from segmentation.intake import accept_upload  # noqa: E402
from segmentation.pixels import encode_jpeg  # noqa: E402
from segmentation.providers import dashscope  # noqa: E402
from tests.fakes.dashscope import encode, redraw  # noqa: E402

logging.getLogger("segmentation").setLevel(logging.WARNING)  # the composite's one line per download

MEGAPIXELS = (3, 12)
# Beside the astronaut, on the coffee photo behind him: where passers-by would stand.
ERASED = [(0.02, 0.30, 0.14, 0.95), (0.86, 0.35, 0.98, 0.95)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--save", default="", help="a path prefix for images to look at (in /tmp)")
    arguments = parser.parse_args()
    runs = arguments.runs
    print(f"{load_average()}; runs: {runs} (median)")
    for megapixels in MEGAPIXELS:
        upload = camera_jpeg(megapixels)
        photo = accept_upload(upload)
        original = photo.open()
        frame_size = dashscope.output_size(photo.width, photo.height) or original.size
        answer = encode(
            redraw(original, frame_size, erase=ERASED, colour_shift=2, blur=0.8, zoom=1.005), "PNG", compress_level=1
        )

        # start: what DashScopeCrowd.start does besides waiting for the model.
        model_input = dashscope.model_input(photo)
        model_input_s = median_time(lambda: dashscope.model_input(photo), runs)
        frame = dashscope.decode_result(answer)
        working = photo.open_reduced(composite.COMPARISON_LONG_SIDE)
        changes = composite.find_changes(working, frame)
        carry = composite.pack(changes, frame)
        decode_frame_s = median_time(lambda: dashscope.decode_result(answer), runs)
        working_s = median_time(lambda: photo.open_reduced(composite.COMPARISON_LONG_SIDE), runs)
        find_s = median_time(lambda: composite.find_changes(working, frame), runs)
        preview_s = median_time(lambda: composite.apply_changes(working, frame, changes), runs)
        pack_s = median_time(lambda: composite.pack(changes, frame), runs)

        # finish: DashScopeCrowd.finish → composite.full_resolution_result(photo, carry).
        unpacked, kept_frame = composite.unpack(carry)
        result = composite.apply_changes(original, kept_frame, unpacked)
        decode_photo_s = median_time(photo.open, runs)
        unpack_s = median_time(lambda: composite.unpack(carry), runs)
        apply_s = median_time(lambda: composite.apply_changes(original, kept_frame, unpacked), runs)
        encode_s = median_time(lambda: encode_jpeg(result, quality=95), runs)
        engine = DashScopeCrowd()
        download = engine.finish(photo, carry)
        finish_s = median_time(lambda: engine.finish(photo, carry), runs)

        after_call_s = decode_frame_s + working_s + find_s + preview_s + pack_s
        print(
            f"{megapixels} MP {photo.width}x{photo.height} (upload {mb(len(upload))}), model frame "
            f"{frame.width}x{frame.height}, {changes.fraction * 100:.1f}% of it taken:"
        )
        print(
            f"  start, before the call: model input {ms(model_input_s)} "
            f"({model_input.width}x{model_input.height}, {mb(len(model_input.data))})"
        )
        print(
            f"  start, after the call: {ms(after_call_s)} = decode frame {ms(decode_frame_s)} + working copy "
            f"{ms(working_s)} + find changes {ms(find_s)} + preview {ms(preview_s)} + pack {ms(pack_s)}"
        )
        print(
            f"  carry: {len(carry) / 1e6:.3f} MB packed (the model's whole frame: {mb(len(answer))} as sent, "
            f"{mb(len(encode(frame, 'PNG')))} at PNG's default level)"
        )
        print(
            f"  finish: {ms(finish_s)} (decode photo {ms(decode_photo_s)}, unpack {ms(unpack_s)}, apply "
            f"{ms(apply_s)}, JPEG q95 {ms(encode_s)}); download {mb(len(download.data))}"
        )
        if arguments.save:
            save(f"{arguments.save}-{photo.width}x{photo.height}", original, result, frame, unpacked)


def save(
    prefix: str, original: Image.Image, result: Image.Image, frame: Image.Image, changes: composite.Changes
) -> None:
    """Before and after side by side, the mask, and the first erased region at full size (original,
    composite, model) where a seam would show."""
    small = (original.width * 900 // original.height, 900)
    Image.fromarray(np.hstack([np.asarray(original.resize(small)), np.asarray(result.resize(small))])).save(
        f"{prefix}-before-after.png"
    )
    Image.fromarray((changes.alpha * 255).astype(np.uint8)).save(f"{prefix}-mask.png")
    _left, top, right, bottom = ERASED[0]
    width, height = original.size
    crop = (0, max(0, int(top * height) - 100), int(right * width) + 200, min(height, int(bottom * height) + 100))
    model = frame.resize(original.size)
    Image.fromarray(np.hstack([np.asarray(image.crop(crop)) for image in (original, result, model)])).save(
        f"{prefix}-seam-original-composite-model.png"
    )


if __name__ == "__main__":
    main()
