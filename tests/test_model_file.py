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
    assert 0.0 <= chance.min() and chance.max() <= 1.0
    assert selfie.person_probability(picture, (400, 300)).shape == (300, 400)
