"""The visitor chooses who stays ([T2.2]), in the job's own terms: a choice is admitted only when
the job can take it, is drawn in the pool, is bounded per job, and after unlocking makes the full
result again without a code, never losing what the visitor paid for."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.cache import caches
from PIL import Image

from segmentation import jobs, store
from segmentation.engines.base import EngineError
from segmentation.engines.local import LocalCutout
from tests.flow import token_of, upload, wait_for_pool_idle, wait_ready, wait_until
from tests.test_local_cutout import encode
from tests.test_local_cutout_choice import PLACEMENTS
from tests.test_people import scene_with
from unlock.issuing import issue
from unlock.models import UnlockCode

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def group_photo() -> bytes:
    """Two companions and a passer-by (the cutout keeps the two)."""
    pixels, _truths = scene_with(PLACEMENTS, kind="sky")
    return encode(pixels)


@pytest.fixture
def ready_job(client, group_photo) -> store.Job:
    job = wait_ready(token_of(upload(client, group_photo)))
    assert job.state == store.READY, job.error
    return job


def downloaded(client, job: store.Job) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(client.get(f"/jobs/{job.token}/download").content)).convert("RGB"))


def kept_ids(job: store.Job) -> set[int]:
    return {person["id"] for person in job.people if person["kept"]}


def redrawn(token: str) -> store.Job:
    return wait_until(token, lambda job: not job.choosing)


def unlocked(client, job: store.Job) -> store.Job:
    code = issue(count=1, max_uses=1, expires_at=None, label="choice").displayed[0]
    assert client.post(f"/jobs/{job.token}/unlock", {"code": code}).status_code == 303
    job = wait_until(job.token, lambda job: job.delivery != store.FINISHING)
    assert job.unlocked, job.delivery_error
    return job


def reservations(job: store.Job) -> list[str]:
    """The job's reservations still counted in the store."""
    return [key for key in caches["jobs"]._cache if job.token in key and "reserved" in key]


def test_the_job_lists_the_people_with_the_automatic_choice(ready_job):
    assert [person["id"] for person in ready_job.people] == [0, 1, 2]
    assert len(kept_ids(ready_job)) == 2
    for person in ready_job.people:
        x, y, w, h = person["box"]
        assert 0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 and 0 < h <= 1


def test_a_choice_redraws_the_preview_and_is_counted(ready_job):
    keep = frozenset({min(kept_ids(ready_job))})
    preview = store.get_image(ready_job, "preview")

    jobs.choose(ready_job, keep)

    job = redrawn(ready_job.token)
    assert job.choice_error == "" and job.choices == 1 and kept_ids(job) == keep
    assert store.get_image(job, "preview") != preview
    # The same choice again is no work and costs nothing.
    jobs.choose(job, keep)
    assert not jobs.get(job.token).choosing and jobs.get(job.token).choices == 1


@pytest.mark.parametrize("keep", [frozenset(), frozenset({3}), frozenset({0, 99})])
def test_unknown_people_or_nobody_are_refused(ready_job, keep):
    with pytest.raises(jobs.BadChoice):
        jobs.choose(ready_job, keep)
    assert jobs.get(ready_job.token).choices == 0


def test_a_busy_job_takes_no_choice_and_no_code(client, ready_job):
    job = store.get(ready_job.token)
    job.choosing_since = 1.0e12  # a choice being drawn (far from its deadline)
    store.save(job)
    with pytest.raises(jobs.JobBusy):
        jobs.choose(jobs.get(job.token), frozenset({0}))
    code = issue(count=1, max_uses=1, expires_at=None, label="busy").displayed[0]
    response = client.post(f"/jobs/{job.token}/unlock", {"code": code})
    assert response.status_code == 409
    assert UnlockCode.objects.get().used == 0 and jobs.get(job.token).delivery == store.LOCKED


def test_a_stuck_choice_is_dropped_at_the_deadline(ready_job, settings):
    job = store.get(ready_job.token)
    job.choosing_since = 1.0  # long ago
    store.save(job)
    job = jobs.get(job.token)
    assert not job.choosing and job.choice_error and not job.busy


def test_choices_are_bounded_per_job(ready_job, settings):
    settings.CHOICES_PER_JOB = 1
    first = min(kept_ids(ready_job))
    jobs.choose(ready_job, frozenset({first}))
    job = redrawn(ready_job.token)
    with pytest.raises(jobs.TooManyChoices):
        jobs.choose(job, frozenset({0, 1, 2} - {first}))


