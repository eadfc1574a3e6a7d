"""Per-client abuse limits kept only in the cache, for minutes.

A client is known by a keyed hash of its address, never the address itself, so the cache holds
nothing that identifies a person and the hash cannot be reversed by trying all IPv4 addresses
without the key.
"""

import hashlib
import hmac
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The visitor's address: REMOTE_ADDR, or the entry that the outermost of TRUSTED_PROXIES
    appended to X-Forwarded-For (entries further left are client-controlled and ignored)."""
    proxies = settings.TRUSTED_PROXIES
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR", "")


def client_key(request: HttpRequest) -> str:
    key = hashlib.sha256(b"portraitsite.ratelimit:" + settings.SECRET_KEY.encode()).digest()
    return hmac.new(key, client_address(request).encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # seconds until the window resets (0 when allowed)


def _bucket(scope: str, key: str, window: int) -> tuple[str, int]:
    now = int(time.time())
    start = now - now % window
    return f"rl:{scope}:{key}:{start}", start + window - now


def check(scope: str, key: str, limit: int, window: int = 60) -> Verdict:
    """Is `key` still under `limit` events in this fixed window? Does not count an event."""
    if limit <= 0:
        return Verdict(True, 0)
    bucket, remaining = _bucket(scope, key, window)
    if cache.get(bucket, 0) >= limit:
        return Verdict(False, max(1, remaining))
    return Verdict(True, 0)


def record(scope: str, key: str, window: int = 60) -> None:
    """Count one event. add() then incr() keeps concurrent counts exact on LocMem and Redis."""
    bucket, remaining = _bucket(scope, key, window)
    cache.add(bucket, 0, timeout=remaining + 1)
    try:
        cache.incr(bucket)
    except ValueError:  # expired between add and incr: start the window again
        cache.add(bucket, 1, timeout=remaining + 1)


def hit(scope: str, key: str, limit: int, window: int = 60) -> Verdict:
    """Check and count in one step: the usual case for uploads."""
    verdict = check(scope, key, limit, window)
    if verdict.allowed and limit > 0:
        record(scope, key, window)
    return verdict
