"""What choosing who stays adds to the provider engines ([T2.2]), at 3 and 12 MP.

At upload remove.bg's and DashScope's engines also find the people on the working image
(`provider_people.find`: the people finder, small people included for DashScope), judge them
against the provider's answer and pack their outlines: that is the added upload cost. Then one
changed choice: `choose` (the new preview) and `finish` for it (the full-resolution download),
against `finish` at the starting choice, which is what an unlock cost before. "DashScope+fill":
the model erases only the smaller passer-by and leaves the larger one (a fifth of the frame high),
and the changed choice keeps the subject alone, so the one the model left is erased by the local
crowd's fill (PatchMatch in
`choose`, its blend at full size in `finish`); its carry is the one after that choice.

The providers are the repository's fakes (tests/fakes), in this process; their own time is not
counted. remove.bg runs with REMOVEBG_FULL_RESULT=upfront, so `finish` works from the carried full
cutout (after an on_unlock unlock the carry holds it too, and `finish` is the same work plus the
call). Photo: bench/support.py's scene (the astronaut in front of the coffee photo, with grain)
with two smaller passers-by, as bench/engines.py's crowd photo. Medians of --runs runs.

    .venv/bin/python bench/provider_choice.py [--runs 3] [--sizes 3 12]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portraitsite.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("MAX_UPLOAD_BYTES", str(64 * 1024**2))


def photo_with_passers_by(megapixels: float):
    """The bench scene, two passers-by pasted in, and each passer-by's box as fractions."""
    import numpy as np
    from PIL import Image

    from bench.support import scene
    from segmentation.pixels import encode
    from tests.test_local_cutout import paste_person

    pixels = np.asarray(scene(megapixels, seed=1)).copy()
    height, width = pixels.shape[:2]
    boxes = []
    for size, left, top in ((height // 5, width * 17 // 20, height // 3), (height // 8, width // 30, height // 4)):
        truth = np.zeros((height, width), bool)
        paste_person(pixels, truth, size, left, top)
        rows, cols = np.nonzero(truth)
        boxes.append((cols.min() / width, rows.min() / height, (cols.max() + 1) / width, (rows.max() + 1) / height))
    return encode(Image.fromarray(pixels), "JPEG", quality=90), boxes


def timed(function, runs: int) -> tuple[float, object]:
    import statistics

    seconds, value = [], None
    for _ in range(runs):
        began = time.perf_counter()
        value = function()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", type=float, nargs="+", default=[3, 12])
    parser.add_argument(
        "--scenes",
        type=int,
        nargs="*",
        default=[11, 13],
        help="bench/people.py scenes (real people, needs opencv-doc) to time the finding on: "
        "11 is a group of four, 13 a subject with four passers-by",
    )
    args = parser.parse_args()

    import django

    django.setup()
    import logging

    import numpy as np
    from django.conf import settings

    from bench.support import load_average
    from segmentation.engines import provider_people
    from segmentation.engines.dashscope import DashScopeCrowd
    from segmentation.engines.removebg import RemoveBgCutout
    from segmentation.intake import accept_upload
    from tests.fakes.dashscope import FakeDashScope
    from tests.fakes.removebg import FakeRemoveBg

    logging.getLogger("segmentation").setLevel(logging.WARNING)
    logging.getLogger("portraitsite").setLevel(logging.ERROR)  # usage counts need a database
    print(f"bench/provider_choice.py, {args.runs} run(s) each, {load_average()}")
    print(
        f"{'':14} {'photo':>11} {'people':>6} {'find':>6} {'judge+pack':>10} {'choose':>7} "
        f"{'finish':>7} {'finish@start':>12} {'carry':>9}"
    )
    with FakeRemoveBg() as removebg_fake, FakeDashScope() as dashscope_fake:
        settings.REMOVEBG_API_URL, settings.REMOVEBG_API_KEY = removebg_fake.base_url, removebg_fake.api_key
        settings.DASHSCOPE_API_URL, settings.DASHSCOPE_API_KEY = dashscope_fake.base_url, dashscope_fake.api_key
        settings.REMOVEBG_FULL_RESULT = "upfront"
        for megapixels in args.sizes:
            data, boxes = photo_with_passers_by(megapixels)
            photo = accept_upload(data)  # with intake's working copy, as a job's start has it
            provider_people.find(photo, small=False)  # load the models outside the timings
            engines = (
                ("remove.bg", RemoveBgCutout(), False),
                ("DashScope", DashScopeCrowd(), True),
                ("DashScope+fill", DashScopeCrowd(), True),
            )
            for name, engine, small in engines:
                dashscope_fake.erase = boxes[1:] if name == "DashScope+fill" else boxes
                find_s, (size, people) = timed(lambda small=small: provider_people.find(photo, small=small), args.runs)
                draft = engine.start(photo)
                cast = provider_people.unpack_cast(_section(draft.carry, "cast"))
                cover = np.ones(size[::-1], np.float32)  # the judging's cost does not depend on it

                def judge_and_pack(size=size, people=people, cover=cover):
                    shares = provider_people.covered(people, size, cover)
                    kept = {i for i, share in enumerate(shares) if share > provider_people.MOSTLY}
                    return provider_people.pack_cast(provider_people.cast_of(size, people, kept))

                judge_s, _ = timed(judge_and_pack, args.runs)
                everyone = set(range(len(cast.people)))
                # The changed choice: the subject (the largest outline) alone for remove.bg and
                # DashScope+fill; for DashScope everyone the model erased brought back but one.
                subject = max(everyone, key=lambda i: int((cast.people[i].mask >= 128).sum()))
                if name in ("remove.bg", "DashScope+fill"):
                    keep = frozenset({subject})
                else:
                    erased = sorted(everyone - cast.start)
                    keep = frozenset(cast.start | set(erased[1:]))
                if keep == cast.start or not keep or (name == "DashScope+fill" and not cast.start - keep):
                    print(
                        f"{name:14} no changed choice possible: {len(cast.people)} people, start {sorted(cast.start)}"
                    )
                    continue
                choose_s, chosen = timed(lambda keep=keep: engine.choose(photo, draft.carry, keep), args.runs)
                finish_s, _ = timed(lambda: engine.finish(photo, chosen.carry), args.runs)
                start_s, _ = timed(lambda: engine.finish(photo, draft.carry), args.runs)
                carry = {"remove.bg": _without_full(draft.carry), "DashScope": draft.carry}.get(name, chosen.carry)
                print(
                    f"{name:14} {photo.width}×{photo.height:<5} {len(cast.people):>6} {find_s:>5.2f}s "
                    f"{judge_s:>9.3f}s {choose_s:>6.2f}s {finish_s:>6.2f}s {start_s:>11.2f}s "
                    f"{len(carry) / 1024:>7.0f}kB"
                )
        if args.scenes:
            _find_on_real_people(args, provider_people, accept_upload)
        print(f"after: {load_average()}")


def _find_on_real_people(args, provider_people, accept_upload) -> None:
    """The finding alone, on photos of several real people: its cost grows with the people found."""
    from PIL import Image

    from bench.people import SCENES, make_scene
    from segmentation.pixels import encode

    print(f"{'finding on':28} {'photo':>11} {'remove.bg':>16} {'DashScope':>16}")
    for index in args.scenes:
        for megapixels in args.sizes:
            scene = make_scene(index, megapixels)
            photo = accept_upload(encode(Image.fromarray(scene.pixels), "JPEG", quality=90))
            cells = []
            for small in (False, True):
                finding = lambda small=small: provider_people.find(photo, small=small)  # noqa: E731
                seconds, (_size, people) = timed(finding, args.runs)
                cells.append(f"{seconds:.2f}s ({len(people)} found)")
            print(f"{SCENES[index][0]:28} {photo.width}×{photo.height:<5} {cells[0]:>16} {cells[1]:>16}")


def _section(carry: bytes, name: str) -> bytes:
    from segmentation.engines.sections import unpack_sections

    return unpack_sections(carry[:4], carry)[name]


def _without_full(carry: bytes) -> bytes:
    """The carry an on_unlock upload keeps: everything but the full cutout."""
    from segmentation.engines.sections import pack_sections, unpack_sections

    sections = unpack_sections(carry[:4], carry)
    sections.pop("full", None)
    return pack_sections(carry[:4], sections)


if __name__ == "__main__":
    main()
