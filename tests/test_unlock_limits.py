"""Limits on wrong codes: per client and per job, counted in the cache under hashed keys only."""

import pytest
from django.core.cache import cache
from django.test import RequestFactory

from portraitsite import ratelimit
from unlock import codes
from unlock.issuing import issue
from unlock.limits import record_failure, unlock_blocked
from unlock.redemption import CodeRejected, redeem

pytestmark = pytest.mark.django_db

JOB_A = "job-token-a-" + "x" * 30
JOB_B = "job-token-b-" + "y" * 30
JOB_C = "job-token-c-" + "z" * 30


class FrozenClock:
    """Stands in for the time module inside portraitsite.ratelimit: windows move only when told."""

    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch, settings):
    settings.UNLOCK_FAILURES_PER_MINUTE = 3
    settings.UNLOCK_FAILURES_PER_JOB = 5
    cache.clear()
    frozen = FrozenClock(1_800_000_000.0)  # start of a minute and of a ten-minute window
    monkeypatch.setattr(ratelimit, "time", frozen)
    yield frozen
    cache.clear()


def client(address: str):
    return RequestFactory().post("/jobs/x/unlock", REMOTE_ADDR=address)


def attempt(request, job_token: str, code: str) -> str:
    """What the unlock view does around redeem(): refuse when blocked, count only failures."""
    if unlock_blocked(request, job_token) is not None:
        return "blocked"
    try:
        redeem(code, "cutout")
    except CodeRejected as rejected:
        record_failure(request, job_token)
        return rejected.reason
    return "unlocked"


def wrong_code() -> str:
    return codes.display(codes.generate())


def test_a_client_is_blocked_after_its_failures_per_minute(clock):
    alice = client("203.0.113.7")
    # Spread over jobs, so only the per-client limit can be what blocks.
    for job in (JOB_A, JOB_B, JOB_C):
        assert attempt(alice, job, wrong_code()) == "unknown"
    wait = unlock_blocked(alice, JOB_A)
    assert wait is not None and 1 <= wait <= 60
    assert attempt(alice, JOB_A, wrong_code()) == "blocked"


def test_a_right_code_still_works_from_another_client_when_one_is_blocked(clock):
    right = codes.display(issue(1, max_uses=1, expires_at=None, label="").codes[0])
    alice, bob = client("203.0.113.7"), client("198.51.100.20")
    for job in (JOB_A, JOB_B, JOB_C):
        attempt(alice, job, wrong_code())
    assert attempt(alice, JOB_A, right) == "blocked"
    assert unlock_blocked(bob, JOB_A) is None
    assert attempt(bob, JOB_A, right) == "unlocked"


def test_a_blocked_client_may_try_again_in_the_next_minute(clock):
    alice = client("203.0.113.7")
    for job in (JOB_A, JOB_B, JOB_C):
        attempt(alice, job, wrong_code())
    assert unlock_blocked(alice, JOB_A) is not None
    clock.now += 60
    assert unlock_blocked(alice, JOB_A) is None


def test_a_job_is_blocked_after_its_failures_from_many_clients(clock):
    for n in range(5):
        assert attempt(client(f"192.0.2.{n + 1}"), JOB_A, wrong_code()) == "unknown"
    newcomer = client("192.0.2.99")
    wait = unlock_blocked(newcomer, JOB_A)
    assert wait is not None and 1 <= wait <= 600
    assert unlock_blocked(newcomer, JOB_B) is None  # other jobs are not affected
    clock.now += 9 * 60
    assert unlock_blocked(newcomer, JOB_A) is not None  # still within the ten minutes
    clock.now += 60
    assert unlock_blocked(newcomer, JOB_A) is None


def test_right_codes_are_not_counted(clock):
    batch = issue(10, max_uses=1, expires_at=None, label="")
    alice = client("203.0.113.7")
    for code in batch.displayed:
        assert attempt(alice, JOB_A, code) == "unlocked"
    assert unlock_blocked(alice, JOB_A) is None


def test_zero_turns_the_client_limit_off(clock, settings):
    settings.UNLOCK_FAILURES_PER_MINUTE = 0
    alice = client("203.0.113.7")
    for n in range(20):
        assert attempt(alice, f"{JOB_A}-{n}", wrong_code()) == "unknown"
    assert unlock_blocked(alice, JOB_B) is None


def test_the_cache_holds_neither_addresses_nor_job_tokens(clock):
    alice = client("203.0.113.7")
    for job in (JOB_A, JOB_B):
        record_failure(alice, job)
    if not hasattr(cache, "_cache"):
        pytest.skip("reads LocMem's own table; CACHE_URL points elsewhere")
    keys = list(cache._cache.keys())  # LocMem's own table: what is really stored
    assert len(keys) == 3  # one client counter, two job counters
    for key in keys:
        assert "203.0.113.7" not in key
        assert "job-token" not in key and "x" * 10 not in key and "y" * 10 not in key
