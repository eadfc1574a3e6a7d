"""The paths where a paid-for code could be lost or spent twice, and where a job could get stuck."""

import time
from unittest import mock

import pytest

from segmentation import jobs, store
from segmentation.engines.local import LocalCutout
from tests.flow import token_of, upload, wait_ready
from tests.photos import encode, gradient, portrait_scene
from unlock.issuing import issue
from unlock.models import Redemption, UnlockCode
from unlock.redemption import redeem

pytestmark = pytest.mark.django_db(transaction=True)


def code(label: str = "race") -> str:
    return issue(count=1, max_uses=1, expires_at=None, label=label).displayed[0]


@pytest.fixture
def ready_job(client) -> store.Job:
    token = token_of(upload(client, encode(portrait_scene(400, 300))))
    return wait_ready(token)


def finishing(job: store.Job, redemption: int) -> store.Job:
    """The state the unlock view leaves a job in before the pool picks up its task."""
    job = store.get(job.token)
    job.delivery, job.redemption, job.delivery_started_at = store.FINISHING, redemption, time.time()
    store.save(job)
    return job


def uses(code_text: str) -> int:
    from unlock import codes

    return UnlockCode.objects.get(digest=codes.digest(codes.normalise(code_text))).used


def test_a_job_deleted_before_its_task_starts_gives_the_code_back(ready_job):
    paid = code()
    finishing(ready_job, redeem(paid, tool="cutout"))
    store.delete(ready_job.token)  # "Delete now" while the page says "Preparing…"
    jobs.finish(ready_job.token, Redemption.objects.get().pk)
    assert uses(paid) == 0 and not Redemption.objects.exists()


def test_a_stale_task_neither_delivers_nor_spends_a_newer_code(ready_job, monkeypatch):
    first, second = code("first"), code("second")
    stale = redeem(first, tool="cutout")
    finishing(ready_job, stale)
    # The deadline passes while the task waits in the queue: the use is given back.
    job = store.get(ready_job.token)
    job.delivery_started_at -= 10 * 60 * 60
    store.save(job)
    assert jobs.get(ready_job.token).delivery == store.LOCKED and uses(first) == 0
    # The visitor unlocks again, with another code.
    current = redeem(second, tool="cutout")
    finishing(ready_job, current)

    calls = []
    monkeypatch.setattr(LocalCutout, "finish", lambda self, photo, carry: calls.append(1))
    jobs.finish(ready_job.token, stale)  # the first task finally runs
    assert calls == [], "a stale task must not run the engine (or a billed provider call) again"
    job = jobs.get(ready_job.token)
    assert job.delivery == store.FINISHING and job.redemption == current
    assert uses(first) == 0 and uses(second) == 1


def test_a_store_that_refuses_the_unlock_write_gives_the_code_back(client, ready_job, monkeypatch):
    paid = code()
    real_save = store.save

    def refusing(job):
        if job.delivery == store.FINISHING:
            raise ConnectionError("OOM command not allowed when used memory > 'maxmemory'")
        return real_save(job)

    monkeypatch.setattr(store, "save", refusing)
    client.raise_request_exception = False
    response = client.post(f"/jobs/{ready_job.token}/unlock", {"code": paid})
    assert response.status_code == 500
    assert uses(paid) == 0


def test_a_job_whose_process_died_while_queued_turns_failed(settings):
    job = store.create("cutout", "local", {"media_type": "image/jpeg", "width": 10, "height": 10}, b"o")
    with mock.patch("time.time", return_value=time.time() + settings.JOB_DEADLINE_SECONDS + 5):
        stuck = jobs.get(job.token)
    assert stuck.state == store.FAILED and "too long" in stuck.error


def test_a_failed_job_lets_its_photo_go_at_once(client):
    token = token_of(upload(client, encode(gradient(640, 480))))  # nobody in it: fails
    job = wait_ready(token)
    assert job.state == store.FAILED
    assert all(store.get_image(job, name) is None for name in store.IMAGES)
    assert client.get(f"/jobs/{token}/").status_code == 200, "the reason stays readable"


