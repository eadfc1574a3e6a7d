"""Promise: a photo is gone when its job expires — gone from memory, not only unreachable.

LocMem forgets an expired entry only when somebody reads it; the store's sweeper must purge it
without any read. These tests inspect the store itself (LocMem's own dicts, the bytes Python
holds, Redis's keyspace), never what `get()` admits to.
"""

from __future__ import annotations

import gc
import os
import socket
import time
import tracemalloc
from unittest import mock

import pytest
from django.core.cache import caches

from segmentation import cache as sweeping_cache
from segmentation import store

pytestmark = pytest.mark.django_db

META = {"media_type": "image/jpeg", "width": 10, "height": 10}
TEN_MB = 10 * 1024 * 1024


def entries_of(token: str) -> dict[str, list[str]]:
    """Where anything of the job still sits in the LocMem store: values, expiry times, sizes."""
    backend = caches["jobs"]
    with backend._lock:
        return {
            name: [key for key in table if token in key]
            for name, table in (("values", backend._cache), ("expiry", backend._expire_info), ("sizes", backend._sizes))
            if any(token in key for key in table)
        }


def test_an_expired_10_mb_photo_leaves_memory_within_a_minute_without_any_read(settings):
    """The real sweeper (every SWEEP_SECONDS), a job that lives two seconds, and nobody asking."""
    assert sweeping_cache.SWEEP_SECONDS <= 30
    settings.JOB_TTL_SECONDS = 2
    tracemalloc.start()
    try:
        job = store.create("cutout", "local", META, os.urandom(TEN_MB))
        assert entries_of(job.token)["values"], "the photo is in the store"
        assert stored_photos_in_memory() == 1
        deadline = time.monotonic() + 60
        while entries_of(job.token) and time.monotonic() < deadline:
            time.sleep(0.25)  # looking at LocMem's dicts is not a read: nothing expires on it
        assert entries_of(job.token) == {}, "still in the store a minute after expiry"
        gc.collect()
        assert stored_photos_in_memory() == 0, "the bytes are still allocated somewhere"
    finally:
        tracemalloc.stop()


def stored_photos_in_memory() -> int:
    """Blocks of at least 10 MB that LocMem allocated (its pickled copy of the photo) and that are
    still alive. Other threads' allocations elsewhere do not count."""
    from django.core.cache.backends import locmem

    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, locmem.__file__)])
    return sum(1 for trace in snapshot.traces if trace.size >= TEN_MB)


def test_after_expiry_every_url_of_the_job_is_a_404_and_the_store_holds_nothing(client, settings):
    used_before = caches["jobs"].bytes_used()
    job = store.create("cutout", "local", META, b"\xff" * 300_000)
    for name in ("preview", "before", "carry", "result"):
        store.put_image(job, name, b"\x00" * 100_000)
    job.state, job.delivery, job.result = (
        store.READY,
        store.UNLOCKED,
        {"media_type": "image/png", "width": 1, "height": 1},
    )
    store.save(job)
    assert client.get(f"/jobs/{job.token}/download").status_code == 200
    with mock.patch("time.time", return_value=job.expires_at + 1):
        for path in ("/", "/status", "/preview", "/before", "/download"):
            assert client.get(f"/jobs/{job.token}{path}").status_code == 404, path
        assert client.post(f"/jobs/{job.token}/unlock", {"code": "ABCD-EFGH-JKMN-PQRS"}).status_code == 404
        caches["jobs"].sweep()
    assert entries_of(job.token) == {}
    assert caches["jobs"].bytes_used() <= used_before


def test_delete_now_leaves_nothing_of_the_photo_in_the_store(client):
    job = store.create("cutout", "local", META, b"\xff" * 200_000)
    for name in ("preview", "before", "result"):
        store.put_image(job, name, b"\x00" * 50_000)
    assert client.post(f"/jobs/{job.token}/delete").status_code == 303
    left = entries_of(job.token)
    # Only the tombstone that tells a late worker to purge again; no image.
    assert all(key.endswith(":deleted") for keys in left.values() for key in keys), left


def test_writes_sweep_too_when_the_sweeper_is_late(settings):
    settings.JOB_TTL_SECONDS = 60
    job = store.create("cutout", "local", META, b"\xff" * 1000)
    backend = caches["jobs"]
    with mock.patch("time.time", return_value=time.time() + 61):
        backend._last_sweep = 0.0
        store.create("cutout", "local", META, b"\xff" * 10)  # any write
        assert entries_of(job.token) == {}


# --- Redis -------------------------------------------------------------------------------------------


def redis_available() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.mark.redis
@pytest.mark.skipif(not redis_available(), reason="no Redis on 127.0.0.1:6379")
def test_on_redis_every_entry_of_a_job_expires_with_it_and_then_is_gone(settings):
    import redis

    prefix = f"expiry-test-{os.getpid()}"
    settings.CACHES = {
        **settings.CACHES,
        "jobs": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/11",
            "KEY_PREFIX": prefix,
            "TIMEOUT": 1800,
        },
    }
    settings.JOB_TTL_SECONDS = 2
    job = store.create("cutout", "local", META, b"\xff" * 100_000)
    store.put_image(job, "preview", b"\x00" * 10_000)
    server = redis.Redis.from_url("redis://127.0.0.1:6379/11")
    keys = list(server.scan_iter(match=f"{prefix}:*{job.token}*"))
    assert len(keys) == 3
    assert all(0 < server.pttl(key) <= 2000 for key in keys), "every entry expires no later than the job"
    time.sleep(2.5)
    assert list(server.scan_iter(match=f"{prefix}:*{job.token}*")) == []
    assert all(server.exists(key) == 0 for key in keys)
