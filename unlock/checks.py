"""Deployment checks for unlock codes."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def check_unlock_code_key(app_configs, **kwargs):
    if settings.UNLOCK_CODE_KEY:
        return []
    return [
        Warning(
            "UNLOCK_CODE_KEY is not set, so unlock codes are keyed from SECRET_KEY.",
            hint="Rotating SECRET_KEY would then void every issued code. Set UNLOCK_CODE_KEY to its "
            "own random value before issuing codes (changing it later voids them too).",
            id="unlock.W001",
        )
    ]
