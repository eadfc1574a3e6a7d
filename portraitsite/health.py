"""/healthz: a bare `{"ok": true}` for everyone, and the site's state for whoever holds HEALTHZ_TOKEN.

Load balancers only need to know that the site answers; the store's fill, the jobs in flight and
the provider credits tell an outsider when the site is easiest to knock over, so they are details
behind `Authorization: Bearer <HEALTHZ_TOKEN>` (or, with no token set, shown only under DEBUG).

The details are a list of facts, each a name and a function that reads it. Another part of the
site adds its own with `@health.fact("name")` in a module that is imported at start-up (an app's
`ready()`); nothing here needs to know about it. A fact that reads None is left out (a provider
that is not in use). A fact that fails to read is reported as failed,
without its message (it might quote a URL or a key), and the other facts still show.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest

logger = logging.getLogger(__name__)

_facts: dict[str, Callable[[], Any]] = {}


def fact(name: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Register `read` as the detail `name` of /healthz; it returns something JSON can encode."""

    def register(read: Callable[[], Any]) -> Callable[[], Any]:
        if name in _facts and _facts[name] is not read:
            raise ValueError(f"/healthz already has a fact named {name!r}")
        _facts[name] = read
        return read

    return register


def details() -> dict[str, Any]:
    """Every registered fact, read now, in the order they were registered."""
    found: dict[str, Any] = {}
    for name, read in _facts.items():
        try:
            value = read()
        except Exception as exc:  # one broken fact must not hide the others, nor the site being up
            logger.warning("/healthz could not read %s: %s", name, type(exc).__name__)
            found[name] = {"error": type(exc).__name__}
            continue
        if value is not None:
            found[name] = value
    return found


class Access:
    PUBLIC, DETAILS, REFUSED = "public", "details", "refused"


def access(request: HttpRequest) -> str:
    """Whether this request may see the details.

    A request without an Authorization header gets the public answer. One with a header gets the
    details when it carries the token, compared in constant time, and is refused otherwise (so a
    mistyped token in a monitor shows up as an error, not as a silently short answer).
    """
    token = settings.HEALTHZ_TOKEN
    header = request.headers.get("Authorization")
    if header is None:
        return Access.DETAILS if settings.DEBUG and not token else Access.PUBLIC
    scheme, _space, given = header.strip().partition(" ")
    if not token or scheme.lower() != "bearer":
        return Access.REFUSED
    if secrets.compare_digest(given.strip().encode(), token.encode()):
        return Access.DETAILS
    return Access.REFUSED


# --- The site's own facts ---------------------------------------------------------------------------


@fact("store")
def _store() -> dict:
    from segmentation import store

    used, budget = store.usage()
    return {"bytes_used": used, "bytes_budget": budget, "ratio": round(used / budget, 4)}


@fact("jobs_in_flight")
def _jobs_in_flight() -> int:
    from segmentation import jobs

    return jobs.pool().in_flight


@fact("job_capacity")
def _job_capacity() -> int:
    from segmentation import jobs

    return jobs.pool().capacity


@fact("engines")
def _engines() -> dict:
    from segmentation.engines import engines_in_use

    return engines_in_use()


@fact("removebg")
def _removebg() -> dict | None:
    """The account's balance (None: could not be read) and what this process was charged. Only the
    numbers: the key never appears here."""
    from django.conf import settings

    from segmentation.engines import engines_in_use

    if engines_in_use()["cutout"] != "removebg":
        return None
    from segmentation.providers import removebg_account
    from segmentation.providers.removebg import credits_charged

    balance = removebg_account.balance()
    return {
        "credits": balance,
        "low": removebg_account.is_low(balance),
        "low_threshold": settings.REMOVEBG_LOW_CREDITS,
        "charged_since_start": credits_charged(),
    }
