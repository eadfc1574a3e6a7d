"""The facts the legal pages state, taken from the running configuration so they cannot drift
from what the code does. Change POLICY_UPDATED whenever the wording of the pages changes.

Each statement on the pages is checked against the code in tests/test_legal_pages.py; a fact that
depends on a setting is computed here (or, for the retention time every page states, in
portraitsite.context_processors), never written into the template."""

import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from portraitsite import usage
from segmentation.engines import engines_in_use

POLICY_UPDATED = datetime.date(2026, 12, 4)

PROVIDERS = {
    "removebg": {
        "name": "remove.bg",
        "company": "Kaleido AI GmbH",
        "tool": _("background removal and ID photos"),
        "url": "https://www.remove.bg/privacy",
    },
    "dashscope": {
        "name": "Alibaba Cloud DashScope (Model Studio)",
        "company": "Alibaba Cloud",
        "tool": _("passer-by removal"),
        "url": "https://www.alibabacloud.com/help/en/legal/latest/alibaba-cloud-international-website-privacy-policy",
    },
}


# DashScope keys and data stay in the region of the endpoint they were made for.
DASHSCOPE_REGIONS = {
    "dashscope-intl.aliyuncs.com": _("Singapore"),
    "dashscope.aliyuncs.com": _("mainland China (Beijing)"),
}


def facts() -> dict:
    in_use = engines_in_use()
    providers = [PROVIDERS[name] for name in (in_use["cutout"], in_use["crowd"]) if name in PROVIDERS]
    uses_removebg = in_use["cutout"] == "removebg"
    uses_dashscope = in_use["crowd"] == "dashscope"
    return {
        "providers": providers,
        "uses_removebg": uses_removebg,
        # Preview first: the photo goes to remove.bg at upload and once more on unlock.
        "removebg_sent_again_on_unlock": uses_removebg and settings.REMOVEBG_FULL_RESULT == "on_unlock",
        "uses_dashscope": uses_dashscope,
        "dashscope_region": DASHSCOPE_REGIONS.get(urlsplit(settings.DASHSCOPE_API_URL).hostname or "")
        if uses_dashscope
        else None,
        # Only the per-connection limits look at the address (the per-photo one keys on the photo);
        # each is off at 0, and the page names only those that count.
        "counts_uploads": settings.UPLOADS_PER_MINUTE > 0 or (bool(providers) and settings.PAID_UPLOADS_PER_MINUTE > 0),
        # segmentation.quota: per connection, as long as its photos are kept.
        "counts_photos_held": settings.CLIENT_LIVE_JOBS > 0 or settings.CLIENT_STORE_PERCENT > 0,
        "counts_unlock_failures": settings.UNLOCK_FAILURES_PER_MINUTE > 0,
        "error_emails": bool(settings.ADMINS),
        "site_name": settings.SITE_NAME,
        "operator_name": settings.OPERATOR_NAME,
        "usage_retention_days": usage.RETENTION_DAYS,
        "contact_email": settings.CONTACT_EMAIL,
        "policy_updated": POLICY_UPDATED,
        "upload_limit_mb": settings.MAX_UPLOAD_BYTES // (1024 * 1024),
        "max_megapixels": settings.MAX_IMAGE_PIXELS // 1_000_000,
    }
