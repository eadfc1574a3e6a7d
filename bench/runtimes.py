"""Which runtime runs the shipped .tflite models (segmentation/engines/weights/): Google's LiteRT
(`ai-edge-litert`, with 1 and 2 threads) against OpenCV's dnn module (classic engine, the only one
that returns every output of a multi-output model).

For each model: the time to load it, the median time of one inference on a real photo (scikit-image's
astronaut, resized to the model's input), and the largest difference between the two runtimes'
outputs (same input), or why OpenCV could not run it. Prints the load average with the numbers:
the machine is shared.

    .venv/bin/python bench/runtimes.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from segmentation.engines.runtime import WEIGHTS  # noqa: E402

# (file, input side, value range): as each model's MediaPipe graph feeds it.
MODELS = [
    ("selfie_segmentation.tflite", 256, (0, 1)),
    ("person_detection_ssd.tflite", 300, (-1, 1)),
    ("pose_detection.tflite", 224, (-1, 1)),
    ("pose_landmark_full.tflite", 256, (0, 1)),
    ("face_detection_short_range.tflite", 128, (-1, 1)),
]


def median_seconds(call, runs: int) -> float:
    call()  # warm up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def litert(path: Path, nhwc: np.ndarray, threads: int, runs: int) -> tuple[float, float, list[np.ndarray]]:
    start = time.perf_counter()
    model = Interpreter(model_path=str(path), num_threads=threads)
    model.allocate_tensors()
    load = time.perf_counter() - start
    (entry,) = model.get_input_details()

    def once():
        model.set_tensor(entry["index"], nhwc)
        model.invoke()

    seconds = median_seconds(once, runs)
    outputs = [model.get_tensor(output["index"]) for output in model.get_output_details()]
    return load, seconds, outputs


def opencv(path: Path, nhwc: np.ndarray, runs: int) -> tuple[float, float, list[np.ndarray]]:
    start = time.perf_counter()
    net = cv2.dnn.readNetFromTFLite(str(path), engine=cv2.dnn.ENGINE_CLASSIC)
    load = time.perf_counter() - start
    names = net.getUnconnectedOutLayersNames()
    blob = np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))

    def once():
        net.setInput(blob)
        return net.forward(names)

    seconds = median_seconds(once, runs)
    return load, seconds, list(once())


def closest_difference(reference: list[np.ndarray], candidate: list[np.ndarray]) -> float:
    """Largest absolute difference, each LiteRT output matched with the OpenCV output of the same
    number of values (OpenCV names and orders them differently)."""
    worst = 0.0
    for expected in reference:
        same_size = [c for c in candidate if c.size == expected.size]
        if not same_size:
            return float("inf")
        # NCHW outputs come back transposed: compare sorted values, a layout-free check.
        flat = np.sort(expected.ravel())
        worst = max(worst, min(float(np.abs(np.sort(c.ravel()) - flat).max()) for c in same_size))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}, cv2 {cv2.__version__}")
    photo = data.astronaut()
    print(f"{'model':36} {'runtime':12} {'load ms':>8} {'run ms':>8}  max |LiteRT − OpenCV|")
    for file, side, (low, high) in MODELS:
        pixels = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
        nhwc = (pixels / 255 * (high - low) + low)[None]
        path = WEIGHTS / file
        reference = None
        for threads in (1, 2):
            load, seconds, outputs = litert(path, nhwc, threads, args.runs)
            reference = reference or outputs
            print(f"{file:36} {f'litert ×{threads}':12} {load * 1e3:8.1f} {seconds * 1e3:8.1f}")
        try:
            load, seconds, outputs = opencv(path, nhwc, args.runs)
        except cv2.error as error:
            reason = str(error).strip().splitlines()[-1][:70]
            print(f"{file:36} {'opencv':12} {'—':>8} {'—':>8}  cannot run: {reason}")
            continue
        difference = closest_difference(reference, outputs)
        print(f"{file:36} {'opencv':12} {load * 1e3:8.1f} {seconds * 1e3:8.1f}  {difference:.2g}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
