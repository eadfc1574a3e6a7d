"""The committed selfie-segmentation model is the file SOURCE.md says it is, and it loads."""

import hashlib

import numpy as np

from segmentation.engines import selfie

MODEL_SHA256 = "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"


def test_model_file_matches_its_recorded_checksum():
    data = selfie.MODEL_PATH.read_bytes()
    assert len(data) == 249_505
    assert hashlib.sha256(data).hexdigest() == MODEL_SHA256


def test_model_source_note_and_licence_sit_beside_it():
    folder = selfie.MODEL_PATH.parent
    note = (folder / "SOURCE.md").read_text()
    assert MODEL_SHA256 in note and "mediapipe==0.10.21" in note
    assert "Apache License" in (folder / "LICENSE").read_text()


def test_model_answers_a_256_square_probability_map():
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    chance = selfie.person_probability(picture)
    assert chance.shape == (256, 256) and chance.dtype == np.float32
    assert chance.min() >= 0.0 and chance.max() <= 1.0
    assert selfie.person_probability(picture, (400, 300)).shape == (300, 400)


def test_threads_running_the_model_at_once_get_the_answers_of_one_at_a_time():
    # A cv2.dnn.Net keeps its activations inside itself; shared between threads it fails its own
    # assertions or returns another thread's map. Each thread must have its own.
    import threading
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
