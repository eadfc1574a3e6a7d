"""The job store on Redis (CACHE_URL=redis://…): every key expires with its job, the byte budget
counts what Redis really holds, a full Redis refuses uploads instead of evicting live jobs, and the
Redis the tests run against keeps nothing on disk.

Two kinds of server: the machine's Redis on 127.0.0.1:6379 (a database number claimed for this
run, flushed before and after, nothing else touched), and for byte counts and maxmemory a private
redis-server on a free port, whose memory no other test can move.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from portraitsite import checks
from segmentation import cache, jobs, store
from tests.flow import token_of, upload
from tests.photos import encode, portrait_scene

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

LOCAL_REDIS = ("127.0.0.1", 6379)
# Databases of the machine's Redis these tests may use, one per run; a claim key marks the one
# taken, so two test runs on the same machine never flush each other's jobs. (Database 11 belongs
# to tests/test_privacy_expiry.py, 0 to tests/test_checks.py.)
TEST_DATABASES = (15, 14, 13, 12)
CLAIM_KEY = "portraitsite-test-claim"
CLAIM_SECONDS = 900
META = {"media_type": "image/jpeg", "width": 10, "height": 10}
ROOT = Path(__file__).resolve().parent.parent


def local_redis_or_skip():
    redis = pytest.importorskip("redis")
    client = redis.Redis(*LOCAL_REDIS, socket_connect_timeout=0.5, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {LOCAL_REDIS[0]}:{LOCAL_REDIS[1]} is unreachable ({type(exc).__name__})")
    finally:
        client.close()


@contextlib.contextmanager
def claimed_redis_db() -> Iterator[str]:
    """A database of the local Redis of our own: claimed, flushed, yielded as a redis:// URL,
    flushed again afterwards. Skips when Redis is absent or every candidate is taken."""
    import redis

    local_redis_or_skip()
    claim = uuid.uuid4().hex
    for number in TEST_DATABASES:
        client = redis.Redis(*LOCAL_REDIS, db=number, socket_connect_timeout=0.5, socket_timeout=5)
        if not client.set(CLAIM_KEY, claim, nx=True, ex=CLAIM_SECONDS):
            client.close()
            continue
        try:
            with client.pipeline(transaction=True) as flush:  # FLUSHDB and the claim again, atomically
                flush.flushdb().set(CLAIM_KEY, claim, ex=CLAIM_SECONDS).execute()
            yield f"redis://{LOCAL_REDIS[0]}:{LOCAL_REDIS[1]}/{number}"
        finally:
            if client.get(CLAIM_KEY) == claim.encode():
                client.flushdb()
            client.close()
        return
    pytest.skip(f"every test database of the local Redis ({TEST_DATABASES}) is in use by another run")


def redis_keys(url: str) -> dict[str, int]:
    """Every key in the database and its TTL in seconds (-1: no expiry), the claim left out."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return {key.decode(): client.ttl(key) for key in client.scan_iter(count=500) if key != CLAIM_KEY.encode()}
    finally:
        client.close()


def use_redis(settings, url: str) -> None:
    """The site's two cache aliases on Redis, configured as settings.py configures CACHE_URL."""
    redis = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "TIMEOUT": settings.JOB_TTL_SECONDS,
    }
    settings.CACHES = {"default": dict(redis, KEY_PREFIX="site"), "jobs": dict(redis, KEY_PREFIX="job")}


@pytest.fixture
def local_redis(settings) -> Iterator[str]:
    with claimed_redis_db() as url:
        use_redis(settings, url)
        yield url


# --- a private redis-server ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def private_redis(directory: Path, *options: str) -> Iterator[str]:
    """A redis-server of our own, without persistence, stopped by its pid afterwards."""
    redis = pytest.importorskip("redis")
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            *options,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            try:
                redis.Redis.from_url(url, socket_connect_timeout=0.2).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            raise RuntimeError("redis-server did not start")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def small_redis(settings, tmp_path) -> Iterator[str]:
    """A private Redis with 24 MB of memory that refuses writes when full, as docs/scaling.md asks."""
    with private_redis(tmp_path, "--maxmemory", "24mb", "--maxmemory-policy", "noeviction") as url:
        use_redis(settings, url)
        yield url


# --- every key expires ------------------------------------------------------------------------


def test_every_key_the_site_writes_expires(local_redis, client, settings):
    job = store.create("cutout", "local", META, b"o" * 10_000)
    for name in ("before", "preview", "carry", "result"):
        store.put_image(job, name, name.encode() * 1000)
    job.state = store.READY
    store.save(job)
    deleted = store.create("cutout", "local", META, b"d" * 1000)
    store.delete(deleted.token)  # leaves a tombstone behind
    # A well-formed code nobody issued: counted by the rate limits, which live in the cache too.
    wrong = client.post(f"/jobs/{job.token}/unlock", {"code": "ABCD-EFGH-JKMN-PQRS"})
    assert wrong.status_code in (400, 403)
    keys = redis_keys(local_redis)
    assert any(job.token in key for key in keys) and any("rl:" in key for key in keys)
    assert any(key.endswith(f"{deleted.token}:deleted") for key in keys)
    no_expiry = {key: ttl for key, ttl in keys.items() if ttl <= 0}
    assert no_expiry == {}
    assert max(keys.values()) <= settings.JOB_TTL_SECONDS


