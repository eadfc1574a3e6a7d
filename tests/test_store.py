"""The job store: unguessable tokens, expiry for real (not only unreachable), deadlines, purges."""

import time
from unittest import mock

import pytest
from django.core.cache import caches

from segmentation import jobs, store
from segmentation.cache import SweepingLocMemCache

pytestmark = pytest.mark.django_db

META = {"media_type": "image/jpeg", "width": 10, "height": 10}


def raw_entries() -> dict:
    """What LocMem really holds, expired or not: the store itself, not what get() admits to."""
    backend = caches["jobs"]
    assert isinstance(backend, SweepingLocMemCache)
    return dict(backend._cache)


def later(seconds: float):
    now = time.time()
    return mock.patch("time.time", return_value=now + seconds)


def test_tokens_are_long_and_unique():
    tokens = {store.new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(len(token) >= 43 for token in tokens)  # 256 bits in URL-safe base64


def test_an_expired_job_is_gone_from_memory_not_only_unreachable(client, settings):
    job = store.create("cutout", "local", META, b"\xff" * 100_000)
    store.put_image(job, "preview", b"p" * 1000)
    assert any(job.token in key for key in raw_entries())
    with later(settings.JOB_TTL_SECONDS + 1):
        assert client.get(f"/jobs/{job.token}/").status_code == 404
        caches["jobs"].sweep()
    assert not any(job.token in key for key in raw_entries())
    assert caches["jobs"].bytes_used() < 100_000


def test_the_background_sweeper_purges_without_any_request(settings, monkeypatch):
    import segmentation.cache as cache_module

    job = store.create("cutout", "local", META, b"\xff" * 50_000)
    backend = caches["jobs"]
    # Expire the entries in place, then let the sweeper's own loop body run once.
    with backend._lock:
        for key in list(backend._expire_info):
            if job.token in key:
                backend._expire_info[key] = time.time() - 1
    cache_module._purge_expired(backend._cache, backend._expire_info, backend._lock, backend._sizes)
    assert not any(job.token in key for key in raw_entries())
    thread = cache_module._sweepers["portraitsite-jobs"]
    assert thread.is_alive() and thread.daemon


def test_every_entry_expires_with_the_job():
    job = store.create("cutout", "local", META, b"o")
    store.put_image(job, "result", b"r")
    backend = caches["jobs"]
    expiries = {key: expiry for key, expiry in backend._expire_info.items() if job.token in key}
    assert len(expiries) == 4  # record, original, result, the admission's reservation
    assert all(abs(expiry - job.expires_at) < 2 for expiry in expiries.values())


def test_delete_purges_every_image_at_once(client):
    job = store.create("cutout", "local", META, b"o" * 1000)
    for name in ("preview", "before", "carry", "result"):
        store.put_image(job, name, b"x" * 1000)
    assert client.post(f"/jobs/{job.token}/delete").status_code == 303
    assert store.get(job.token) is None
    assert all(store.get_image(job, name) is None for name in store.IMAGES)


def test_a_worker_finishing_after_a_delete_leaves_nothing_behind():
    job = store.create("cutout", "local", META, b"o")
    store.delete(job.token)
    store.put_image(job, "preview", b"late")  # a worker that had not noticed
    assert store.save(job) is False
    assert store.get(job.token) is None and store.get_image(job, "preview") is None


def test_a_job_stuck_in_processing_turns_failed(settings):
    job = store.create("cutout", "local", META, b"o")
    job.state, job.started_at = store.PROCESSING, time.time()
    store.save(job)
    with later(settings.JOB_DEADLINE_SECONDS + 5):
        stuck = jobs.get(job.token)
    assert stuck.state == store.FAILED and "too long" in stuck.error


def test_byte_accounting_follows_sets_and_deletes():
    backend = caches["jobs"]
    before = backend.bytes_used()
    job = store.create("cutout", "local", META, b"z" * 200_000)
    assert backend.bytes_used() - before >= 200_000
    store.delete(job.token)
    assert backend.bytes_used() - before < 1000


def test_culling_can_never_drop_a_live_job(settings):
    assert settings.CACHES["jobs"]["OPTIONS"]["MAX_ENTRIES"] >= 1_000_000
