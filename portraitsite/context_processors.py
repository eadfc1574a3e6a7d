from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict:
    return {
        "operator_name": settings.OPERATOR_NAME,
        "contact_email": settings.CONTACT_EMAIL,
    }
