"""The remove.bg account's credit balance, so the operator hears it is running low before visitors'
jobs start failing (contract: `GET {REMOVEBG_API_URL}/account`, docs/providers/removebg.md).

The balance is read at most every CACHE_SECONDS per process and, in between, kept current from
what each billed call reports (`X-Credits-Charged`): remove.bg's own figure lags a few seconds.
Below REMOVEBG_LOW_CREDITS a WARNING is logged, at most once an hour for the whole site (the gate is
in the shared cache), and the admin shows a banner.

Reading the balance never fails: when remove.bg cannot be asked it is None ("unknown"), and an
unknown balance never blocks a visitor (only a known shortfall does).
"""

from __future__ import annotations

import json
import logging
import threading
import time

import requests
from django.conf import settings
from django.core.cache import cache

from segmentation.providers.http import ResponseTooLarge, RetryPolicy, Timeouts, new_session, read_body, send

logger = logging.getLogger(__name__)

CACHE_SECONDS = 300  # a fresh balance every five minutes is enough to see it fall
RETRY_FAILED_READ_SECONDS = 60  # an account call that failed is not repeated for every page view
LOW_WARNING_EVERY_SECONDS = 3600
LOW_WARNING_GATE = "removebg-low-credits-warned"
# What a call costs (specs: size=preview 0.25, size=full 1).
PREVIEW_CREDITS = 0.25
FULL_CREDITS = 1.0

# The account call is free and harmless to repeat; it must never hold a page for long.
TIMEOUTS = Timeouts(connect=3.0, read=5.0)
POLICY = RetryPolicy(attempts=2, rate_limit_retries=0, retry_sent_requests=True)
MAX_ANSWER_BYTES = 64 * 1024  # the account answer is a few hundred bytes

_lock = threading.Lock()
_balance: float | None = None
_read_at = 0.0  # monotonic time of the last read (or failed read)
_read_ok = False


def balance() -> float | None:
    """The credits left, or None with no key or when remove.bg could not be asked."""
    global _balance, _read_at, _read_ok
    if not settings.REMOVEBG_API_KEY:
        return None
    now = time.monotonic()
    with _lock:
        age = now - _read_at
        if _read_at and age < (CACHE_SECONDS if _read_ok else RETRY_FAILED_READ_SECONDS):
            return _balance
    read = _read_account()
    with _lock:
        _read_at, _read_ok = time.monotonic(), read is not None
        if read is not None:
            _balance = read
        current = _balance if read is not None else None
    _warn_if_low(current)
    return current


def charged(credits: float) -> None:
    """A billed call cost `credits` (its X-Credits-Charged): the balance falls by as much now."""
    global _balance
    with _lock:
        if _balance is None:
            return
        _balance = max(0.0, _balance - credits)
        current = _balance
    _warn_if_low(current)


def can_afford(credits: float) -> bool:
    """False only when the balance is known and below `credits`."""
    current = balance()
    return current is None or current >= credits


def is_low(current: float | None) -> bool:
    return current is not None and current < settings.REMOVEBG_LOW_CREDITS


def forget() -> None:
    """Drop the cached balance (tests; a key that changed)."""
    global _balance, _read_at, _read_ok
    with _lock:
        _balance, _read_at, _read_ok = None, 0.0, False


def _warn_if_low(current: float | None) -> None:
    if is_low(current) and cache.add(LOW_WARNING_GATE, True, LOW_WARNING_EVERY_SECONDS):
        logger.warning(
            "remove.bg credits are low: %g left (REMOVEBG_LOW_CREDITS=%g). Top up at https://www.remove.bg/ "
            "(Dashboard › API) before background removal stops.",
            current,
            settings.REMOVEBG_LOW_CREDITS,
        )


_sessions = threading.local()


def _read_account() -> float | None:
    session = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = new_session("portraitsite (+remove.bg API v1.0 client)")
    try:
        response = send(
            session,
            "GET",
            f"{settings.REMOVEBG_API_URL}/account",
            timeouts=TIMEOUTS,
            policy=POLICY,
            headers={"X-API-Key": settings.REMOVEBG_API_KEY},
            stream=True,  # read by read_body, within a cap
        )
    except requests.RequestException as exc:
        # Only the type: the text could quote a header value, i.e. the key.
        logger.warning("remove.bg account could not be read: %s", type(exc).__name__)
        return None
    with response:
        if response.status_code != 200:
            logger.warning("remove.bg account answered %s; the balance is unknown.", response.status_code)
            return None
        try:
            total = json.loads(read_body(response, MAX_ANSWER_BYTES))["data"]["attributes"]["credits"]["total"]
            if isinstance(total, bool) or not isinstance(total, (int, float)):
                raise TypeError(type(total).__name__)
            return max(0.0, float(total))
        except (ValueError, KeyError, TypeError, ResponseTooLarge, requests.RequestException) as exc:
            logger.warning("remove.bg account answered without a readable credits.total (%s).", exc)
            return None
