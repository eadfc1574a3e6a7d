"""Template tags for the site's languages: links between them, and the offer of a better one.

The language lives in the URL prefix and nowhere else (no cookie, no session), so switching is a
link to the same page under another prefix, and a browser that prefers another language is only
*offered* it: the visitor who follows an English link stays in English.
"""

from __future__ import annotations

from django import template
from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse, translate_url
from django.utils import translation
from django.utils.translation import trans_real

register = template.Library()


def _home_in(code: str) -> str:
    with translation.override(code):
        return reverse("home")


def _page_path(context: template.Context) -> str | None:
    """The address of the page being shown, as a GET would reach it.

    A page rendered in answer to a POST (a refused upload, a wrong code) lives at an address that
    only takes POSTs; views say which page it really is with `canonical_path`.
    """
    if context.get("canonical_path"):
        return context["canonical_path"]
    request: HttpRequest | None = context.get("request")
    if request is None or request.method not in ("GET", "HEAD"):
        return None
    return request.path


@register.simple_tag(takes_context=True)
def language_url(context: template.Context, code: str) -> str:
    """This page's address in another language, or that language's home page when the page has
    no address of its own in it (an error page for an unknown path, a POST answer)."""
    path = _page_path(context)
    if path is None:
        return _home_in(code)
    translated = translate_url(path, code)
    if translated == path and code != translation.get_language():
        return _home_in(code)  # translate_url gives the path back unchanged when it cannot resolve it
    return translated


@register.simple_tag(takes_context=True)
def offered_language(context: template.Context) -> dict | None:
    """The language this visitor's browser prefers, when it is not the one shown and the page is in
    the default (unprefixed) language: {"code", "url"}; else None.

    Only the unprefixed pages make the offer. A prefixed address is an explicit choice, and the
    English pages only show a link, so nobody who picked English is ever sent elsewhere.
    """
    request: HttpRequest | None = context.get("request")
    current = translation.get_language()
    if request is None or current != settings.LANGUAGE_CODE:
        return None
    preferred = preferred_language(request.headers.get("Accept-Language", ""))
    if preferred is None or preferred == current:
        return None
    return {"code": preferred, "url": language_url(context, preferred)}


def preferred_language(accept_language: str) -> str | None:
    """The first of the site's languages in an Accept-Language header, in the visitor's order of
    preference; None when none of them is acceptable."""
    supported = {code for code, _name in settings.LANGUAGES}
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
