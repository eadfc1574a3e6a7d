"""The committed models are the files SOURCE.md says they are, each is used, and each loads once
per thread."""

import hashlib
import re
import threading

import numpy as np

from segmentation.engines import faces, runtime, selfie

SHIPPED = sorted(path.name for path in runtime.WEIGHTS.glob("*.tflite"))


def source_rows() -> dict[str, tuple[int, str]]:
    """file → (bytes, sha256) from SOURCE.md's table."""
    note = (runtime.WEIGHTS / "SOURCE.md").read_text()
    rows = re.findall(r"^\| `([\w.]+\.tflite)` \|.*\| ([\d,]+) \| `([0-9a-f]{64})` \|$", note, re.MULTILINE)
    return {name: (int(size.replace(",", "")), digest) for name, size, digest in rows}


def test_every_shipped_model_matches_its_recorded_size_and_checksum():
    rows = source_rows()
    assert sorted(rows) == SHIPPED
    for name in SHIPPED:
        data = (runtime.WEIGHTS / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == rows[name], name


def test_the_selfie_model_is_still_the_one_taken_in_november():
    assert source_rows()["selfie_segmentation.tflite"][1] == (
        "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"
    )


def test_source_note_names_each_package_and_the_licence_sits_beside_it():
    note = (runtime.WEIGHTS / "SOURCE.md").read_text()
    assert "mediapipe==0.10.21" in note and "@mediapipe/objectron@0.4.1675468480" in note
    assert "bytes 184 to 9,987,912" in note and "@mediapipe/pose@0.5.1675469404" in note
    licence = (runtime.WEIGHTS / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence


def test_every_shipped_model_is_used_and_every_used_model_is_shipped():
    from segmentation.engines import people

    used = {selfie.MODEL_FILE, faces.MODEL_FILE, *people.MODEL_FILES}
    assert sorted(used) == SHIPPED


def test_selfie_model_answers_a_256_square_probability_map():
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    chance = selfie.person_probability(picture)
    assert chance.shape == (256, 256) and chance.dtype == np.float32
    assert chance.min() >= 0.0 and chance.max() <= 1.0
    assert selfie.person_probability(picture, (400, 300)).shape == (300, 400)


def test_each_thread_loads_its_own_interpreter_once():
    first = runtime.interpreter(selfie.MODEL_FILE)
    assert runtime.interpreter(selfie.MODEL_FILE) is first
    other = []
    thread = threading.Thread(target=lambda: other.append(runtime.interpreter(selfie.MODEL_FILE)))
    thread.start()
    thread.join()
    assert other[0] is not first


def test_threads_running_the_model_at_once_get_the_answers_of_one_at_a_time():
    # An interpreter keeps its activations inside itself; shared between threads it would return
    # another thread's map. Each thread must have its own.
    from concurrent.futures import ThreadPoolExecutor

    from skimage import data

    pictures = [np.ascontiguousarray(np.roll(data.astronaut(), 40 * shift, axis=1)) for shift in range(8)]
    alone = [selfie.person_probability(picture) for picture in pictures]
    start = threading.Barrier(4)

    def run(first: int) -> list[tuple[int, np.ndarray]]:
        start.wait()
        return [((first + k) % 8, selfie.person_probability(pictures[(first + k) % 8])) for k in range(8)]

    with ThreadPoolExecutor(4) as pool:
        answers = [answer for batch in pool.map(run, range(4)) for answer in batch]

    assert len(answers) == 32
    for index, chance in answers:
        np.testing.assert_allclose(chance, alone[index], atol=1e-5)
