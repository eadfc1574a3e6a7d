import math

from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict:
    return {
        "operator_name": settings.OPERATOR_NAME,
        "contact_email": settings.CONTACT_EMAIL,
        # Rounded up: a page may promise deletion later than it happens, never sooner.
        "ttl_minutes": math.ceil(settings.JOB_TTL_SECONDS / 60),
    }