def test_whole_photo_decodes_in_requests_are_bounded(client, settings, monkeypatch):
    """A flood of uploads (or coloured downloads) cannot decode more photos at once than there
    are job workers: the others wait, then hear 503 with Retry-After."""
    from segmentation import views

    monkeypatch.setattr(views, "DECODING_WAIT_SECONDS", 0.01)
    slots, _ = views._decoding_slots()
    taken = [slots.acquire(blocking=False) for _ in range(settings.JOB_WORKERS)]
    assert all(taken)
    try:
        response = upload(client, encode(portrait_scene(300, 200)))
        assert response.status_code == 503 and int(response["Retry-After"]) > 0
    finally:
        for _ in taken:
            slots.release()
    assert upload(client, encode(portrait_scene(300, 200))).status_code == 303


def test_a_use_reserved_by_a_process_that_died_goes_back_to_its_code(settings, monkeypatch):
    import datetime

    from django.utils import timezone

    paid, delivered = code("died"), code("delivered")
    orphan = redeem(paid, tool="cutout")  # its job was in the memory of a process that is gone
    done = redeem(delivered, tool="cutout")
    from unlock.redemption import confirm

    confirm(done)
    long_ago = timezone.now() - datetime.timedelta(seconds=3 * settings.JOB_DEADLINE_SECONDS)
    Redemption.objects.update(created_at=long_ago)
    from unlock import redemption as redemptions

    monkeypatch.setattr(redemptions, "_stale_checked_at", 0.0)
    redeem(code("next visitor"), tool="cutout")  # the next redemption in any process sweeps
    assert uses(paid) == 0 and not Redemption.objects.filter(pk=orphan).exists()
    assert uses(delivered) == 1 and Redemption.objects.get(pk=done).delivered


def test_a_delivered_use_is_confirmed_and_cannot_be_given_back(client, ready_job):
    from unlock.redemption import release

    paid = code()
    client.post(f"/jobs/{ready_job.token}/unlock", {"code": paid})
    from tests.flow import wait_unlocked

    assert wait_unlocked(ready_job.token).unlocked
    redemption = Redemption.objects.get()
    assert redemption.delivered
    release(redemption.pk)  # a late, stale release
    assert uses(paid) == 1


def _deadline_passes(token: str) -> None:
    """Another request finds the job past its deadline: jobs.get gives the code back there."""
    job = store.get(token)
    job.delivery_started_at -= 10 * 60 * 60
    store.save(job)
    jobs.get(token)


def test_a_deadline_that_gives_the_code_back_during_delivery_leaves_no_free_result(client, ready_job, monkeypatch):
    """The worker has made the result and is storing it when the deadline (in another request)
    gives the code back: the job stays locked, the code keeps its use, nothing downloads."""
    paid = code()
    redemption = redeem(paid, tool="cutout")
    finishing(ready_job, redemption)
    real_put_image = store.put_image

    def put_then_deadline(job, name, data):
        real_put_image(job, name, data)
        if name == "result":
            _deadline_passes(job.token)

    monkeypatch.setattr(store, "put_image", put_then_deadline)
    jobs.finish(ready_job.token, redemption)
    job = jobs.get(ready_job.token)
    assert job.delivery == store.LOCKED and not job.unlocked and "not used" in job.delivery_error
    assert uses(paid) == 0 and not Redemption.objects.exists()
    assert store.get_image(job, "result") is None
    assert client.get(f"/jobs/{ready_job.token}/download").status_code == 403


def test_a_deadline_just_after_the_use_was_confirmed_does_not_take_the_result_back(ready_job, monkeypatch):
    """The other order: the worker confirmed the use, then the deadline fires before the job is
    saved. The use is spent once and the visitor gets the result, not a 'code not used' notice."""
    paid = code()
    redemption = redeem(paid, tool="cutout")
    finishing(ready_job, redemption)
    real_confirm = jobs.confirm

    def confirm_then_deadline(redemption_id):
        confirmed = real_confirm(redemption_id)
        _deadline_passes(ready_job.token)
        return confirmed

    monkeypatch.setattr(jobs, "confirm", confirm_then_deadline)
    jobs.finish(ready_job.token, redemption)
    job = jobs.get(ready_job.token)
    assert job.unlocked and job.delivery_error == ""
    assert uses(paid) == 1 and Redemption.objects.get().delivered
    assert store.get_image(job, "result") is not None


def test_a_job_deleted_just_before_its_unlock_spends_nothing(ready_job):
    paid = code()
    stale = store.get(ready_job.token)  # what the view read before the visitor's other tab deleted it
    store.delete(ready_job.token)
    with pytest.raises(jobs.JobGone):
        jobs.begin_unlock(stale, paid)
    assert uses(paid) == 0 and not Redemption.objects.exists()