def test_a_full_pool_refuses_the_choice_and_counts_nothing(ready_job, monkeypatch):
    monkeypatch.setattr(jobs.pool(), "submit", lambda task, *args: False)
    with pytest.raises(jobs.PoolFull):
        jobs.choose(ready_job, frozenset({0}))
    job = jobs.get(ready_job.token)
    assert not job.choosing and job.choices == 0 and reservations(job) == []


def test_after_unlocking_a_new_choice_makes_a_new_full_result_without_a_code(client, ready_job):
    job = unlocked(client, ready_job)
    assert store.has_image(job, "carry"), "the carry stays after unlocking, for later choices"
    first = store.get_image(job, "result")
    passer_by = ({0, 1, 2} - kept_ids(job)).pop()

    jobs.choose(job, frozenset({passer_by}))

    job = redrawn(job.token)
    assert job.unlocked and job.choice_error == "" and kept_ids(job) == {passer_by}
    second = store.get_image(job, "result")
    assert second != first
    # The passer-by alone is opaque now: far fewer opaque pixels than the two companions had.
    opaque = [
        np.count_nonzero(np.asarray(Image.open(io.BytesIO(data)).getchannel("A")) > 127) for data in (first, second)
    ]
    assert opaque[1] < 0.3 * opaque[0]
    assert UnlockCode.objects.get().used == 1
    wait_for_pool_idle()
    assert reservations(job) == [], "the room reserved for the second result is given back"


def test_a_failed_remake_after_unlocking_keeps_the_paid_result_and_says_so(client, ready_job, monkeypatch):
    job = unlocked(client, ready_job)
    paid, preview, people = store.get_image(job, "result"), store.get_image(job, "preview"), job.people

    def failing(self, photo, carry):
        raise EngineError("The engine failed.", "test")

    monkeypatch.setattr(LocalCutout, "finish", failing)
    jobs.choose(job, frozenset({min(kept_ids(job))}))

    job = redrawn(job.token)
    assert job.unlocked and "still be downloaded" in job.choice_error
    assert store.get_image(job, "result") == paid
    assert store.get_image(job, "preview") == preview and job.people == people
    assert client.get(f"/jobs/{job.token}/download").content == paid
    wait_for_pool_idle()
    assert reservations(job) == []


def test_remove_bg_unlocks_only_with_room_for_its_full_cutout_kept_beside_the_result(
    client, settings, removebg_fake, group_photo
):
    """remove.bg hands back its raw full cutout (Result.carry) so that a later choice needs no call;
    room for it is reserved with the result's, or a store too full for both refuses the unlock
    before any call (and later choices could never need one)."""
    settings.BACKGROUND_ENGINE, settings.REMOVEBG_FULL_RESULT = "removebg", "on_unlock"
    settings.UPLOADS_PER_MINUTE = settings.PAID_UPLOADS_PER_MINUTE = 0
    job = wait_ready(token_of(upload(client, group_photo)))
    assert job.engine == "removebg", job.error
    calls = len(removebg_fake.requests)
    used = store.usage()[0]
    settings.IMAGE_STORE_MAX_BYTES = used + jobs.result_bytes(job.photo_meta) * 3 // 2

    code = issue(count=1, max_uses=1, expires_at=None, label="room").displayed[0]
    response = client.post(f"/jobs/{job.token}/unlock", {"code": code})

    assert response.status_code == 503 and int(response["Retry-After"]) > 0
    assert len(removebg_fake.requests) == calls and UnlockCode.objects.get().used == 0
    assert reservations(job) == [] and not jobs.get(job.token).unlocked


def test_the_crowd_after_unlocking_brings_a_passer_by_back_in_the_download_without_a_code(client):
    from tests.test_local_crowd import crowd_scene

    scene, _empty, subject, passer_by = crowd_scene("landscape", (300, 1250, 450))
    photo = encode(scene)
    job = wait_ready(token_of(upload(client, photo, mode="crowd")))
    assert job.state == store.READY, job.error
    assert len(job.people) == 2 and len(kept_ids(job)) == 1
    job = unlocked(client, job)
    erased = downloaded(client, job)

    jobs.choose(job, frozenset({0, 1}))

    job = redrawn(job.token)
    assert job.unlocked and job.choice_error == "" and kept_ids(job) == {0, 1}
    back = downloaded(client, job)
    uploaded = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))

    def off(pixels, where):
        return float(np.abs(pixels.astype(np.int16) - uploaded)[where].mean())

    assert off(back, passer_by) < 0.2 * off(erased, passer_by), "the passer-by is back, as photographed"
    assert off(back, subject) < 1.5 and off(erased, subject) < 1.5, "the subject as photographed, both times"
    assert UnlockCode.objects.get().used == 1
