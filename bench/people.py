"""The embedded engines on whole people: composites of real people pasted onto real backgrounds,
with exact ground truth.

People are cut from permissively licensed photos (Debian's `opencv-doc` samples, scikit-image's
data) with the masks in bench/people_masks/ (traced by hand or from motion, refined by GrabCut; see
make.py there). The mask is the pasted silhouette, so the truth is exact by construction. The
scenes are made in memory at run time, each also without anyone in it (the true background); a
little sensor grain is added to both alike. Nothing is written unless --save names a directory.

Printed per scene:
* cutout: IoU of the configured local cutout engine's alpha (> 127) with the subject's people;
* crowd: for each passer-by, the share of its pixels that now look like the true background
  (closer to it than to the person), and the fill's fine texture against the true background's
  there (variance of the Laplacian of the grey image at the crowd engine's working size, ratio);
  the subject's mean change in levels (after the final JPEG encode at quality 95).
Then the time of each phase (intake, start = upload, finish = unlock) at 3 and 12 MP, wall and
CPU (the machine is shared: the CPU time is the steadier figure).

Needs `apt-get install opencv-doc`.

    .venv/bin/python bench/people.py [--megapixels 3] [--timing 3 12] [--scenes 1 14] [--save /tmp/people]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portraitsite.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("MAX_UPLOAD_BYTES", str(64 * 1024**2))

from bench.people_masks.sources import load_source, median_frame  # noqa: E402
from segmentation import pixels as pixels_module  # noqa: E402

MASKS = Path(__file__).resolve().parent / "people_masks"
GRAIN = 3.0  # sensor noise, levels (σ), the same field on the scene and on its true background
# A passer-by's pixel counts for the removal share only where it stands out from the background.
VISIBLE_LEVELS = 24
TEXTURE_PIXELS = 1_200_000  # texture is compared at the crowd engine's working size


# --- people and backgrounds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    name: str
    pixels: np.ndarray  # RGB, the mask's box
    mask: np.ndarray  # bool
    cut: tuple[str, ...]  # edges of the source photo that cut this person


def people() -> dict[str, Person]:
    recipes = json.loads((MASKS / "sources.json").read_text())["people"]
    found = {}
    for recipe in recipes:
        left, top, right, bottom = recipe["box"]
        pixels = load_source(recipe["source"])[top:bottom, left:right]
        mask = cv2.imread(str(MASKS / f"{recipe['name']}.png"), cv2.IMREAD_GRAYSCALE) > 0
        rows, cols = np.nonzero(mask)  # tight box: the height share is the person's own height
        crop = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
        found[recipe["name"]] = Person(recipe["name"], pixels[crop].copy(), mask[crop].copy(), tuple(recipe["cut"]))
    return found


BACKGROUNDS = {
    "street": {"package": "opencv-doc", "file": "vtest.avi", "median": True},
    "building": {"package": "opencv-doc", "file": "building.jpg"},
    "old town": {"package": "opencv-doc", "file": "leuvenA.jpg"},
    "palace": {"package": "opencv-doc", "file": "home.jpg"},
    "graffiti": {"package": "opencv-doc", "file": "graf1.png"},
    "grass": {"package": "scikit-image", "file": "grass"},
    "gravel": {"package": "scikit-image", "file": "gravel"},
    "bricks": {"package": "scikit-image", "file": "brick"},
}


def background(name: str, width: int, height: int) -> np.ndarray:
    source = BACKGROUNDS[name]
    pixels = median_frame(source) if source.get("median") else load_source(source)
    # Cover the frame: scale so both sides fit, then take the centre.
    scale = max(width / pixels.shape[1], height / pixels.shape[0])
    size = (max(width, round(pixels.shape[1] * scale)), max(height, round(pixels.shape[0] * scale)))
    pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_CUBIC)
    x0, y0 = (size[0] - width) // 2, (size[1] - height) // 2
    return np.ascontiguousarray(pixels[y0 : y0 + height, x0 : x0 + width])


# --- scenes -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    person: str
    height: float  # share of the frame's height
    x: float  # centre, share of the width (a person cut at the right edge of its photo: its right side)
    bottom: float  # share of the height; > 1 puts the feet below the frame
    angle: float = 0.0  # degrees, counter-clockwise
    subject: bool = False


def S(person, height, x, bottom, angle=0.0):  # noqa: N802 (short names keep the scene table readable)
    return Placement(person, height, x, bottom, angle, subject=True)


def P(person, height, x, bottom, angle=0.0):  # noqa: N802
    return Placement(person, height, x, bottom, angle)


# Passers-by first (they stand behind), the subject last.
SCENES: list[tuple[str, str, list[Placement]]] = [
    ("full body", "street", [S("basketball_thrower", 0.8, 0.5, 0.95)]),
    ("action", "building", [S("footballer", 0.55, 0.5, 0.9)]),
    ("portrait", "old town", [S("astronaut", 0.9, 0.5, 1.0)]),
    ("side, cut by edges", "palace", [S("basketball_catcher", 0.9, 1.0, 1.0)]),
    ("rotated full body", "graffiti", [S("basketball_thrower", 0.7, 0.45, 0.9, angle=15)]),
    ("rotated action", "grass", [S("footballer", 0.5, 0.5, 0.8, angle=-20)]),
    ("small subject", "street", [S("walker_550a", 0.5, 0.5, 0.85)]),
    ("pair", "building", [S("basketball_thrower", 0.75, 0.35, 0.95), S("astronaut", 0.7, 0.68, 1.0)]),
    ("walking pair", "old town", [S("walker_550a", 0.6, 0.4, 0.9), S("walker_550b", 0.58, 0.62, 0.9)]),
    ("action pair", "street", [S("footballer", 0.45, 0.3, 0.75), S("basketball_thrower", 0.7, 0.72, 0.95)]),
    (
        "group of three",
        "palace",
        [S("walker_650", 0.65, 0.5, 0.9), S("basketball_thrower", 0.7, 0.25, 0.95), S("astronaut", 0.6, 0.78, 1.0)],
    ),
    (
        "group of four",
        "gravel",
        [
            S("walker_0a", 0.45, 0.2, 0.8),
            S("walker_600", 0.45, 0.4, 0.82),
            S("walker_650", 0.48, 0.6, 0.85),
            S("walker_550b", 0.45, 0.8, 0.83),
        ],
    ),
    (
        "portrait, two passers-by",
        "street",
        [P("walker_0a", 0.25, 0.15, 0.6), P("walker_600", 0.15, 0.85, 0.45), S("astronaut", 0.8, 0.5, 1.0)],
    ),
    (
        "full body, four passers-by",
        "old town",
        [
            P("walker_550a", 0.3, 0.12, 0.85),
            P("walker_650", 0.2, 0.85, 0.7),
            P("walker_0b", 0.15, 0.7, 0.55),
            P("walker_600", 0.12, 0.3, 0.5),
            S("basketball_thrower", 0.75, 0.5, 0.97),
        ],
    ),
    (
        "action, one cut by the edge",
        "building",
        [P("walker_550b", 0.35, 0.0, 0.9), P("walker_0a", 0.12, 0.85, 0.75), S("footballer", 0.5, 0.55, 0.85)],
    ),
    (
        "side subject, small at the edge",
        "graffiti",
        [P("walker_650", 0.3, 0.04, 0.8), P("walker_0b", 0.1, 0.3, 0.6), S("basketball_catcher", 0.9, 1.0, 1.0)],
    ),
    (
        "portrait on grass, three passers-by",
        "grass",
        [
            P("walker_600", 0.2, 0.12, 0.5),
            P("walker_550a", 0.14, 0.88, 0.45),
            P("walker_0b", 0.12, 0.75, 0.85),
            S("astronaut", 0.8, 0.45, 1.0),
        ],
    ),
    (
        "bricks, a pair passing, one tilted",
        "bricks",
        [
            P("walker_550a", 0.25, 0.1, 0.7),
            P("walker_550b", 0.24, 0.2, 0.7),
            P("walker_650", 0.18, 0.85, 0.6, angle=10),
            S("basketball_thrower", 0.6, 0.5, 0.9),
        ],
    ),
    (
        "walker subject on gravel",
        "gravel",
        [P("walker_0a", 0.2, 0.15, 0.6), P("walker_550b", 0.2, 0.85, 0.65), S("walker_650", 0.7, 0.5, 0.95)],
    ),
    (
        "pair subject, two passers-by",
        "palace",
        [
            P("walker_600", 0.2, 0.08, 0.85),
            P("walker_0b", 0.2, 0.93, 0.85),
            S("astronaut", 0.65, 0.62, 1.0),
            S("basketball_thrower", 0.7, 0.38, 0.98),
        ],
    ),
    (
        "action, walker cut at the top right",
        "street",
        [P("walker_550a", 0.14, 0.99, 0.12), S("footballer", 0.6, 0.45, 0.9)],
    ),
    (
        "full body, four small passers-by",
        "street",
        [
            P("walker_0a", 0.12, 0.1, 0.5),
            P("walker_600", 0.13, 0.25, 0.8),
            P("walker_650", 0.14, 0.8, 0.55),
            P("walker_0b", 0.12, 0.9, 0.9),
            S("basketball_thrower", 0.5, 0.5, 0.95),
        ],
    ),
]


@dataclass
class Scene:
    title: str
    pixels: np.ndarray  # RGB, the composite
    empty: np.ndarray  # RGB, the same without anyone
    subject: np.ndarray  # bool: the subject's visible pixels
    passers_by: list[tuple[str, float, np.ndarray]]  # name, height share, visible pixels (bool)


def _placed(person: Person, placement: Placement, width: int, height: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The person scaled and rotated: pixels, mask, and the top-left corner in the frame."""
    scale = placement.height * height / person.mask.shape[0]
    size = (max(1, round(person.mask.shape[1] * scale)), max(1, round(person.mask.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    pixels = cv2.resize(person.pixels, size, interpolation=interpolation)
    mask = cv2.resize(person.mask.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    if placement.angle:
        centre = (size[0] / 2, size[1] / 2)
        turn = cv2.getRotationMatrix2D(centre, placement.angle, 1.0)
        cos, sin = abs(turn[0, 0]), abs(turn[0, 1])
        new = (int(size[1] * sin + size[0] * cos) + 1, int(size[1] * cos + size[0] * sin) + 1)
        turn[0, 2] += new[0] / 2 - centre[0]
        turn[1, 2] += new[1] / 2 - centre[1]
        pixels = cv2.warpAffine(pixels, turn, new, flags=cv2.INTER_LINEAR)
        mask = cv2.warpAffine(mask, turn, new, flags=cv2.INTER_LINEAR)
    mask = mask > 0.5
    box_height, box_width = mask.shape
    # A person cut by its photo's edge is placed against the same edge of the frame.
    left = width - box_width if "right" in person.cut else round(placement.x * width - box_width / 2)
    top = height - box_height if "bottom" in person.cut else round(placement.bottom * height) - box_height
    return pixels, mask, left, top


def make_scene(index: int, megapixels: float) -> Scene:
    title, backdrop, placements = SCENES[index]
    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5 / 16)) * 16
    height = width * 3 // 4
    empty = background(backdrop, width, height)
    pixels = empty.copy()
    owner = np.full((height, width), -1, np.int16)  # which placement each pixel shows
    everyone = people()
    for number, placement in enumerate(placements):
        person_pixels, mask, left, top = _placed(everyone[placement.person], placement, width, height)
        x0, y0 = max(0, left), max(0, top)
        x1, y1 = min(width, left + mask.shape[1]), min(height, top + mask.shape[0])
        visible = mask[y0 - top : y1 - top, x0 - left : x1 - left]
        pixels[y0:y1, x0:x1][visible] = person_pixels[y0 - top : y1 - top, x0 - left : x1 - left][visible]
        owner[y0:y1, x0:x1][visible] = number
    rng = np.random.default_rng(index)
    for top in range(0, height, 512):  # in bands: a 12 MP float array needs 300 MB
        grain = rng.normal(0, GRAIN, (min(512, height - top), width, 1)).astype(np.float32)
        for image in (pixels, empty):
            band = image[top : top + 512]
            band[:] = np.clip(band + grain, 0, 255).astype(np.uint8)
    subject = np.isin(owner, [n for n, p in enumerate(placements) if p.subject])
    passers_by = [(p.person, p.height, owner == n) for n, p in enumerate(placements) if not p.subject]
    return Scene(title, pixels, empty, subject, passers_by)


# --- measures -----------------------------------------------------------------------------------------------


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def removed_share(result: np.ndarray, scene: Scene, where: np.ndarray) -> float:
    """Share of the passer-by's visible pixels that now look like the true background (closer to
    it than to the person), compared slightly blurred: the question is whether the person's shape
    is still there, and a per-pixel comparison would count a textured fill's grain against it (a
    smooth smudge is closer, pixel by pixel, to any background than texture in a different phase)."""
    sigma = 0.004 * max(where.shape)

    def soft(pixels: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(pixels, (0, 0), sigma).astype(np.int16)

    original, empty = soft(scene.pixels), soft(scene.empty)
    stands_out = where & (np.abs(original - empty).max(axis=2) > VISIBLE_LEVELS)
    if not stands_out.any():
        return 1.0
    now = soft(result)
    to_background = np.abs(now - empty)[stands_out].sum(axis=1)
    to_person = np.abs(now - original)[stands_out].sum(axis=1)
    return float(np.mean(to_background < to_person))


def _texture_size(shape: tuple[int, int]) -> tuple[int, int]:
    height, width = shape
    scale = min(1.0, (TEXTURE_PIXELS / (width * height)) ** 0.5)
    return max(1, round(width * scale)), max(1, round(height * scale))


def fine_texture(pixels: np.ndarray, where: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image inside `where`, at the crowd working size."""
    size = _texture_size(where.shape)
    grey = cv2.cvtColor(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    laplacian = cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F, ksize=3)
    inside = cv2.resize(where.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    # Not the outline: its seam would count as texture (or, smoothed, hide missing texture).
    inside = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return float(laplacian[inside].var()) if inside.any() else float("nan")


def encode(pixels: np.ndarray) -> bytes:
    return pixels_module.encode(Image.fromarray(pixels), "JPEG", quality=92)


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


# --- running ------------------------------------------------------------------------------------------------


def measure_scene(index: int, megapixels: float, save: Path | None, tools: list[str]) -> dict:
    from segmentation.engines import CROWD, CUTOUT, EngineError, engine_named
    from segmentation.intake import accept_upload

    scene = make_scene(index, megapixels)
    photo = accept_upload(encode(scene.pixels))
    uploaded = np.asarray(photo.open().convert("RGB"))
    row: dict = {"scene": index + 1, "title": scene.title, "size": f"{photo.width}×{photo.height}"}
    row["iou"], alpha = float("nan"), None
    cutout = engine_named(CUTOUT, "local")
    try:
        if "cutout" not in tools:
            raise _Skipped
        result = cutout.finish(photo, cutout.start(photo).carry)
        with Image.open(io.BytesIO(result.data)) as image:
            alpha = np.asarray(image.getchannel("A"))
        row["iou"] = iou(alpha > 127, scene.subject)
    except _Skipped:
        pass
    except EngineError as error:
        row["iou"] = 0.0
        row["cutout_error"] = str(error)
    if scene.passers_by and "crowd" in tools:
        crowd = engine_named(CROWD, "local")
        try:
            draft = crowd.start(photo)
            erased = decode(crowd.finish(photo, draft.carry).data)
        except EngineError as error:
            erased = uploaded
            row["crowd_error"] = str(error)
        row["subject_change"] = float(np.abs(erased.astype(np.int16) - uploaded)[scene.subject].mean())
        row["passers_by"] = []
        for name, share, where in scene.passers_by:
            truth = fine_texture(scene.empty, where)
            row["passers_by"].append(
                {
                    "name": name,
                    "height": share,
                    "removed": removed_share(erased, scene, where),
                    "texture": fine_texture(erased, where) / truth if truth > 0 else float("nan"),
                }
            )
        if save:
            _save(save / f"{index + 1:02d}-crowd.png", scene.pixels, erased)
    if save and alpha is not None:
        shown = (uploaded * (alpha[..., None] / 255.0) + 255 * (1 - alpha[..., None] / 255.0)).astype(np.uint8)
        _save(save / f"{index + 1:02d}-cutout.png", scene.pixels, shown)
    return row


class _Skipped(Exception):
    pass


def _save(path: Path, before: np.ndarray, after: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pair = np.hstack([before, after])
    scale = min(1.0, 2400 / pair.shape[1])
    pair = cv2.resize(pair, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    Image.fromarray(pair).save(path)


def time_phases(index: int, megapixels: float, mode: str, runs: int) -> dict:
    from segmentation.engines import engine_named
    from segmentation.intake import accept_upload

    data = encode(make_scene(index, megapixels).pixels)
    engine = engine_named(mode, "local")
    engine.start(accept_upload(data))  # models loaded, caches warm
    times: dict[str, list[float]] = {}
    for _ in range(runs):
        photo = _timed(times, "intake", lambda: accept_upload(data))
        draft = _timed(times, "start", lambda: engine.start(photo))
        _timed(times, "finish", lambda: engine.finish(photo, draft.carry))
    return {key: statistics.median(values) for key, values in times.items()}


def _timed(times: dict[str, list[float]], phase: str, work):
    """Run `work`, adding its wall time and its CPU time (all threads of this process): on a
    shared machine the wall time also measures the neighbours, the CPU time mostly does not."""
    wall, cpu = time.perf_counter(), time.process_time()
    done = work()
    times.setdefault(phase, []).append(time.perf_counter() - wall)
    times.setdefault(f"{phase} cpu", []).append(time.process_time() - cpu)
    return done


# Timed scenes: one person, a group of three, and the crowd scene with four passers-by.
TIMED = [(0, "cutout"), (10, "cutout"), (13, "crowd")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", type=float, default=3, help="size of the scenes for the quality measures")
    parser.add_argument("--timing", type=float, nargs="*", default=[3, 12], help="sizes (MP) for the phase times")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--scenes", type=int, nargs="*", help="scene numbers (default: all)")
    parser.add_argument("--tools", nargs="+", choices=["cutout", "crowd"], default=["cutout", "crowd"])
    parser.add_argument("--save", type=Path, help="write before/after images of each scene here (not the repo)")
    args = parser.parse_args()

    import django

    django.setup()
    from bench.support import load_average

    chosen = [n - 1 for n in args.scenes] if args.scenes else range(len(SCENES))
    print(f"bench/people.py, scenes at {args.megapixels:g} MP, {load_average()}")
    print(f"{'#':>2} {'scene':38} {'cutout IoU':>10} {'subject Δ':>9}  passers-by: height → removed, texture")
    ious, textures, removed, changes = [], [], [], []
    for index in chosen:
        if "cutout" not in args.tools and all(placement.subject for placement in SCENES[index][2]):
            continue  # nobody to erase: nothing for the crowd tool to measure
        row = measure_scene(index, args.megapixels, args.save, args.tools)
        ious.append(row["iou"])
        line = f"{row['scene']:2} {row['title'][:38]:38} {row['iou']:10.3f}"
        if "passers_by" in row:
            changes.append(row["subject_change"])
            line += f" {row['subject_change']:9.2f} "
            for person in row["passers_by"]:
                line += f" {person['height'] * 100:3.0f}% → {person['removed'] * 100:3.0f}%, {person['texture']:.2f};"
                if person["height"] >= 0.12:
                    removed.append(person["removed"])
                    if person["removed"] >= 0.9:  # a fill's texture; where someone stays it is theirs
                        textures.append(person["texture"])
        for key in ("cutout_error", "crowd_error"):
            if key in row:
                line += f"  [{key}: {row[key]}]"
        print(line, flush=True)
    if "cutout" in args.tools:
        print(f"cutout IoU: mean {np.mean(ious):.3f}, lowest {np.min(ious):.3f}")
    if removed:
        print(
            f"crowd, passers-by ≥ 12 % of the height: {sum(r >= 0.9 for r in removed)} of {len(removed)} removed "
            f"(≥ 90 % of their pixels), mean share removed {np.mean(removed) * 100:.0f} %; "
            f"texture ratio of their fills median {np.median(textures):.2f}, lowest {np.min(textures):.2f}; "
            f"subject change mean {np.mean(changes):.2f} levels"
        )
    if args.timing:
        print(f"\nphase times, median of {args.runs} runs (s), {load_average()}")
        print(f"{'':34} {'MP':>4} {'intake':>7} {'start':>7} {'finish':>7}   CPU: {'start':>7} {'finish':>7}")
        for megapixels in args.timing:
            for index, mode in [(index, mode) for index, mode in TIMED if mode in args.tools]:
                times = time_phases(index, megapixels, mode, args.runs)
                label = f"{mode}: {SCENES[index][0]}"
                print(
                    f"{label[:34]:34} {megapixels:4g} {times['intake']:7.2f} {times['start']:7.2f} "
                    f"{times['finish']:7.2f}        {times['start cpu']:7.2f} {times['finish cpu']:7.2f}",
                    flush=True,
                )
    print(load_average())


if __name__ == "__main__":
    main()
