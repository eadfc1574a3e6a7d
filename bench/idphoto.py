"""ID photos at 12 MP (and other sizes): each phase of segmentation/engines/idphoto.py with the
local cutout engine, timed apart, plus the downloads made from the stored result.

Photo: bench/support.py's camera-like scene (scikit-image's astronaut, 90 % of the frame high,
in front of its coffee photo, with grain), as a camera JPEG. Medians of --runs runs; the machine
is shared, so the load average is printed with the numbers.

    .venv/bin/python bench/idphoto.py [--runs 3] [--sizes 12] [--spec us-2x2]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portraitsite.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("MAX_UPLOAD_BYTES", str(64 * 1024**2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", type=float, nargs="+", default=[12])
    parser.add_argument("--spec", default="us-2x2")
    args = parser.parse_args()

    import django

    django.setup()
    import numpy as np
    from PIL import Image

    from bench.support import camera_jpeg, load_average, median_time
    from segmentation.engines.faces import detect_faces
    from segmentation.engines.idphoto import IdPhoto, _alpha_at, _unpack
    from segmentation.engines.local import LocalCutout
    from segmentation.idphoto import downloads
    from segmentation.idphoto.compose import framed_cutout
    from segmentation.idphoto.framing import frame, the_face
    from segmentation.idphoto.specs import SPECS
    from segmentation.intake import WORKING_LONG_SIDE, accept_upload
    from segmentation.pixels import encode_png
    from segmentation.previews import render_preview

    spec = SPECS[args.spec]
    print(f"ID photo {spec.key} ({spec.width_px}×{spec.height_px}), local cutout, median of {args.runs}")
    print(load_average())
    for megapixels in args.sizes:
        photo = accept_upload(camera_jpeg(megapixels))
        engine = IdPhoto(LocalCutout(), spec.key, "local")
        cutout = LocalCutout()
        print(f"\n{megapixels:g} MP ({photo.width}×{photo.height}), JPEG {len(photo.data) / 1e6:.1f} MB")

        # Phase one, piece by piece, then whole.
        def working():
            return np.asarray(photo.open_reduced(WORKING_LONG_SIDE).convert("RGB"))

        rgb = working()
        face = the_face(rgb)
        draft = cutout.start(photo)
        alpha = _alpha_at(draft.preview, rgb.shape[1], rgb.shape[0])
        framing = frame(face, alpha, spec, (photo.width, photo.height))
        preview = framed_cutout(rgb, alpha, framing.matrix, spec)
        rows = [
            ("upload: decode at working size", lambda: working()),
            ("upload: find the face (with closer look)", lambda: detect_faces(rgb)),
            ("upload: cutout engine's first pass", lambda: cutout.start(photo)),
            ("upload: framing (level, head top, crop)", lambda: frame(face, alpha, spec, (photo.width, photo.height))),
            ("upload: framed preview + edge colours", lambda: framed_cutout(rgb, alpha, framing.matrix, spec)),
            ("upload: watermarked WebP", lambda: render_preview(preview)),
            ("upload: whole start()", lambda: engine.start(photo)),
        ]
        carry = engine.start(photo).carry
        matrix, inner = _unpack(carry)
        result = cutout.finish(photo, inner)
        with Image.open(io.BytesIO(result.data)) as decoded:
            decoded.load()
            full_alpha = np.asarray(decoded.getchannel("A"))
        full_rgb = np.asarray(photo.open().convert("RGB"))

        def decode_alpha():
            with Image.open(io.BytesIO(result.data)) as decoded:
                decoded.load()
                return decoded.getchannel("A")

        framed = framed_cutout(full_rgb, full_alpha, matrix, spec)
        rows += [
            ("unlock: (not run) local cutout's own finish", lambda: cutout.finish(photo, inner)),
            ("unlock: (not run) decoding its PNG's alpha", decode_alpha),
            ("unlock: decode the photo", lambda: photo.open()),
            ("unlock: frame at full size + edge colours", lambda: framed_cutout(full_rgb, full_alpha, matrix, spec)),
            ("unlock: PNG of the framed result", lambda: encode_png(framed)),
            ("unlock: whole finish()", lambda: engine.finish(photo, carry)),
        ]
        stored = engine.finish(photo, carry).data
        for label, query in (
            ("download: single JPEG", {}),
            ("download: print sheet", {"layout": "sheet"}),
            ("download: ≤ 100 KB", {"max_kb": "100"}),
            ("download: sheet ≤ 500 KB", {"layout": "sheet", "max_kb": "500"}),
        ):
            choice = downloads.parse(query, spec)
            rows.append((label, lambda choice=choice: downloads.render(stored, spec, choice)))
        for label, function in rows:
            print(f"  {label:44s} {median_time(function, args.runs) * 1000:8.0f} ms")
    print("\n" + load_average())


if __name__ == "__main__":
    main()
