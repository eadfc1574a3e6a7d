"""Limits on wrong unlock codes, so codes cannot be guessed by trying many.

Two counters, both in the cache for minutes only: per client (a keyed hash of the address,
UNLOCK_FAILURES_PER_MINUTE a minute, 0 turns it off) and per job (UNLOCK_FAILURES_PER_JOB per ten
minutes, so a job token shared by many clients cannot be used to guess either). Only failures
count: a visitor with a right code is never slowed down by someone else's mistakes, unless they
share the blocked job.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from portraitsite import ratelimit

CLIENT_SCOPE, CLIENT_WINDOW = "unlock-client", 60
JOB_SCOPE, JOB_WINDOW = "unlock-job", 600


def unlock_blocked(request: HttpRequest, job_token: str) -> int | None:
    """Seconds to wait before this client may try a code on this job again, or None if it may."""
    verdicts = (
        ratelimit.check(
            CLIENT_SCOPE, ratelimit.client_key(request), settings.UNLOCK_FAILURES_PER_MINUTE, CLIENT_WINDOW
        ),
        ratelimit.check(JOB_SCOPE, ratelimit.token_key(job_token), settings.UNLOCK_FAILURES_PER_JOB, JOB_WINDOW),
    )
    waits = [verdict.retry_after for verdict in verdicts if not verdict.allowed]
    return max(waits) if waits else None


def record_failure(request: HttpRequest, job_token: str) -> None:
    """Count one wrong code against the client and the job."""
    if settings.UNLOCK_FAILURES_PER_MINUTE > 0:
        ratelimit.record(CLIENT_SCOPE, ratelimit.client_key(request), CLIENT_WINDOW)
    if settings.UNLOCK_FAILURES_PER_JOB > 0:
        ratelimit.record(JOB_SCOPE, ratelimit.token_key(job_token), JOB_WINDOW)
