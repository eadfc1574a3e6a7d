"""Choosing who stays with the embedded crowd engine ([T2.2]): how long a redraw takes.

The photo is bench/people.py's "full body, four passers-by" scene (five people: the subject and
four passers-by, real people on a real street) at 12 MP. After the upload (`start`), the visitor
changes the choice three times, as a job's redraw does it (`jobs.redraw`: `choose`, the people
list, the watermarked preview; and when the job is unlocked, the full result again):

1. keep one passer-by: a hole disappears, no other changes, nothing is filled;
2. erase them again: one hole is filled anew, the three others are reused from the carry;
3. keep only one passer-by and erase the subject, the largest hole: one new fill, the rest reused.

Printed per step: wall and CPU time of the redraw for the preview, and of the full result.
Target: the preview redraw under 3 s. Needs `apt-get install opencv-doc`.

    .venv/bin/python bench/choose.py [--megapixels 12] [--runs 3]
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
os.environ.setdefault("MAX_UPLOAD_BYTES", str(64 * 1024**2))

SCENE = 13  # bench/people.py's "full body, four passers-by" (index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", type=float, default=12)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import django

    django.setup()
    from bench.people import SCENES, encode, make_scene
    from bench.support import load_average
    from segmentation import previews
    from segmentation.engines.crowd import LocalCrowd, unpack_crowd
    from segmentation.intake import accept_upload

    data = encode(make_scene(SCENE, args.megapixels).pixels)
    engine = LocalCrowd()
    photo = accept_upload(data)
    first = engine.start(photo)  # models loaded, as in a running site
    people = engine.people(first.carry)
    subject = next(person.id for person in people if person.kept)
    passers_by = sorted((person for person in people if not person.kept), key=lambda p: -p.box[3])
    biggest = passers_by[0].id
    print(
        f"bench/choose.py: {SCENES[SCENE][0]!r} at {photo.width}×{photo.height}, {len(people)} people, "
        f"median of {args.runs} runs, {load_average()}"
    )
    steps = [
        ("keep one passer-by (no new fill)", frozenset({subject, biggest})),
        ("erase them again (1 new fill)", frozenset({subject})),
        ("keep a passer-by, erase the subject", frozenset({biggest})),
    ]
    print(f"{'':40} {'preview':>8} {'CPU':>6}   {'full':>6} {'CPU':>6}  holes (new)")
    carry = first.carry
    for label, keep in steps:
        times: dict[str, list[float]] = {}
        for _ in range(args.runs):
            photo = accept_upload(data)  # as the pool has it: no working copy kept between requests
            photo.working = None
            wall, cpu = time.perf_counter(), time.process_time()
            draft = engine.choose(photo, carry, keep)
            engine.people(draft.carry)
            previews.render_preview(draft.preview)
            times.setdefault("preview", []).append(time.perf_counter() - wall)
            times.setdefault("preview cpu", []).append(time.process_time() - cpu)
            wall, cpu = time.perf_counter(), time.process_time()
            engine.finish(photo, draft.carry)
            times.setdefault("full", []).append(time.perf_counter() - wall)
            times.setdefault("full cpu", []).append(time.process_time() - cpu)
        before = {hole.origin for hole in unpack_crowd(carry).holes}
        holes = unpack_crowd(draft.carry).holes
        new = sum(hole.origin not in before for hole in holes)
        median = {key: statistics.median(values) for key, values in times.items()}
        print(
            f"{label:40} {median['preview']:7.2f}s {median['preview cpu']:5.2f}s  "
            f"{median['full']:5.2f}s {median['full cpu']:5.2f}s  {len(holes)} ({new})",
            flush=True,
        )
        carry = draft.carry
    print(load_average())


if __name__ == "__main__":
    main()
