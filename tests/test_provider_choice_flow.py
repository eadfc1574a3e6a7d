"""Choosing who stays with the paid providers, through the views and the job pool ([T2.2]): a
choice before unlocking and another after it cost no provider call, and the download follows the
last choice."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.flow import token_of, upload, wait_ready, wait_unlocked, wait_until
from tests.test_dashscope_choice import PLACEMENTS as CROWD_PLACEMENTS
from tests.test_dashscope_choice import box_of, inside
from tests.test_local_cutout import encode
from tests.test_people import scene_with
from tests.test_removebg_choice import LEFT_OUT, PLACEMENTS, SIZE, mostly_opaque
from unlock.issuing import issue

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_upload_limits(settings):
    settings.UPLOADS_PER_MINUTE = 0
    settings.PAID_UPLOADS_PER_MINUTE = 0


def one_code() -> str:
    return issue(count=1, max_uses=1, expires_at=None, label="test").displayed[0]


def people_left_to_right(client, token: str) -> list[dict]:
    return sorted(client.get(f"/jobs/{token}/status").json()["people"], key=lambda person: person["box"][0])


def choose(client, token: str, keep: list[int]) -> dict:
    response = client.post(f"/jobs/{token}/people", {"keep": [str(i) for i in keep]})
    assert response.status_code == 303, response.content[:300]
    wait_until(token, lambda job: not job.choosing)
    status = client.get(f"/jobs/{token}/status").json()
    assert status["choice_error"] == ""
    return status


def downloaded(client, token: str) -> np.ndarray:
    response = client.get(f"/jobs/{token}/download")
    assert response.status_code == 200
    with Image.open(io.BytesIO(response.content)) as im:
        return np.asarray(im.convert("RGBA"))


def test_remove_bg_a_changed_choice_before_and_after_unlocking_costs_no_call(client, settings, removebg_fake):
    settings.BACKGROUND_ENGINE, settings.REMOVEBG_FULL_RESULT = "removebg", "on_unlock"
    removebg_fake.leave_out = [LEFT_OUT]
    pixels, truths = scene_with(PLACEMENTS, kind="sky", size=SIZE)
    token = token_of(upload(client, encode(pixels)))
    assert wait_ready(token).engine == "removebg"
    subject, companion, stranger = people_left_to_right(client, token)
    assert (subject["kept"], companion["kept"], stranger["kept"]) == (True, True, False)

    choose(client, token, [subject["id"]])
    assert client.post(f"/jobs/{token}/unlock", {"code": one_code()}).status_code == 303
    assert wait_unlocked(token).unlocked
    alpha = downloaded(client, token)[..., 3]
    assert alpha[truths[1]].max() == 0 and mostly_opaque(alpha[truths[0]])

    choose(client, token, [subject["id"], companion["id"]])  # after unlocking: no code, no call
    assert mostly_opaque(downloaded(client, token)[..., 3][truths[1]])
    assert [request.fields["size"] for request in removebg_fake.requests] == ["preview", "full"]

    # Someone remove.bg left out cannot be added: the visitor reads why, the download stays.
    response = client.post(f"/jobs/{token}/people", {"keep": [str(subject["id"]), str(stranger["id"])]})
    assert response.status_code == 303
    wait_until(token, lambda job: not job.choosing)
    assert "cannot add anyone it left out" in client.get(f"/jobs/{token}/status").json()["choice_error"]
    assert mostly_opaque(downloaded(client, token)[..., 3][truths[1]])
    assert len(removebg_fake.requests) == 2


def test_dashscope_a_changed_choice_before_and_after_unlocking_costs_no_call(client, settings, dashscope_fake):
    settings.CROWD_ENGINE = "dashscope"
    pixels, truths = scene_with(CROWD_PLACEMENTS, kind="sky", size=SIZE)
    dashscope_fake.erase = [box_of(truths[1]), box_of(truths[2])]
    token = token_of(upload(client, encode(pixels), mode="crowd"))
    assert wait_ready(token).engine == "dashscope"
    left, subject, right = people_left_to_right(client, token)
    assert (left["kept"], subject["kept"], right["kept"]) == (False, True, False)

    choose(client, token, [subject["id"], left["id"]])
    assert client.post(f"/jobs/{token}/unlock", {"code": one_code()}).status_code == 303
    assert wait_unlocked(token).unlocked
    original = pixels.astype(int)  # before two JPEG encodes: a few levels off where untouched
    where_left, where_right = inside(truths[1], SIZE, 24), inside(truths[2], SIZE, 4)

    def off(image: np.ndarray, where: np.ndarray) -> float:
        return float(np.abs(image[..., :3].astype(int)[where] - original[where]).mean())

    first = downloaded(client, token)
    assert off(first, where_left) < 8 and off(first, where_right) > 30

    choose(client, token, [subject["id"], right["id"]])  # after unlocking: no code, no call
    second = downloaded(client, token)
    assert off(second, where_left) > 30 and off(second, where_right) < 8
    assert len(dashscope_fake.generation_calls) == 1


def test_dashscope_someone_the_model_left_is_erased_after_unlocking_without_a_call(client, settings, dashscope_fake):
    settings.CROWD_ENGINE = "dashscope"
    pixels, truths = scene_with(CROWD_PLACEMENTS, kind="sky", size=SIZE)
    dashscope_fake.erase = [box_of(truths[2])]  # the model leaves the left passer-by
    token = token_of(upload(client, encode(pixels), mode="crowd"))
    assert wait_ready(token).engine == "dashscope"
    left, subject, right = people_left_to_right(client, token)
    assert (left["kept"], subject["kept"], right["kept"]) == (True, True, False)
    assert client.post(f"/jobs/{token}/unlock", {"code": one_code()}).status_code == 303
    assert wait_unlocked(token).unlocked
    original = pixels.astype(int)
    where_subject, where_left = inside(truths[0], SIZE, 24), inside(truths[1], SIZE, 4)

    def off(image: np.ndarray, where: np.ndarray) -> float:
        return float(np.abs(image[..., :3].astype(int)[where] - original[where]).mean())

    assert off(downloaded(client, token), where_left) < 8

    status = choose(client, token, [subject["id"]])  # after unlocking: no code, no call
    assert [person["kept"] for person in sorted(status["people"], key=lambda p: p["box"][0])] == [False, True, False]
    erased = downloaded(client, token)
    assert off(erased, where_left) > 30 and off(erased, where_subject) < 3
    assert len(dashscope_fake.generation_calls) == 1
