"""Runs the shipped .tflite models (`weights/`, see SOURCE.md there) with Google's LiteRT.

Chosen by `bench/runtimes.py` over OpenCV's dnn module, which cannot run the pose detector at all
(DENSIFY and DEPTH_TO_SPACE operators), returns only one output of a multi-output model unless it
is loaded with `cv2.dnn.ENGINE_CLASSIC`, and hands the SSD's box tensors back in a different order
per feature-map layer. LiteRT runs every model as written, and faster (numbers in the bench).

Each model is loaded once per thread and kept: an interpreter holds its tensors inside itself, so
two threads invoking one interpreter would overwrite each other's activations. Nothing is ever
downloaded; the files sit beside this module.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

WEIGHTS = Path(__file__).resolve().parent / "weights"

# One thread per interpreter: the job pool already runs one job per core (JOB_WORKERS = 2 on two
# cores), so a second XNNPACK thread per model only fights the other job for the same cores
# (bench/runtimes.py at load 9: SSD 38 → 35 ms, pose landmarks 38 → 46 ms with two).
THREADS = 1

_loaded = threading.local()


def interpreter(file: str) -> Interpreter:
    """This thread's interpreter for the model `file` in `weights/`, loaded on first use."""
    models = getattr(_loaded, "models", None)
    if models is None:
        models = _loaded.models = {}
    model = models.get(file)
    if model is None:
        model = Interpreter(model_path=str(WEIGHTS / file), num_threads=THREADS)
        model.allocate_tensors()
        models[file] = model
    return model


def run(file: str, tensor: np.ndarray) -> dict[str, np.ndarray]:
    """Run the model `file` on one input tensor (its exact shape, float32): its outputs by name,
    copied out of the interpreter so that the next run cannot change them."""
    model = interpreter(file)
    (entry,) = model.get_input_details()
    model.set_tensor(entry["index"], np.ascontiguousarray(tensor, dtype=np.float32))
    model.invoke()
    return {output["name"]: model.get_tensor(output["index"]).copy() for output in model.get_output_details()}
