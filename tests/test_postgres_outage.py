"""PostgreSQL goes away (DATABASE_URL=postgres://…, gunicorn as deployed): a cluster of the test's
own is stopped as in a crash around each of redeem, confirm and release, and started again.

Unlocking while it is down answers 503 and leaves the code as it was. A confirm or a release that
meets the outage is retried until the database is back, and every code ends with its uses counted
exactly: spent once when its result was delivered, given back when it was not.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.outages import PostgresCluster
from tests.photos import encode, portrait_scene
from tests.test_redis_outage import ready_job
from tests.test_scaleout import Gunicorn, Visitor, manage, site_environment

pytestmark = pytest.mark.postgres


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


def wait_for_log(site: Gunicorn, text: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not any(text in line for line in list(site.errors)):
        assert time.monotonic() < deadline, f"never logged {text!r}:\n" + "\n".join(site.errors[-30:])
        time.sleep(0.1)


def wait_for_uses(cluster: PostgresCluster, index: int, expected: tuple[int, int], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while cluster.code_uses()[index] != expected:
        assert time.monotonic() < deadline, cluster.code_uses()
        time.sleep(0.2)


def test_postgres_stopped_around_redeem_confirm_and_release(cluster):
    env = site_environment(cluster.url, "locmemcache://postgres-outage")
    manage(env, "migrate", "--noinput")
    codes = manage(env, "issue_codes", "--count", "3", "--label", "postgres outage").split()
    small = encode(portrait_scene(800, 600), "JPEG", quality=90)
    large = encode(portrait_scene(3200, 2400), "JPEG", quality=90)  # its full result takes seconds
    site = Gunicorn(env, workers=1)
    try:
        site.wait_until_serving()
        visitor = Visitor(site)

        # Redeem: the database is down when the code is entered.
        token = ready_job(visitor, small)
        cluster.stop()
        started = time.monotonic()
        refused = visitor.request("POST", f"/jobs/{token}/unlock", "unlock-down", token, data={"code": codes[0]})
        assert time.monotonic() - started < 3
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) > 0
        assert "Temporarily unavailable" in refused.text
        health = visitor.request("GET", "/healthz", "health-down")
        assert (
            health.status_code == 503 and health.json()["ok"] is False and health.json()["unreachable"] == ["database"]
        )
        assert visitor.request("GET", f"/jobs/{token}/", "page-down", token).status_code == 200
        cluster.start()
        assert cluster.code_uses()[0] == (0, 0), "the code is intact"
        assert (
            visitor.request("POST", f"/jobs/{token}/unlock", "unlock", token, data={"code": codes[0]}).status_code
            == 303
        )
        assert visitor.status_until(token, lambda s: s["delivery"] != "finishing")["unlocked"]
        assert visitor.request("GET", f"/jobs/{token}/download", "download", token).status_code == 200

        # Confirm: the database goes down while the full result is being made.
        token = ready_job(visitor, large)
        assert (
            visitor.request("POST", f"/jobs/{token}/unlock", "unlock", token, data={"code": codes[1]}).status_code
            == 303
        )
        cluster.stop()
        wait_for_log(site, "confirm of a code use failed")
        cluster.start()
        wait_for_uses(cluster, 1, (1, 1))
        assert visitor.status_until(token, lambda s: s["delivery"] != "finishing")["unlocked"]
        assert visitor.request("GET", f"/jobs/{token}/download", "download", token).status_code == 200

        # Release: the visitor deletes the photo while its result is made and the database is down.
        token = ready_job(visitor, large)
        assert (
            visitor.request("POST", f"/jobs/{token}/unlock", "unlock", token, data={"code": codes[2]}).status_code
            == 303
        )
        cluster.stop()
        assert visitor.request("POST", f"/jobs/{token}/delete", "delete", token).status_code == 303
        wait_for_log(site, "release of a code use failed")
        cluster.start()
        wait_for_uses(cluster, 2, (0, 0))
    finally:
        site.stop()

    assert cluster.code_uses() == [(1, 1), (1, 1), (0, 0)], "each code's uses counted exactly once"
    assert [line for line in site.access if "status=500" in line] == []
