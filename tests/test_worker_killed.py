"""A gunicorn worker killed with SIGKILL while it makes a full-resolution result (CACHE_URL=redis://…,
two workers, as deployed). The job lived on in Redis, its work died with the process: within
2 × JOB_DEADLINE_SECONDS the code's use is back, the job page says so, and the same code unlocks
the photo again on the surviving processes.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.outages import RedisServer, code_uses
from tests.photos import encode, portrait_scene
from tests.test_redis_outage import ready_job
from tests.test_scaleout import Gunicorn, Visitor, manage, site_environment

pytestmark = pytest.mark.redis

DEADLINE = 10  # JOB_DEADLINE_SECONDS for this run (the smallest the settings accept is 5)


def test_a_worker_killed_while_finishing_gives_the_use_back(tmp_path):
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    database = tmp_path / "codes.sqlite3"
    env = site_environment(f"sqlite:///{database}", redis_server.url, JOB_DEADLINE_SECONDS=str(DEADLINE))
    manage(env, "migrate", "--noinput")
    [code] = manage(env, "issue_codes", "--count", "1", "--label", "killed worker").split()
    site = Gunicorn(env)
    try:
        site.wait_until_serving()
        visitor = Visitor(site)
        token = ready_job(visitor, encode(portrait_scene(3200, 2400), "JPEG", quality=90))
        unlock = visitor.request("POST", f"/jobs/{token}/unlock", "unlock", token, data={"code": code})
        assert unlock.status_code == 303
        finishing_in = site.pid_of(visitor.steps[-1][0])  # the pool of this process makes the result
        assert visitor.request("GET", f"/jobs/{token}/status", "finishing", token).json()["delivery"] == "finishing"
        os.kill(finishing_in, signal.SIGKILL)
        killed_at = time.monotonic()
        assert code_uses(database) == [(1, 0)], "the use is reserved while the result is made"

        # Any process that serves the job after the deadline gives the use back.
        status = visitor.status_until(token, lambda s: s["delivery"] != "finishing")
        back_after = time.monotonic() - killed_at
        assert status["delivery"] == "locked" and not status["unlocked"]
        assert "Your code was not used" in status["delivery_error"]
        assert code_uses(database) == [(0, 0)]
        page = visitor.request("GET", f"/jobs/{token}/", "page", token)
        assert "Your code was not used" in page.text

        # The same code, again, on the processes that are left: delivered and spent once.
        assert visitor.request("POST", f"/jobs/{token}/unlock", "again", token, data={"code": code}).status_code == 303
        assert visitor.status_until(token, lambda s: s["delivery"] != "finishing")["unlocked"]
        assert visitor.request("GET", f"/jobs/{token}/download", "download", token).status_code == 200
    finally:
        site.stop()
        redis_server.stop()

    assert back_after < 2 * DEADLINE + 5, f"the use came back {back_after:.0f}s after the kill"
    assert code_uses(database) == [(1, 1)]
    assert finishing_in in site.worker_pids() and len(site.worker_pids()) == 3, "gunicorn replaced the worker"
