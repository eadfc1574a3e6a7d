"""Template tags for the site's languages: links between them, and the hreflang alternates.

The language lives in the address (portraitsite.languages): a link to another language is the
same page under that language's prefix, and an unprefixed address is the one that lets the
browser choose (hreflang x-default).
"""

from __future__ import annotations

from django import template
from django.http import HttpRequest

from portraitsite import languages

register = template.Library()


def _page_path(context: template.Context) -> str | None:
    """The page being shown, without prefixes, as a GET would reach it.

    A page rendered in answer to a POST (a refused upload, a wrong code) lives at an address that
    only takes POSTs; views say which page it really is with `canonical_path` (made by reverse(),
    so with the prefixes, which are taken off here).
    """
    request: HttpRequest | None = context.get("request")
    if request is None:
        return None
    if context.get("canonical_path"):
        return languages.unprefixed(context["canonical_path"])
    if request.method not in ("GET", "HEAD"):
        return None
    return languages.page_path(request)


@register.simple_tag(takes_context=True)
def language_url(context: template.Context, code: str) -> str:
    """This page's address in language `code` (always prefixed, so the choice sticks), or that
    language's home page when the page has no address of its own (an error page for an unknown
    path, a POST answer)."""
    path = _page_path(context)
    return languages.address_in(path, code) if path else languages.home_in(code)


@register.inclusion_tag("includes/language_alternates.html", takes_context=True)
def language_alternates(context: template.Context) -> dict:
    """<link rel=alternate> for each language, and x-default (the unprefixed address) for browsers
    that prefer none of them; absolute, as search engines require. Only for pages with an address."""
    request: HttpRequest | None = context.get("request")
    path = _page_path(context)
    if request is None or path is None:
        return {"alternates": []}
    alternates = [(code, languages.address_in(path, code)) for code in languages.codes()]
    alternates.append(("x-default", languages.address_in(path, None)))
    return {"alternates": [(code, request.build_absolute_uri(url)) for code, url in alternates]}
