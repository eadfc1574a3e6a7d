"""What one client may hold in the job store at a time: CLIENT_LIVE_JOBS jobs and CLIENT_STORE_PERCENT
of IMAGE_STORE_MAX_BYTES (0 turns either off).

Without it one address could fill the whole budget with uploads that stay within the per-minute
limit, and keep the site closed by repeating that every JOB_TTL_SECONDS.

A client's ledger is one cache entry under its keyed hash (portraitsite.ratelimit.client_key),
never its address, holding only (expiry minute, bytes) per live job: no token, nothing that says
which jobs are whose. Entries drop out when their job expires, and the ledger expires with its last
job. "Delete now" frees a slot when the same client asks (one entry of that expiry minute goes),
and so does a job that fails in its first phase (the worker holds the client's key for as long as
the phase runs; the job never does). A job failed by JOB_DEADLINE_SECONDS, its worker gone, keeps
its slot until it expires.
"""

from __future__ import annotations

import math
import threading
import time

from django.conf import settings
from django.core.cache import caches


class ClientFull(Exception):
    """This client holds as many jobs (or bytes) as it may; `retry_after` is when one expires."""

    def __init__(self, retry_after: int):
        super().__init__(f"client holds its share of the store, retry after {retry_after}s")
        self.retry_after = retry_after


# Check and record in one step per process. On Redis two processes may both admit one more job
# of the same client in the same instant: one job over, never more per process.
_lock = threading.Lock()


def _cache():
    return caches[settings.JOB_CACHE_ALIAS]


def _key(client: str) -> str:
    return f"client:{client}"


def _live(client: str, now: float) -> list[list[float]]:
    return [entry for entry in _cache().get(_key(client)) or [] if entry[0] > now]


def _expiry_minute(expires_at: float) -> float:
    # Rounded down: the ledger never outlives the job (the privacy page says so), and the minute
    # tells nobody which job it was.
    return math.floor(expires_at / 60) * 60


def byte_share() -> int:
    """Bytes one client may hold: CLIENT_STORE_PERCENT of the budget (0: no limit)."""
    return settings.IMAGE_STORE_MAX_BYTES * settings.CLIENT_STORE_PERCENT // 100


def admit(client: str, nbytes: int, expires_at: float) -> None:
    """Count a new job of `nbytes` for `client`, or raise ClientFull and count nothing."""
    if not settings.CLIENT_LIVE_JOBS and not settings.CLIENT_STORE_PERCENT:
        return
    now = time.time()
    with _lock:
        live = _live(client, now)
        over_count = settings.CLIENT_LIVE_JOBS and len(live) >= settings.CLIENT_LIVE_JOBS
        over_bytes = settings.CLIENT_STORE_PERCENT and sum(size for _, size in live) + nbytes > byte_share()
        if over_count or over_bytes:
            raise ClientFull(retry_after=max(1, int(min((e for e, _ in live), default=now + 60) - now)))
        live.append([_expiry_minute(expires_at), nbytes])
        _save(client, live, now)


def forget(client: str, expires_at: float) -> None:
    """A job of this client's was deleted before it expired: its slot and bytes are free again."""
    minute = _expiry_minute(expires_at)
    with _lock:
        now = time.time()
        live = _live(client, now)
        for index, (expiry, _size) in enumerate(live):
            if expiry == minute:
                del live[index]
                _save(client, live, now)
                return


def _save(client: str, live: list[list[float]], now: float) -> None:
    if live:
        _cache().set(_key(client), live, timeout=max(1, int(max(e for e, _ in live) - now)))
    else:
        _cache().delete(_key(client))
