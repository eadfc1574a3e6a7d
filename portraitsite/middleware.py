"""Middleware that keeps the promises made to visitors: no cookies, no cross-site posts, strict headers.

Django's admin needs session, auth and message middleware. Each is installed here as a subclass
that acts only under ADMIN_URL, so nothing session-shaped ever runs for a visitor, and the admin's
system checks (which look for these classes or subclasses) stay satisfied.
"""

import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse

from portraitsite import ratelimit
from portraitsite.errors import error_response

logger = logging.getLogger(__name__)


def is_admin_path(path: str) -> bool:
    return path.startswith("/" + settings.ADMIN_URL)


class AdminSessionMiddleware(SessionMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        if is_admin_path(request.path):
            super().process_request(request)

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if hasattr(request, "session"):
            return super().process_response(request, response)
        return response


class AdminAuthenticationMiddleware(AuthenticationMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        if is_admin_path(request.path):
            super().process_request(request)


class AdminMessageMiddleware(MessageMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        if is_admin_path(request.path):
            super().process_request(request)

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if hasattr(request, "_messages"):
            return super().process_response(request, response)
        return response


class ForwardingWatchMiddleware:
    """Notices a reverse proxy that TRUSTED_PROXIES does not declare (portraitsite.ratelimit)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        ratelimit.watch_forwarding(request)
        return self.get_response(request)


class CookieLeak(ImproperlyConfigured):
    """A public response tried to set a cookie: a bug, loud in development and tests."""


class NoVisitorCookiesMiddleware:
    """Removes every cookie from responses outside the admin, and reports who tried to set one.

    Sits near the top of the stack so it sees the response after every other middleware.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.cookies and not is_admin_path(request.path):
            names = sorted(response.cookies.keys())
            response.cookies.clear()
            logger.error("Removed cookies %s from a public response (%s view).", names, _view_name(request))
            if settings.DEBUG or getattr(settings, "TESTING", False):
                raise CookieLeak(f"A public response tried to set cookies {names}.")
        return response


def _view_name(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match else "unresolved"


class RefuseCrossSitePostsMiddleware:
    """Public POSTs carry no CSRF token (there is no cookie to hold one and no ambient credential
    to abuse), so requests that the browser marks as coming from another site are refused outright.

    Both signals are checked and either one refuses: `Sec-Fetch-Site` other than same-origin (or
    none: the visitor's own action, e.g. a bookmark), and an `Origin` other than this site's.
    `same-site` is refused too: a sibling subdomain is another party. Clients that send neither
    header (curl, old browsers) are let through: they cannot be a victim's browser being steered
    by another site. The admin keeps Django's own CSRF protection and is not touched here.
    """

    SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")
    ALLOWED_FETCH_SITES = ("same-origin", "none")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in self.SAFE_METHODS and not is_admin_path(request.path) and self._cross_site(request):
            return error_response(request, 403, "cross_site")
        return self.get_response(request)

    @classmethod
    def _cross_site(cls, request: HttpRequest) -> bool:
        fetch_site = request.headers.get("Sec-Fetch-Site")
        if fetch_site is not None and fetch_site.strip().lower() not in cls.ALLOWED_FETCH_SITES:
            return True
        origin = request.headers.get("Origin")
        if origin is None:
            return False
        # "null" comes from sandboxed frames, data: URLs and some redirects: never this site.
        if origin.strip() == "null":
            return True
        try:
            return urlsplit(origin.strip()).netloc.lower() != request.get_host().lower()
        except ValueError:  # a malformed Origin (e.g. an unclosed IPv6 bracket) is not this site
            return True


class HeadersMiddleware:
    """Headers Django has no setting for: cross-origin resource policy and permissions policy."""

    # Nothing of this is used by the site; denying it means an injected script could not use it
    # either, and browsing-topics opts visitors out of the browser's interest-based advertising.
    PERMISSIONS_POLICY = ", ".join(
        f"{feature}=()"
        for feature in (
            "accelerometer",
            "autoplay",
            "browsing-topics",
            "camera",
            "display-capture",
            "encrypted-media",
            "geolocation",
            "gyroscope",
            "hid",
            "idle-detection",
            "magnetometer",
            "microphone",
            "midi",
            "payment",
            "publickey-credentials-get",
            "screen-wake-lock",
            "serial",
            "usb",
            "xr-spatial-tracking",
        )
    )

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        response.headers.setdefault("Permissions-Policy", self.PERMISSIONS_POLICY)
        return response
