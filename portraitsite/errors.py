"""Friendly error pages: one template, a status code, and a message a visitor understands.

Views and middleware call `error_response`; Django's own handlers (400/403/404/500) are routed here
from portraitsite.urls, so an unexpected error looks like every other page of the site.

A 503 is the site protecting itself (busy decoders, a full pool or store), not a fault: Django
would log each one at ERROR, and an error email per refusal during a flood is mail work inside
every refused request. It is logged here instead, as one WARNING a minute at most per process.
"""

import logging
import threading
import time

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger(__name__)

# reason → (title, message). Messages say what happened and what to do next.
MESSAGES = {
    "bad_request": (_("Something was wrong with that request"), _("Please go back and try again.")),
    "cross_site": (
        _("Request refused"),
        _("This form can only be sent from this website itself. Please open the site and try again."),
    ),
    "not_found": (
        _("Nothing here"),
        _(
            "This page does not exist. If it was a photo, it has expired or was deleted: photos are kept "
            "for a short time only. You can upload it again."
        ),
    ),
    "forbidden": (_("Not allowed"), _("You are not allowed to do that.")),
    "too_large": (
        _("That file is too large"),
        _("Please choose a photo of at most %(limit)s."),
    ),
    "rate_limited": (
        _("Slow down a little"),
        _("Too many requests from your connection. Please wait %(seconds)s seconds and try again."),
    ),
    "too_slow": (
        _("Your upload took too long"),
        _("The photo did not arrive in time; the connection may be slow. Please try again."),
    ),
    "unavailable": (
        _("Temporarily unavailable"),
        _("We cannot reach our storage at the moment. Please try again in %(seconds)s seconds."),
    ),
    "too_many_jobs": (
        _("You have several photos here already"),
        _(
            "Each connection can keep only a few photos at a time. Delete one you no longer need, or "
            "try again in %(minutes)s minutes, when the oldest is deleted."
        ),
    ),
    "too_many_downloads": (
        _("Please wait a moment"),
        _(
            "This image was just downloaded on a coloured background several times. Please wait %(seconds)s "
            "seconds and try again."
        ),
    ),
    "busy": (
        _("We are busy right now"),
        _("Too many photos are being processed at the moment. Please try again in %(seconds)s seconds."),
    ),
    "server_error": (
        _("Something went wrong on our side"),
        _("Sorry — the error has been noted. Please try again in a moment."),
    ),
    "locked": (
        _("Unlock first"),
        _("The full-resolution image downloads after you enter an unlock code on the photo's page."),
    ),
    "bad_background": (
        _("Unknown background colour"),
        _("Choose transparent, white, blue, red, or a colour written as six hex digits like 438EDB."),
    ),
    "invalid_image": (_("We could not use that file"), "%(detail)s"),
    "bad_id_background": (
        _("Unknown background colour"),
        _("Choose white, blue, red, the size's own colour, or a colour written as six hex digits like 438EDB."),
    ),
    "bad_layout": (_("Unknown layout"), _("Choose a single photo or a print sheet.")),
    "bad_file_size": (
        _("This file size cannot be made"),
        _("Choose a limit between 20 KB and 5 MB, or a larger one: the photo keeps its size in pixels."),
    ),
}


def error_response(
    request: HttpRequest,
    status: int,
    reason: str,
    *,
    retry_after: int | None = None,
    detail: str = "",
    limit: str = "",
) -> HttpResponse:
    title, message = MESSAGES[reason]
    seconds = retry_after or 0
    message = str(message) % {"seconds": seconds, "minutes": (seconds + 59) // 60, "detail": detail, "limit": limit}
    html = render_to_string(
        "errors/error.html",
        {"status": status, "title": title, "message": message, "reason": reason},
        request=request,
    )
    response = HttpResponse(html, status=status)
    response["Cache-Control"] = "no-store"
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return refusal(response, reason) if status == 503 else response


def refusal(response: HttpResponse, reason: str) -> HttpResponse:
    """A 503 the site answers to protect itself, logged as a refusal (below) instead of by Django,
    whose log_response would log it at ERROR and email the operator. For 503 pages not made by
    error_response (a job page that explains why it cannot take a code)."""
    _note_refusal(reason)
    response._has_been_logged = True
    return response


REFUSAL_NOTE_SECONDS = 60
_refusals = {"count": 0, "noted_at": 0.0}
_refusals_lock = threading.Lock()


def _note_refusal(reason: str) -> None:
    """One WARNING per REFUSAL_NOTE_SECONDS per process, counting the 503s it stands for."""
    with _refusals_lock:
        _refusals["count"] += 1
        now = time.monotonic()
        if _refusals["noted_at"] and now - _refusals["noted_at"] < REFUSAL_NOTE_SECONDS:
            return
        count, _refusals["count"], _refusals["noted_at"] = _refusals["count"], 0, now
    logger.warning("Answered 503 (%s); %s refusals since the last note.", reason, count)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response(request, 400, "bad_request")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response(request, 403, "forbidden")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response(request, 404, "not_found")


# When even the error page cannot be drawn (a broken template, a missing static file), this is
# answered instead of letting the exception reach the WSGI server.
PLAIN_SERVER_ERROR = (
    '<!doctype html><html lang="en"><meta charset="utf-8"><title>Server error</title>'
    "<h1>Something went wrong on our side</h1><p>Sorry — please try again in a moment.</p></html>"
)


def server_error(request: HttpRequest) -> HttpResponse:
    try:
        return error_response(request, 500, "server_error")
    except Exception:
        logger.exception("The error page itself failed; answered the plain one.")
        response = HttpResponse(PLAIN_SERVER_ERROR, status=500)
        response["Cache-Control"] = "no-store"
        return response
