"""Per-client abuse limits kept only in the cache, for minutes.

A client is known by a keyed hash of its address, never the address itself, so the cache holds
nothing that identifies a person and the hash cannot be reversed by trying all IPv4 addresses
without the key. An IPv6 client is known by its /64: one subscriber or host usually holds a whole
/64 and can rotate through it at will (the security review limited one address after 10 uploads
and none of 38 addresses from one /64).
"""

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.utils.crypto import salted_hmac

from portraitsite import health

logger = logging.getLogger(__name__)


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


_forwarding_seen = threading.Event()
_forwarding_lock = threading.Lock()


def watch_forwarding(request: HttpRequest) -> None:
    """Warn once per process when requests carry X-Forwarded-For while TRUSTED_PROXIES=0: then
    every client has the proxy's address and every per-client limit is shared by all visitors. (A
    system check cannot see requests; the middleware calls this for each one.)"""
    if settings.TRUSTED_PROXIES or _forwarding_seen.is_set() or "HTTP_X_FORWARDED_FOR" not in request.META:
        return
    with _forwarding_lock:
        if _forwarding_seen.is_set():
            return
        _forwarding_seen.set()
    logger.warning(
        "Requests arrive with X-Forwarded-For but TRUSTED_PROXIES=0: every visitor has the proxy's "
        "address, so each per-client limit is shared by all of them. Set TRUSTED_PROXIES to the "
        "number of reverse proxies in front."
    )


def untrusted_forwarding_seen() -> bool:
    """Whether this process has seen X-Forwarded-For with TRUSTED_PROXIES=0 (for /healthz details)."""
    return _forwarding_seen.is_set()


@health.fact("forwarded_for_ignored")
def _forwarded_for_ignored() -> bool | None:
    """/healthz: True once this process saw X-Forwarded-For with TRUSTED_PROXIES=0 (absent with proxies)."""
    return None if settings.TRUSTED_PROXIES else untrusted_forwarding_seen()


def client_network(address: str) -> str:
    """What a limit counts as one client: an IPv4 address, or the /64 of an IPv6 address (an
    IPv4-mapped IPv6 address is its IPv4 address). Anything unparsable counts as itself."""
    try:
        parsed = ipaddress.ip_address(address.strip().strip("[]").split("%")[0])
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


def token_key(token: str) -> str:
    """A job token as a cache key: hashed, so the cache never holds the key to anyone's photo."""
    return salted_hmac("portraitsite.ratelimit.token:", token, algorithm="sha256").hexdigest()[:32]


def client_key(request: HttpRequest) -> str:
    return salted_hmac(
        "portraitsite.ratelimit:", client_network(client_address(request)), algorithm="sha256"
    ).hexdigest()[:32]


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
