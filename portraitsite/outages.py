"""A backing service that is unreachable — the job store on Redis, the unlock-code database — makes
a page answer 503 with Retry-After and a plain message, at once: never a 500, never a hang.

The Redis client has socket timeouts and one immediate retry (settings._redis_outage_options), so
the first call that meets an outage fails within about 2 s, and the view stops there. Nothing has to
be restarted afterwards: redis-py and Django open new connections on the next request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.cache import caches
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 30


def _store_errors() -> tuple[type[BaseException], ...]:
    try:
        from redis.exceptions import ConnectionError, TimeoutError
    except ImportError:
        return ()
    return (ConnectionError, TimeoutError)  # BusyLoadingError (a restart's warm-up) is a ConnectionError


def unreachable_service(exc: BaseException) -> str | None:
    """ "store" or "database" when `exc` says that service cannot be reached, else None."""
    if isinstance(exc, _store_errors()):
        return "store"
    if isinstance(exc, (OperationalError, InterfaceError)):
        return "database"
    return None


def unreachable() -> list[str]:
    """The backing services that do not answer now ("store", "database"), for /healthz."""
    down = []
    store = caches[settings.JOB_CACHE_ALIAS]
    try:
        store.get("healthz-probe")
    except _store_errors():
        down.append("store")
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        down.append("database")
    return down


class OutageMiddleware:
    """Turns an unreachable store or database met by a view into 503 with Retry-After."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        service = unreachable_service(exception)
        if service is None:
            return None
        from portraitsite.errors import error_response

        # A warning, not an error: an outage would otherwise send one error email per request.
        logger.warning("The %s is unreachable (%s); answered 503.", service, type(exception).__name__)
        return error_response(request, 503, "unavailable", retry_after=RETRY_AFTER_SECONDS)
