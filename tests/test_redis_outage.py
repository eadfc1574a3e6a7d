"""Redis goes away and comes back (CACHE_URL=redis://…, two gunicorn workers, as deployed).

A redis-server of the test's own (no disk) is killed in the middle of each step of a visitor's flow
— upload, processing, unlock, finishing, download — and started again, empty, as after a crash.
While it is down every page answers within 3 s: 503 with Retry-After and a plain message, never a
500 or a hang, and /healthz names the store. Once it is back the same processes serve again; the
jobs it held end as "expired" pages, and a code whose use was reserved for a lost job gets it back.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.outages import RedisServer, code_uses
from tests.photos import encode, portrait_scene
from tests.test_scaleout import Gunicorn, Visitor, manage, site_environment

pytestmark = pytest.mark.redis

ANSWER_WITHIN = 3  # seconds, for every page while Redis is down


def token_of(response: requests.Response) -> str:
    assert response.status_code == 303, response.text[:500]
    return response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]


def assert_unavailable(visitor: Visitor, token: str, photo: bytes) -> None:
    """Every page of the flow: 503, Retry-After, the plain message, within 3 s; the home page and
    the legal pages, which need no store, still 200."""
    pages = [
        ("POST", "/jobs/", {"files": {"image": ("p.jpg", photo, "image/jpeg")}, "data": {"mode": "cutout"}}),
        ("GET", f"/jobs/{token}/", {}),
        ("GET", f"/jobs/{token}/status", {}),
        ("GET", f"/jobs/{token}/preview", {}),
        ("POST", f"/jobs/{token}/unlock", {"data": {"code": "ABCD-EFGH-JKMN-PQRS"}}),
        ("GET", f"/jobs/{token}/download", {}),
        ("POST", f"/jobs/{token}/delete", {}),
    ]
    for method, path, kwargs in pages:
        started = time.monotonic()
        response = visitor.request(method, path, "outage", token, **kwargs)
        elapsed = time.monotonic() - started
        assert elapsed < ANSWER_WITHIN, f"{method} {path} took {elapsed:.1f}s"
        assert response.status_code == 503, (method, path, response.status_code, response.text[:300])
        assert int(response.headers["Retry-After"]) > 0
        assert "Temporarily unavailable" in response.text and "Traceback" not in response.text
    for path in ("/", "/privacy/"):
        assert visitor.request("GET", path, "outage-home").status_code == 200
    health = visitor.request("GET", "/healthz", "outage-health")
    assert health.status_code == 503 and health.json()["ok"] is False and health.json()["unreachable"] == ["store"]


def assert_expired(visitor: Visitor, token: str) -> None:
    """A job lost with Redis: its pages say it has expired, as after 30 minutes (the page polling
    the status shows its message; the job page is the 404 page that says so, outside DEBUG)."""
    assert visitor.request("GET", f"/jobs/{token}/", "lost", token).status_code == 404
    status = visitor.request("GET", f"/jobs/{token}/status", "lost-status", token)
    assert status.status_code == 404
    assert status.json() == {"state": "gone", "error": "This photo has expired or was deleted."}


def wait_for(visitor: Visitor, token: str, done) -> dict:
    return visitor.status_until(token, done)


def ready_job(visitor: Visitor, photo: bytes) -> str:
    token = token_of(visitor.upload(photo))
    assert wait_for(visitor, token, lambda s: s["state"] in ("ready", "failed"))["state"] == "ready"
    return token


def test_redis_killed_in_each_step_and_restarted(tmp_path):
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    database = tmp_path / "codes.sqlite3"
    env = site_environment(f"sqlite:///{database}", redis_server.url)
    manage(env, "migrate", "--noinput")
    codes = manage(env, "issue_codes", "--count", "3", "--label", "redis outage").split()
    site = Gunicorn(env)
    small = encode(portrait_scene(800, 600), "JPEG", quality=90)
    large = encode(portrait_scene(3200, 2400), "JPEG", quality=90)  # its full result takes seconds
    try:
        site.wait_until_serving()
        visitor = Visitor(site)

        def outage(token: str) -> None:
            redis_server.stop()
            assert_unavailable(visitor, token, small)
            redis_server.start()
            assert visitor.request("GET", "/healthz", "back").status_code == 200

        # 1. Upload: refused while down, accepted again once Redis is back.
        outage("x" * 43)
        token = ready_job(visitor, small)

        # 2. Processing: the job goes with Redis.
        processing = token_of(visitor.upload(large))
        outage(processing)
        assert_expired(visitor, processing)

        # 3. Unlock: refused while down, and the code is untouched.
        token = ready_job(visitor, small)
        redis_server.stop()
        unlock = visitor.request("POST", f"/jobs/{token}/unlock", "unlock-down", token, data={"code": codes[0]})
        assert unlock.status_code == 503 and "Retry-After" in unlock.headers
        assert_unavailable(visitor, token, small)
        redis_server.start()
        assert_expired(visitor, token)
        assert code_uses(database)[0] == (0, 0)

        # 4. Finishing: the code's use was reserved for a job Redis lost; it comes back.
        token = ready_job(visitor, large)
        assert (
            visitor.request("POST", f"/jobs/{token}/unlock", "unlock", token, data={"code": codes[1]}).status_code
            == 303
        )
        assert visitor.request("GET", f"/jobs/{token}/status", "finishing", token).json()["delivery"] == "finishing"
        outage(token)
        assert_expired(visitor, token)
        deadline = time.monotonic() + 120
        while code_uses(database)[1] != (0, 0):
            assert time.monotonic() < deadline, code_uses(database)
            time.sleep(0.2)

        # 5. Download: the result goes with Redis; the use it was delivered for stays spent, once.
        token = ready_job(visitor, small)
        assert (
            visitor.request("POST", f"/jobs/{token}/unlock", "unlock", token, data={"code": codes[0]}).status_code
            == 303
        )
        assert wait_for(visitor, token, lambda s: s["delivery"] != "finishing")["unlocked"]
        outage(token)
        assert_expired(visitor, token)
        assert visitor.request("GET", f"/jobs/{token}/download", "lost-download", token).status_code == 404

        # Back to normal, without a restart of the site: the whole flow, on both processes.
        token = ready_job(visitor, small)
        assert (
            visitor.request("POST", f"/jobs/{token}/unlock", "unlock", token, data={"code": codes[1]}).status_code
            == 303
        )
        assert wait_for(visitor, token, lambda s: s["delivery"] != "finishing")["unlocked"]
        assert visitor.request("GET", f"/jobs/{token}/download", "download", token).status_code == 200
    finally:
        site.stop()
        redis_server.stop()

    assert code_uses(database) == [(1, 1), (1, 1), (0, 0)]
    statuses = [line for line in site.access if "status=500" in line]
    assert statuses == [], statuses
    assert len(site.worker_pids()) == 2, "no worker was restarted"
