"""The facts the legal pages state, taken from the running configuration so they cannot drift
from what the code does. Change POLICY_UPDATED whenever the wording of the pages changes."""

import datetime

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from segmentation.engines import engines_in_use

POLICY_UPDATED = datetime.date(2026, 11, 26)

PROVIDERS = {
    "removebg": {
        "name": "remove.bg",
        "company": "Kaleido AI GmbH",
        "tool": _("background removal"),
        "url": "https://www.remove.bg/privacy",
    },
    "dashscope": {
        "name": "Alibaba Cloud DashScope (Model Studio)",
        "company": "Alibaba Cloud",
        "tool": _("passer-by removal"),
        "url": "https://www.alibabacloud.com/help/en/legal/latest/alibaba-cloud-international-website-privacy-policy",
    },
}


def facts() -> dict:
    in_use = engines_in_use()
    providers = [PROVIDERS[name] for name in (in_use["cutout"], in_use["crowd"]) if name in PROVIDERS]
    return {
        "providers": providers,
        "uses_removebg": in_use["cutout"] == "removebg",
        "uses_dashscope": in_use["crowd"] == "dashscope",
        "ttl_minutes": settings.JOB_TTL_SECONDS // 60,
        "operator_name": settings.OPERATOR_NAME,
        "contact_email": settings.CONTACT_EMAIL,
        "policy_updated": POLICY_UPDATED,
        "upload_limit_mb": settings.MAX_UPLOAD_BYTES // (1024 * 1024),
    }
