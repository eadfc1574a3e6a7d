import math

from django.conf import settings
from django.http import HttpRequest


def minutes_rounded_up(seconds: float) -> int:
    """Whole minutes, rounded up: a page may promise deletion later than it happens, never sooner."""
    return math.ceil(seconds / 60)


def site(request: HttpRequest) -> dict:
    return {
        "site_name": settings.SITE_NAME,
        "site_logo_url": settings.SITE_LOGO_URL,
        "operator_name": settings.OPERATOR_NAME,
        "contact_email": settings.CONTACT_EMAIL,
        "ttl_minutes": minutes_rounded_up(settings.JOB_TTL_SECONDS),
    }


def removebg_credits(request: HttpRequest) -> dict:
    """For signed-in staff in the admin: the remove.bg balance, and whether it is low (the admin
    shows a banner on every page). Nothing for visitors, and nothing when remove.bg is not in use."""
    from portraitsite.middleware import is_admin_path

    user = getattr(request, "user", None)
    if not is_admin_path(request.path) or user is None or not user.is_active or not user.is_staff:
        return {}
    from segmentation.engines import engines_in_use

    if engines_in_use()["cutout"] != "removebg":
        return {}
    from segmentation.providers import removebg_account

    balance = removebg_account.balance()
    return {
        "removebg_credits": balance,
        "removebg_credits_known": balance is not None,
        "removebg_credits_low": removebg_account.is_low(balance),
        "removebg_low_threshold": settings.REMOVEBG_LOW_CREDITS,
    }
