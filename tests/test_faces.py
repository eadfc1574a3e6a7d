"""The face detector finds real faces where they are, and none on photos without a face."""

import numpy as np
from skimage import data

from segmentation.engines.faces import find_faces


def test_the_astronauts_face_is_found_with_eyes_above_the_mouth():
    (face,) = find_faces(data.astronaut())
    left, top, right, bottom = face.box
    # Her face spans about x 180–270, y 85–180 in the 512 px photo.
    assert 160 < left < 200 and 250 < right < 290 and 60 < top < 110 and 160 < bottom < 200
    right_eye, left_eye, nose, mouth = face.points[:4]
    assert right_eye[0] < left_eye[0] and max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]
    assert face.score > 0.8


def test_a_face_is_found_in_a_wide_photo_and_mapped_back_through_the_letterbox():
    wide = np.zeros((512, 800, 3), np.uint8)
    wide[:, 250:762] = data.astronaut()
    (face,) = find_faces(wide)
    # The face is 15 px wide in the model's input here, so the box is looser than above.
    left, top, right, bottom = face.box
    assert 440 < (left + right) / 2 < 500 and 95 < (top + bottom) / 2 < 150


def test_no_face_on_photos_without_people():
    for photo in (data.coffee(), data.rocket(), np.zeros((200, 300, 3), np.uint8)):
        assert find_faces(photo) == []