def test_a_jobs_images_expire_with_its_record(local_redis):
    job = store.create("cutout", "local", META, b"o" * 1000)
    store.put_image(job, "preview", b"p" * 1000)
    ttls = {key: ttl for key, ttl in redis_keys(local_redis).items() if job.token in key}
    assert len(ttls) == 3  # record, original, preview
    assert all(abs(ttl - job.expires_in) <= 2 for ttl in ttls.values()), ttls


def test_an_expired_job_is_gone_from_redis_itself(local_redis):
    job = store.create("cutout", "local", META, b"o" * 1000)
    job.expires_at = time.time() + 1.5  # as if created 1798.5 s ago
    store.save(job)
    store.put_image(job, "original", b"o" * 1000)
    store.put_image(job, "preview", b"p" * 1000)
    assert store.get(job.token) is not None
    deadline = time.monotonic() + 10
    while any(job.token in key for key in redis_keys(local_redis)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(job.token in key for key in redis_keys(local_redis))
    assert store.get(job.token) is None


def test_delete_purges_every_key_of_the_job(local_redis, client):
    job = store.create("cutout", "local", META, b"o" * 1000)
    for name in ("preview", "before", "carry", "result"):
        store.put_image(job, name, b"x" * 1000)
    assert client.post(f"/jobs/{job.token}/delete").status_code == 303
    left = [key for key in redis_keys(local_redis) if job.token in key]
    assert [key.rsplit(":", 1)[-1] for key in left] == ["deleted"]  # only the tombstone, which expires


# --- bytes, budget and a full Redis ----------------------------------------------------------------


def test_usage_reports_the_bytes_redis_holds(small_redis, settings):
    empty, budget = store.usage()
    assert 0 < empty < 4 * 1024**2  # Redis's own overhead, about 1 MB
    job = store.create("cutout", "local", META, b"\x01" * 3_000_000)
    store.put_image(job, "result", b"\x02" * 2_000_000)
    held, _ = store.usage()
    # The values, rounded up to the allocator's size classes; for a second or so also Redis's
    # buffer for the command that carried them, which it frees on its own timer.
    assert 5_000_000 <= held - empty < 2 * 5_500_000
    store.delete(job.token)
    assert store.usage()[0] <= held - 5_000_000
    assert budget == settings.IMAGE_STORE_MAX_BYTES


def test_usage_is_the_same_figure_for_every_process(small_redis, settings):
    """What another process (or host) stores counts here: admission is decided on the shared figure."""
    import redis

    before, _ = store.usage()
    other_process = redis.Redis.from_url(small_redis)
    other_process.set("job:1:another-hosts-job:original", b"\x03" * 4_000_000, ex=60)
    assert store.usage()[0] - before >= 4_000_000
    other_process.close()


def test_uploads_are_refused_with_503_when_redis_holds_the_budget(small_redis, client, settings):
    import redis

    settings.UPLOADS_PER_MINUTE = 0
    settings.BACKGROUND_ENGINE = "local"
    photo = encode(portrait_scene(400, 300), "JPEG", quality=90)
    used, _ = store.usage()
    # Room for this upload and what admission reserves for its growth, plus a margin for Redis's
    # own bookkeeping.
    growth = jobs.PHASE_ONE_BYTES
    settings.IMAGE_STORE_MAX_BYTES = used + len(photo) + growth + 200_000
    token_of(upload(client, photo))
    # Another process's job fills the rest of the budget.
    redis.Redis.from_url(small_redis).set("job:1:elsewhere:original", b"\x04" * 1_000_000, ex=60)
    refused = upload(client, photo)
    assert refused.status_code == 503 and int(refused["Retry-After"]) > 0


def test_a_full_redis_refuses_new_jobs_and_keeps_every_live_one(small_redis, settings):
    """Budget set (wrongly) above maxmemory: Redis itself refuses the write (noeviction), the
    store turns that into StoreFull, and no job that was admitted earlier loses anything."""
    settings.IMAGE_STORE_MAX_BYTES = 10 * 1024**3
    live = []
    with pytest.raises(store.StoreFull):
        for _ in range(20):  # 24 MB of Redis: full after at most 12 jobs of 2 MB
            live.append(store.create("cutout", "local", META, b"\x05" * 2_000_000))
    assert 5 <= len(live) < 12
    for job in live:
        assert store.get(job.token) is not None
        assert store.get_image(job, "original") == b"\x05" * 2_000_000
    # The refused job left nothing half-written behind.
    assert len(redis_keys(small_redis)) == 2 * len(live)


def test_out_of_memory_is_recognised_and_nothing_else_is():
    from redis.exceptions import OutOfMemoryError, ResponseError

    assert cache.is_out_of_memory(OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'."))
    assert not cache.is_out_of_memory(ResponseError("WRONGTYPE"))
    assert not cache.is_out_of_memory(OSError("disk"))


# --- the privacy promise: nothing on disk -------------------------------------------------------


def test_the_local_redis_persists_nothing(local_redis, settings):
    assert checks.check_redis_keeps_nothing_on_disk(None) == []


def test_start_up_checks_pass_against_the_local_redis(local_redis):
    """`manage.py check`, as a deployment with CACHE_URL=redis://… runs it, finds nothing to say
    about persistence or eviction (portraitsite.E006, W002, W003)."""
    import os
    import sys

    env = {**os.environ, "DEBUG": "true", "CACHE_URL": local_redis, "DJANGO_SETTINGS_MODULE": "portraitsite.settings"}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "portraitsite.W00" not in done.stdout + done.stderr
    assert "no issues" in done.stdout
