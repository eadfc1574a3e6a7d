"""What a changed choice of who stays costs the embedded cutout ([T2.2]), with five people in a
photo at 3 and 12 MP.

A redraw in the pool (`jobs.redraw`) is the engine's `choose` (the kept people's outlines, a lone
one widened by the selfie model, the guided filter at the working size) plus the watermarked
preview; once unlocked also `finish` for the new choice (the full-resolution download). Printed
against `start` (what the upload cost, people finder included), for three choices: one person kept
alone (the selfie model runs), three of them, and everyone. Photo: bench/support.py's scene with
five people pasted side by side at different sizes. Medians of --runs runs.

    .venv/bin/python bench/cutout_choice.py [--runs 3] [--sizes 3 12]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portraitsite.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("MAX_UPLOAD_BYTES", str(64 * 1024**2))

# (height as a share of the photo's, left as a share of its width, top as a share of its height)
FIVE = ((0.62, 0.02, 0.38), (0.75, 0.20, 0.25), (0.80, 0.40, 0.20), (0.70, 0.60, 0.30), (0.55, 0.79, 0.45))


def photo_with_five(megapixels: float) -> bytes:
    import numpy as np
    from PIL import Image

    from bench.support import scene
    from segmentation.pixels import encode
    from tests.test_local_cutout import paste_person

    pixels = np.asarray(scene(megapixels, seed=2)).copy()
    height, width = pixels.shape[:2]
    truth = np.zeros((height, width), bool)
    for size, left, top in FIVE:
        paste_person(pixels, truth, int(size * height), int(left * width), int(top * height))
    return encode(Image.fromarray(pixels), "JPEG", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", type=float, nargs="+", default=[3, 12])
    args = parser.parse_args()

    import django

    django.setup()
    import logging

    from bench.support import load_average, median_time
    from segmentation import previews
    from segmentation.engines.local import LocalCutout
    from segmentation.intake import Photo, accept_upload

    logging.getLogger("segmentation").setLevel(logging.WARNING)
    print(f"bench/cutout_choice.py, {args.runs} run(s) each, {load_average()}")
    print(
        f"{'photo':>11} {'people':>6} {'start':>6} {'kept':>5} {'choose':>7} {'preview':>8} "
        f"{'redraw':>7} {'finish':>7} {'carry':>7}"
    )
    engine = LocalCutout()
    for megapixels in args.sizes:
        upload = accept_upload(photo_with_five(megapixels))
        engine.start(upload)  # load the models outside the timings
        start_s = median_time(lambda: engine.start(upload), args.runs)
        draft = engine.start(upload)
        people = engine.people(draft.carry)
        # A job's later phases get the photo back from the store, without intake's working copy.
        photo = Photo.from_meta(upload.data, upload.meta())
        everyone = [person.id for person in people]
        for keep in (everyone[:1], everyone[1:4], everyone):
            keep = frozenset(keep)
            choose_s = median_time(lambda keep=keep: engine.choose(photo, draft.carry, keep), args.runs)
            chosen = engine.choose(photo, draft.carry, keep)
            preview_s = median_time(lambda chosen=chosen: previews.render_preview(chosen.preview), args.runs)
            finish_s = median_time(lambda chosen=chosen: engine.finish(photo, chosen.carry), args.runs)
            print(
                f"{photo.width}×{photo.height:<5} {len(people):>6} {start_s:>5.2f}s {len(keep):>5} "
                f"{choose_s:>6.2f}s {preview_s:>7.2f}s {choose_s + preview_s:>6.2f}s {finish_s:>6.2f}s "
                f"{len(chosen.carry) / 1024:>5.0f}kB"
            )
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
