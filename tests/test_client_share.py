"""One client cannot close the store to everybody else (security review, finding 3).

The reviewer filled the 2 GiB budget from one address with ten 50 MP JPEGs of about 1 MB each:
every upload reserved room for a worst-case full-resolution result for its whole life, although
most jobs are never unlocked. Now an upload reserves only what phase one stores, the result's room
is reserved when a code is spent, and each client may hold CLIENT_LIVE_JOBS jobs and
CLIENT_STORE_PERCENT of the budget at a time.
"""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.test import Client

from segmentation import jobs, quota, store
from tests.flow import token_of, upload, wait_ready, wait_unlocked
from tests.photos import encode, gradient, portrait_scene
from unlock.issuing import issue
from unlock.models import UnlockCode

pytestmark = pytest.mark.django_db(transaction=True)

ATTACKER, VISITOR = "203.0.113.7", "198.51.100.9"


@pytest.fixture(scope="module")
def large_pixels_small_file() -> bytes:
    """12 MP in a file of a few hundred kB: cheap to send, costly to reserve a result for."""
    return encode(portrait_scene(4000, 3000), "JPEG", quality=25)


@pytest.fixture(autouse=True)
def fresh_ledgers():
    """Each test starts with both clients holding nothing (jobs of earlier tests live on)."""
    from django.test import RequestFactory

    from portraitsite.ratelimit import client_key

    for address in (ATTACKER, VISITOR):
        caches["jobs"].delete(f"client:{client_key(RequestFactory().get('/', REMOTE_ADDR=address))}")


def client_at(address: str) -> Client:
    return Client(REMOTE_ADDR=address)


def code() -> str:
    return issue(count=1, max_uses=1, expires_at=None, label="share").displayed[0]


def test_large_pixel_uploads_from_one_client_do_not_close_the_store_to_another(settings, large_pixels_small_file):
    """The reviewer's attack, with the per-client caps off: reservation alone must hold."""
    settings.CLIENT_LIVE_JOBS = settings.CLIENT_STORE_PERCENT = 0
    used, _ = store.usage()
    # Room for two worst-case 12 MP results (48 MB each) and a little more.
    settings.IMAGE_STORE_MAX_BYTES = used + 120 * 1024**2
    attacker = client_at(ATTACKER)
    for _ in range(6):
        response = upload(attacker, large_pixels_small_file)
        assert response.status_code == 303, "each upload reserves what phase one stores, a few MB"
        assert wait_ready(token_of(response)).state == store.READY

    visitor = client_at(VISITOR)
    response = upload(visitor, large_pixels_small_file)
    assert response.status_code == 303, "another visitor's photo still fits"
    token = token_of(response)
    assert wait_ready(token).state == store.READY
    visitor.post(f"/jobs/{token}/unlock", {"code": code()})
    assert wait_unlocked(token).unlocked
    used_now, budget = store.usage()
    assert used_now <= budget


def test_a_client_holding_its_jobs_is_told_to_wait_or_delete_one(settings):
    settings.CLIENT_LIVE_JOBS, settings.CLIENT_STORE_PERCENT = 3, 0
    photo = encode(portrait_scene(400, 300))
    attacker = client_at(ATTACKER)
    tokens = [token_of(upload(attacker, photo)) for _ in range(3)]
    refused = upload(attacker, photo)
    assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= settings.JOB_TTL_SECONDS + 60
    assert "Delete one you no longer need" in refused.content.decode()
    assert upload(client_at(VISITOR), photo).status_code == 303, "other clients are not affected"

    wait_ready(tokens[0])
    attacker.post(f"/jobs/{tokens[0]}/delete")  # "Delete now" frees the slot at once
    assert upload(attacker, photo).status_code == 303
    assert upload(attacker, photo).status_code == 429


def test_a_failed_job_gives_its_client_slot_back_once(settings):
    settings.CLIENT_LIVE_JOBS, settings.CLIENT_STORE_PERCENT = 2, 0
    attacker = client_at(ATTACKER)
    failed = token_of(upload(attacker, encode(gradient(640, 480))))  # nobody in it
    assert wait_ready(failed).state == store.FAILED
    photo = encode(portrait_scene(400, 300))
    admitted = [upload(attacker, photo).status_code for _ in range(3)]
    assert admitted == [303, 303, 429], "the failed job holds no slot"
    attacker.post(f"/jobs/{failed}/delete")  # its slot went back already: no second one goes
    assert upload(attacker, photo).status_code == 429


def test_a_client_may_hold_only_its_share_of_the_budget(settings, large_pixels_small_file):
    used, _ = store.usage()
    settings.IMAGE_STORE_MAX_BYTES = used + 200 * 1024**2
    settings.CLIENT_LIVE_JOBS, settings.CLIENT_STORE_PERCENT = 0, 10  # 20 MB each
    each = len(large_pixels_small_file) + jobs.phase_one_bytes("local", {})
    attacker = client_at(ATTACKER)
    admitted = 0
    while upload(attacker, large_pixels_small_file).status_code == 303:
        admitted += 1
        assert admitted <= quota.byte_share() // each, "more than its share was admitted"
    assert admitted == quota.byte_share() // each
    assert upload(client_at(VISITOR), large_pixels_small_file).status_code == 303


def test_the_ledger_holds_no_address_and_expires_with_the_jobs(settings):
    settings.CLIENT_LIVE_JOBS = 3
    token = token_of(upload(client_at(ATTACKER), encode(portrait_scene(400, 300))))
    backend = caches[settings.JOB_CACHE_ALIAS]
    ledgers = [key for key in backend._cache if ":client:" in key]
    assert len(ledgers) == 1 and ATTACKER not in ledgers[0]
    ledger = backend.get(ledgers[0].split(":", 2)[2])
    assert all(isinstance(value, float | int) for entry in ledger for value in entry), "times and sizes only"
    assert str(ledger).find(token) == -1
    job = store.get(token)
    assert backend._expire_info[ledgers[0]] <= job.expires_at, "the ledger never outlives the job"


def test_a_code_is_not_spent_when_there_is_no_room_for_its_result(client, settings):
    photo = encode(portrait_scene(1200, 900))
    token = token_of(upload(client, photo))
    job = wait_ready(token)
    used, _ = store.usage()
    settings.IMAGE_STORE_MAX_BYTES = used + jobs.result_bytes(job.photo_meta) // 2
    paid = code()
    response = client.post(f"/jobs/{token}/unlock", {"code": paid})
    assert response.status_code == 503 and int(response["Retry-After"]) > 0
    assert UnlockCode.objects.get().used == 0
    assert jobs.get(token).delivery == store.LOCKED
    assert store.usage()[0] == used, "the refused reservation holds nothing"

    settings.IMAGE_STORE_MAX_BYTES = used + 2 * jobs.result_bytes(job.photo_meta)
    client.post(f"/jobs/{token}/unlock", {"code": paid})
    assert wait_unlocked(token).unlocked
    assert store.usage()[0] < used + jobs.result_bytes(job.photo_meta), "the rest of the reservation is free"
