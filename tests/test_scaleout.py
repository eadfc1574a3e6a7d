"""Scale-out: two gunicorn worker processes sharing the Redis job store (CACHE_URL=redis://…), the
unlock codes in one database (a SQLite file, or PostgreSQL when it answers), started as deployed:
`gunicorn -c gunicorn.conf.py portraitsite.wsgi` with WEB_CONCURRENCY=2.

Every request goes out on a new connection, so the kernel hands it to whichever worker accepts
first. Each carries an `X-Test-Step` header, and for this run only gunicorn's access log format
(GUNICORN_CMD_ARGS, which overrides gunicorn.conf.py) records that header next to the worker's
pid: afterwards the log says which process served which step, and the tests prove that steps
really landed on both, across processes, without anything added to the site's responses.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.photos import encode, portrait_scene
from tests.postgres import scratch_database
from tests.test_redis_store import claimed_redis_db, free_port, private_redis, redis_keys

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent
FLOWS = 20
STEP_HEADER = "X-Test-Step"
ACCESS_LOG_FORMAT = "step=%({x-test-step}i)s pid=%(p)s status=%(s)s"
BOOT_SECONDS = 60
WAIT_SECONDS = 90  # for a job in the pool, on a machine busy with other tests


def site_environment(database_url: str, cache_url: str, **extra: str) -> dict[str, str]:
    """The environment of a deployment: only variables, nothing of the test run's settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "GUNICORN_"))}
    env.update(
        DEBUG="true",  # development mode: static files without collectstatic, no TLS redirect
        DATABASE_URL=database_url,
        CACHE_URL=cache_url,
        BACKGROUND_ENGINE="local",
        CROWD_ENGINE="local",
        UPLOADS_PER_MINUTE="0",  # one test client uploads 20 photos a minute
        CLIENT_LIVE_JOBS="0",  # ... and holds them all at once
        CLIENT_STORE_PERCENT="0",
        JOB_WORKERS="2",
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def manage(env: dict[str, str], *arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *arguments], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@dataclass
class Gunicorn:
    """gunicorn started as deployed, its two log streams read as they come, stopped by its pid."""

    env: dict[str, str]
    workers: int = 2
    # None: the format of gunicorn.conf.py, as shipped.
    access_log_format: str | None = ACCESS_LOG_FORMAT
    config: str = "gunicorn.conf.py"  # a path from the repository's root
    port: int = field(default_factory=free_port)
    access: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        env = dict(self.env, BIND=f"127.0.0.1:{self.port}", WEB_CONCURRENCY=str(self.workers))
        if self.access_log_format is not None:
            env["GUNICORN_CMD_ARGS"] = f"--access-logformat '{self.access_log_format}'"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", self.config, "portraitsite.wsgi"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.access), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.errors), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> set[int]:
        return {
            int(m.group(1)) for line in list(self.errors) if (m := re.search(r"Booting worker with pid: (\d+)", line))
        }

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + BOOT_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "gunicorn exited:\n" + "\n".join(self.errors[-30:])
            if len(self.worker_pids()) >= self.workers:
                try:
                    if requests.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                        return
                except (requests.ConnectionError, requests.Timeout):
                    pass  # not serving yet: a worker still booting on a loaded machine
            time.sleep(0.1)
        raise AssertionError("gunicorn did not start:\n" + "\n".join(self.errors[-30:]))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # graceful: workers finish the request in hand, then log it
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for reader in self._readers:
            reader.join(timeout=5)

    def pid_of(self, step: str) -> int:
        """The worker that served `step`, once its access-log line is in (written after the answer)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if step in (served := self.pids_by_step()):
                return served[step]
            time.sleep(0.02)
        raise AssertionError(f"request {step} is not in the access log")

    def pids_by_step(self) -> dict[str, int]:
        """Which worker served each request, from the access log (read once gunicorn has stopped)."""
        served = {}
        for line in self.access:
            match = re.search(r"step=(\S+) pid=<(\d+)>", line)
            if match and match.group(1) != "-":
                served[match.group(1)] = int(match.group(2))
        return served


class Visitor:
    """A browser that opens a new connection for every request and numbers its requests."""

    def __init__(self, site: Gunicorn):
        self.site = site
        self.count = 0
        self.steps: list[tuple[str, str, str]] = []  # (step id, what, token)

    def request(self, method: str, path: str, what: str, token: str = "", **kwargs) -> requests.Response:
        self.count += 1
        step = str(self.count)
        self.steps.append((step, what, token))
        headers = {STEP_HEADER: step, "Connection": "close"}
        return requests.request(
            method, self.site.url + path, headers=headers, allow_redirects=False, timeout=30, **kwargs
        )

    def upload(self, photo: bytes) -> requests.Response:
        return self.request(
            "POST", "/jobs/", "upload", files={"image": ("photo.jpg", photo, "image/jpeg")}, data={"mode": "cutout"}
        )

    def status_until(self, token: str, done) -> dict:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            response = self.request("GET", f"/jobs/{token}/status", "status", token)
            assert response.status_code == 200, response.text
            status = response.json()
            self.steps[-1] = (*self.steps[-1][:2], f"{token}:{status['state']}:{status['delivery']}")
            if done(status):
                return status
            time.sleep(0.05)
        raise AssertionError(f"job still {status} after {WAIT_SECONDS}s")


def run_flow(visitor: Visitor, photo: bytes, size: tuple[int, int], code: str) -> None:
    """Upload → job page → status → preview → unlock → status → download → delete."""
    response = visitor.upload(photo)
    assert response.status_code == 303, response.text[:500]
    token = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    visitor.steps[-1] = (visitor.steps[-1][0], "upload", token)
    assert visitor.request("GET", f"/jobs/{token}/", "page", token).status_code == 200

    status = visitor.status_until(token, lambda s: s["state"] in ("ready", "failed"))
    assert status["state"] == "ready", status
    preview = visitor.request("GET", f"/jobs/{token}/preview", "preview", token)
    assert preview.status_code == 200 and preview.headers["Content-Type"] == "image/webp"
    assert visitor.request("GET", f"/jobs/{token}/download", "download-locked", token).status_code == 403

    unlocked = visitor.request("POST", f"/jobs/{token}/unlock", "unlock", token, data={"code": code})
    assert unlocked.status_code == 303, unlocked.text[:500]
    status = visitor.status_until(token, lambda s: s["delivery"] != "finishing")
    assert status["unlocked"], status

    download = visitor.request("GET", f"/jobs/{token}/download", "download", token)
    assert download.status_code == 200 and download.headers["Content-Type"] == "image/png"
    result = Image.open(io.BytesIO(download.content))
    assert result.size == size and result.mode == "RGBA"
    assert result.getchannel("A").getpixel((5, 5)) < 30, "the background corner should be transparent"

    assert visitor.request("POST", f"/jobs/{token}/delete", "delete", token).status_code == 303
    assert visitor.request("GET", f"/jobs/{token}/", "page-after-delete", token).status_code == 404


# --- databases for the unlock codes --------------------------------------------------------------


@pytest.fixture
def sqlite_file(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'codes.sqlite3'}"


@pytest.fixture
def postgresql() -> Iterator[str]:
    with scratch_database("scaleout") as database_url:
        yield database_url


# --- the tests ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "database",
    [
        pytest.param("sqlite_file", id="sqlite-file"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def test_twenty_visitors_are_served_by_whichever_process_answers(request, database):
    database_url = request.getfixturevalue(database)
    with claimed_redis_db() as redis_url:
        env = site_environment(database_url, redis_url)
        manage(env, "migrate", "--noinput")
        codes = manage(env, "issue_codes", "--count", str(FLOWS), "--label", "scale-out test").split()
        assert len(codes) == FLOWS
        site = Gunicorn(env)
        try:
            site.wait_until_serving()
            visitor = Visitor(site)
            for number, code in enumerate(codes):
                size = (640 + 16 * number, 480)
                run_flow(visitor, encode(portrait_scene(*size, seed=number), "JPEG", quality=90), size, code)
            # Every key left behind (tombstones of deleted jobs, rate-limit windows) expires.
            leftovers = redis_keys(redis_url)
            assert all(ttl > 0 for ttl in leftovers.values()), leftovers
        finally:
            site.stop()
        workers = site.worker_pids()
        served = site.pids_by_step()

    assert len(workers) == 2
    assert {step for step, _, _ in visitor.steps} <= set(served), "a request is missing from the access log"
    assert set(served.values()) == workers, "both worker processes served requests"

    upload_pid = {token: served[step] for step, what, token in visitor.steps if what == "upload"}
    unlock_pid = {token: served[step] for step, what, token in visitor.steps if what == "unlock"}
    elsewhere = dict.fromkeys(("page", "preview", "download", "delete", "progress", "finished"), 0)
    for step, what, detail in visitor.steps:
        token = detail.split(":")[0]
        if what == "status":
            _, state, unlock = detail.split(":")
            # Each phase runs in the pool of the process that took its request (the upload, the
            # unlock); a poll answered by the other process saw that work all the same.
            elsewhere["progress"] += served[step] != upload_pid[token] and state in ("processing", "ready")
            elsewhere["finished"] += served[step] != unlock_pid[token] and unlock == "unlocked"
        elif what in elsewhere:
            elsewhere[what] += served[step] != upload_pid[token]
    # Twenty flows of a dozen requests each on two processes: each kind of step lands on the
    # process that did not do the work many times; zero would mean nothing was shared.
    assert all(count > 0 for count in elsewhere.values()), elsewhere
    assert not any("Traceback" in line for line in site.errors), "\n".join(site.errors[-40:])


def test_a_full_store_refuses_uploads_on_every_process(tmp_path):
    """The budget is one figure for all processes: jobs held for another host fill it, and both
    workers answer 503; once they are gone, both admit uploads again."""
    import redis

    photo = encode(portrait_scene(640, 480), "JPEG", quality=90)
    with private_redis(tmp_path, "--maxmemory", "256mb", "--maxmemory-policy", "noeviction") as redis_url:
        client = redis.Redis.from_url(redis_url)
        budget = 32 * 1024**2
        env = site_environment(
            f"sqlite:///{tmp_path / 'codes.sqlite3'}", redis_url, IMAGE_STORE_MAX_BYTES=str(budget), JOB_QUEUE="64"
        )
        site = Gunicorn(env)
        try:
            site.wait_until_serving()
            workers = site.worker_pids()
            visitor = Visitor(site)

            def uploads_until_both_workers_answered() -> dict[int, list[int]]:
                """Upload until each worker has answered at least twice (the kernel may hand a
                short run of connections to one of them)."""
                answers: dict[int, list[int]] = {pid: [] for pid in workers}
                for _ in range(60):
                    response = visitor.upload(photo)
                    answers[site.pid_of(visitor.steps[-1][0])].append(response.status_code)
                    if all(len(codes) >= 2 for codes in answers.values()):
                        break
                return answers

            client.set("job:1:another-hosts-job:original", b"\x07" * budget, ex=300)
            refused = uploads_until_both_workers_answered()
            client.delete("job:1:another-hosts-job:original")
            # Redis frees the buffer that carried the ballast on its own timer (clientsCron).
            deadline = time.monotonic() + 30
            while int(client.info("memory")["used_memory"]) + 3 * len(photo) > budget // 2:
                assert time.monotonic() < deadline, client.info("memory")["used_memory"]
                time.sleep(0.1)
            admitted = uploads_until_both_workers_answered()
        finally:
            site.stop()
            client.close()

    assert all(len(codes) >= 2 and set(codes) == {503} for codes in refused.values()), refused
    assert all(len(codes) >= 2 and set(codes) == {303} for codes in admitted.values()), admitted
