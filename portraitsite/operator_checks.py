"""System checks for the operator's own settings: the logo and the /healthz token."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.checks import Error, Tags, Warning, register

# A token shorter than this could be guessed from outside; token_urlsafe(32) gives 43 characters.
MIN_HEALTHZ_TOKEN = 24


@register(Tags.security)
def check_site_logo(app_configs, **kwargs) -> list:
    """SITE_LOGO_URL names one of the site's own static files: a logo from another origin would
    tell that origin about every visitor (and the CSP would block it anyway)."""
    logo = settings.SITE_LOGO_URL
    if not logo:
        return []
    parts = urlsplit(logo)
    if parts.scheme or parts.netloc or logo.startswith(("/", "\\")) or ".." in logo.split("/"):
        return [
            Error(
                f"SITE_LOGO_URL must name a file among the site's static files (e.g. img/logo.svg); got {logo!r}.",
                hint="Put the logo in static/img/ and set SITE_LOGO_URL=img/<name>. No other origin, no absolute path.",
                id="portraitsite.E101",
            )
        ]
    if finders.find(parts.path) is None:
        return [
            Error(
                f"SITE_LOGO_URL names {logo!r}, which is not among the static files.",
                hint="Put the file in static/ (STATICFILES_DIRS) and run collectstatic.",
                id="portraitsite.E102",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_healthz_token(app_configs, **kwargs) -> list:
    token = settings.HEALTHZ_TOKEN
    if token and len(token) < MIN_HEALTHZ_TOKEN:
        return [
            Warning(
                f"HEALTHZ_TOKEN is {len(token)} characters long; use at least {MIN_HEALTHZ_TOKEN}.",
                hint="python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                id="portraitsite.W101",
            )
        ]
    return []
