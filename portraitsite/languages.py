"""Which language a page speaks: the address decides, and an address without a language lets the
browser decide. Never a cookie, never a redirect.

* `/en/…` and `/zh-hans/…` always answer in their own language. The prefix is taken off the path
  and becomes part of the script prefix for the request, so every address the page makes with
  `reverse()` / `{% url %}` (its forms, the job page it redirects to, its links) keeps the prefix:
  a visitor who picked a language keeps it through upload, job page, unlock and errors.
* Any other path answers in the language `Accept-Language` prefers among ours (English when it
  prefers none), with `Vary: Accept-Language` so that caches keep one copy per language.

Prefixed requests resolve against `portraitsite.urls_visitor`, which holds the visitor's pages only:
`/zh-hans/admin/` or `/zh-hans/healthz` do not exist.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.urls import Resolver404, get_script_prefix, resolve, set_script_prefix
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.utils.translation import trans_real

VISITOR_URLCONF = "portraitsite.urls_visitor"


def codes() -> list[str]:
    return [code for code, _name in settings.LANGUAGES]


def _alternatives() -> str:
    return "|".join(re.escape(code) for code in codes())


def _prefix_pattern() -> re.Pattern:
    return re.compile(rf"^/({_alternatives()})(/|$)")


def preferred_language(accept_language: str) -> str | None:
    """The first of the site's languages in an Accept-Language header, in the visitor's order of
    preference; None when none of them is acceptable."""
    supported = set(codes())
    for accepted, _quality in trans_real.parse_accept_lang_header(accept_language):
        if accepted == "*":
            return None
        try:
            code = trans_real.get_supported_language_variant(accepted)
        except LookupError:
            continue
        if code in supported:
            return code
    return None


class LanguageMiddleware:
    """Activates the page's language: from the address's prefix, or else from Accept-Language."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        match = _prefix_pattern().match(request.path_info)
        if match and not match.group(2):
            # "/zh-hans" without its slash: the page is "/zh-hans/".
            return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
        script_prefix = get_script_prefix()
        if match:
            language, prefixed = match.group(1), True
            request.path_info = request.path_info[len(language) + 1 :]
            request.urlconf = VISITOR_URLCONF
            set_script_prefix(f"{script_prefix}{language}/")
        else:
            language = preferred_language(request.headers.get("Accept-Language", "")) or settings.LANGUAGE_CODE
            prefixed = False
        translation.activate(language)
        request.LANGUAGE_CODE = language
        request.language_prefixed = prefixed
        try:
            response = self.get_response(request)
        finally:
            # The script prefix is per thread: the next request, a job's worker, a test's reverse()
            # must not inherit this one's language.
            set_script_prefix(script_prefix)
        if not prefixed:
            patch_vary_headers(response, ("Accept-Language",))
        response.headers.setdefault("Content-Language", language)
        return response


def page_path(request: HttpRequest) -> str | None:
    """The page's address without language prefix or script prefix ("/privacy/"), when it is a
    page a GET reaches; None for an address that does not exist."""
    path = request.path_info
    try:
        resolve(path, urlconf=VISITOR_URLCONF)
    except Resolver404:
        return None
    return path


def unprefixed(address: str) -> str:
    """An address made by reverse() during this request, without the script and language prefixes."""
    prefix = get_script_prefix()
    return "/" + address.removeprefix(prefix) if address.startswith(prefix) else address


def address_in(path: str, code: str | None) -> str:
    """`path` (without prefixes) in language `code`, or unprefixed (the browser decides) for None."""
    base = _script_name()
    return f"{base}{code}{path}" if code else f"{base}{path.removeprefix('/')}"


def home_in(code: str | None) -> str:
    return address_in("/", code)


def _script_name() -> str:
    """The site's own script prefix (when mounted under a path), without the language's."""
    prefix = get_script_prefix()
    match = re.match(rf"^(.*/)({_alternatives()})/$", prefix)
    return match.group(1) if match else prefix
