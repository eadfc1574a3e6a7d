"""The embedded engines (segmentation/engines/local.py, crowd.py) at 1, 12 and 24 MP: phase one (`start`, at
upload) and phase two (`finish`, after unlocking), with the final PNG/JPEG encode timed apart, and
the peak resident memory of a process that does nothing else.

Photos: bench/support.py's camera-like scene (scikit-image's astronaut in front of its coffee
photo, with grain) for the cutout; the same scene with two smaller passers-by (the astronaut
again, cut along her outline) for the crowd engine. Each (size, engine) runs in a fresh child
process, so that its VmHWM is its own; the figure includes Python, Django, OpenCV and the photo's
upload bytes. Medians of --runs runs.

Targets: cutout finish ≤ 0.5 s at 12 MP without the PNG encode.

    .venv/bin/python bench/engines.py [--runs 3] [--sizes 1 12 24]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portraitsite.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("MAX_UPLOAD_BYTES", str(64 * 1024**2))  # a 24 MP camera JPEG may exceed 20 MB


def crowd_jpeg(megapixels: float) -> bytes:
    """The bench scene with two passers-by: one a fifth of the frame high at the right, one an
    eighth high at the left."""
    import numpy as np
    from PIL import Image

    from bench.support import scene
    from segmentation.pixels import encode
    from tests.test_local_cutout import paste_person

    pixels = np.asarray(scene(megapixels, seed=1)).copy()
    height, width = pixels.shape[:2]
    ignored = np.zeros((height, width), bool)
    paste_person(pixels, ignored, height // 5, width * 17 // 20, height // 3)
    paste_person(pixels, ignored, height // 8, width // 30, height // 4)
    return encode(Image.fromarray(pixels), "JPEG", quality=90)


def child(mode: str, runs: int) -> None:
    """Read a JPEG on stdin, run one engine on it, print what was measured as JSON."""
    import django

    django.setup()
    from bench.support import rss_bytes
    from segmentation.engines import crowd, local, selfie
    from segmentation.intake import accept_upload

    data = sys.stdin.buffer.read()
    start = time.perf_counter()
    selfie.person_probability(__import__("numpy").zeros((64, 64, 3), "uint8"))
    model_load = time.perf_counter() - start

    # Time the encoders apart by wrapping the names the engines call.
    encode_seconds: list[float] = []

    def timed(encoder):
        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return encoder(*args, **kwargs)
            finally:
                encode_seconds.append(time.perf_counter() - began)

        return wrapper

    module = local if mode == "cutout" else crowd
    for name in ("encode_png", "encode_jpeg"):
        if hasattr(module, name):  # the cutout only ever encodes PNG
            setattr(module, name, timed(getattr(module, name)))
    engine = local.LocalCutout() if mode == "cutout" else crowd.LocalCrowd()
    starts, finishes, intakes = [], [], []
    for _ in range(runs):
        began = time.perf_counter()
        photo = accept_upload(data)  # a fresh Photo each run: intake's working copy included
        intakes.append(time.perf_counter() - began)
        began = time.perf_counter()
        draft = engine.start(photo)
        starts.append(time.perf_counter() - began)
        began = time.perf_counter()
        result = engine.finish(photo, draft.carry)
        finishes.append(time.perf_counter() - began)
    print(
        json.dumps(
            {
                "size": f"{photo.width}×{photo.height}",
                "model_load": model_load,
                "intake": statistics.median(intakes),
                "start": statistics.median(starts),
                "finish": statistics.median(finishes),
                "encode": statistics.median(encode_seconds) if encode_seconds else 0.0,
                "carry": len(draft.carry or b""),
                "result": len(result.data),
                "media_type": result.media_type,
                "note": draft.note,
                "peak_rss": rss_bytes(os.getpid(), "VmHWM"),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 12, 24])
    parser.add_argument("--child", choices=["cutout", "crowd"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.runs)
        return

    import django

    django.setup()
    from bench.support import camera_jpeg, load_average, mb

    print(f"bench/engines.py, {args.runs} run(s) each, {load_average()}")
    print(
        f"{'':14} {'photo':>11} {'start':>7} {'finish':>7} {'encode':>7} {'finish-enc':>10} "
        f"{'carry':>8} {'result':>9} {'peak RSS':>9}"
    )
    for megapixels in args.sizes:
        photos = {"cutout": camera_jpeg(megapixels), "crowd": crowd_jpeg(megapixels)}
        for mode, data in photos.items():
            done = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--runs", str(args.runs)],
                input=data,
                capture_output=True,
                check=True,
            )
            m = json.loads(done.stdout)
            label = f"{mode} {megapixels:g} MP"
            print(
                f"{label:14} {m['size']:>11} {m['start']:6.3f}s {m['finish']:6.3f}s {m['encode']:6.3f}s "
                f"{m['finish'] - m['encode']:9.3f}s {m['carry'] / 1e3:6.0f}kB {mb(m['result']):>9} "
                f"{mb(m['peak_rss']):>9}" + (f"  note: {m['note']}" if m["note"] else "")
            )
    print(
        f"(intake and model load are not included above; model load ≈ {m['model_load'] * 1e3:.0f} ms once per thread)"
    )
    print(load_average())


if __name__ == "__main__":
    main()
