"""The privacy and terms pages say what this installation does — for every configuration — and
each claim they make is held to the code here (or in the test named next to it)."""

from __future__ import annotations

import io
import re

import pytest
from django.core.cache import caches
from django.template.defaultfilters import date as format_date
from PIL import Image

from portraitsite import legal
from segmentation import intake
from tests.flow import upload
from tests.photos import encode, portrait_scene

pytestmark = pytest.mark.django_db


def text_of(response) -> str:
    assert response.status_code == 200
    html = response.content.decode()
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).replace("&#x27;", "'").replace("&quot;", '"')


@pytest.fixture
def local_only(settings):
    settings.BACKGROUND_ENGINE, settings.CROWD_ENGINE = "auto", "auto"
    settings.REMOVEBG_API_KEY = settings.DASHSCOPE_API_KEY = ""
    return settings


@pytest.fixture
def removebg(local_only):
    local_only.REMOVEBG_API_KEY = "key"
    local_only.REMOVEBG_API_URL = "https://api.remove.bg/v1.0"
    return local_only


@pytest.fixture
def dashscope(local_only):
    local_only.DASHSCOPE_API_KEY = "key"
    local_only.DASHSCOPE_API_URL = "https://dashscope-intl.aliyuncs.com/api/v1"
    return local_only


# --- Providers, per configuration ------------------------------------------------------------------


def test_with_the_embedded_engines_no_third_party_is_named(client, local_only):
    page = text_of(client.get("/privacy/"))
    assert "All processing happens on our own server; your photo is not sent to anyone." in page
    assert "None. This installation processes every photo on its own server" in page
    for provider in ("remove.bg", "Kaleido", "DashScope", "Alibaba", "24 hours"):
        assert provider not in page


def test_with_remove_bg_the_page_names_it_and_says_when_the_photo_goes_there(client, removebg):
    page = text_of(client.get("/privacy/"))
    assert "remove.bg (Kaleido AI GmbH) — background removal" in page
    assert "It travels encrypted (HTTPS) and without metadata" in page
    assert "sent to remove.bg when you upload it, for the preview, and once more when you unlock it" in page
    assert 'href="https://www.remove.bg/privacy"' in client.get("/privacy/").content.decode()
    for provider in ("DashScope", "Alibaba", "24 hours", "All processing happens on our own server"):
        assert provider not in page
    removebg.REMOVEBG_FULL_RESULT = "upfront"  # one call at upload, none on unlock
    assert "once more when you unlock" not in text_of(client.get("/privacy/"))


def test_with_dashscope_the_page_names_it_its_region_and_its_24_hour_copy(client, dashscope):
    page = text_of(client.get("/privacy/"))
    assert "Alibaba Cloud DashScope (Model Studio) (Alibaba Cloud) — passer-by removal" in page
    assert "keeps the edited image it returns on its own storage for up to 24 hours" in page
    assert "Alibaba Cloud processes your photo in Singapore." in page
    assert "remove.bg" not in page
    dashscope.DASHSCOPE_API_URL = "https://dashscope.aliyuncs.com/api/v1"
    assert "processes your photo in mainland China (Beijing)." in text_of(client.get("/privacy/"))
    dashscope.DASHSCOPE_API_URL = "https://dashscope.example.com/api/v1"  # a region we cannot name
    assert "processes your photo in" not in text_of(client.get("/privacy/"))


def test_with_both_providers_both_are_named(client, removebg):
    removebg.DASHSCOPE_API_KEY = "key"
    page = text_of(client.get("/privacy/"))
    assert "remove.bg (Kaleido AI GmbH)" in page and "Alibaba Cloud DashScope" in page
    assert "sent only to the following services, to each only when you use the tool it provides" in page
    assert "following service," not in page


def test_with_one_provider_the_service_is_singular(client, dashscope):
    page = text_of(client.get("/privacy/"))
    assert "sent only to the following service, and only when you use the tool it provides" in page
    assert "following services" not in page


def test_an_engine_chosen_explicitly_counts_like_one_chosen_by_key(client, local_only):
    local_only.REMOVEBG_API_KEY = "key"
    local_only.BACKGROUND_ENGINE = "local"  # a key alone sends nothing anywhere
    assert "remove.bg" not in text_of(client.get("/privacy/"))


# --- Facts taken from the configuration ------------------------------------------------------------


def test_retention_operator_contact_and_date_come_from_the_configuration(client, settings):
    settings.JOB_TTL_SECONDS = 3600
    settings.OPERATOR_NAME = "Studio Lumen"
    settings.CONTACT_EMAIL = "privacy@lumen.example"
    page = text_of(client.get("/privacy/"))
    assert "are deleted automatically 60 minutes after you upload" in page
    assert "Studio Lumen runs this website." in page and "privacy@lumen.example" in page
    assert 'href="mailto:privacy@lumen.example"' in client.get("/privacy/").content.decode()
    assert f"Last updated: {format_date(legal.POLICY_UPDATED, 'DATE_FORMAT')}." in page
    terms = text_of(client.get("/terms/"))
    assert (
        "deleted 60 minutes after upload" in terms
        and f"Last updated: {format_date(legal.POLICY_UPDATED, 'DATE_FORMAT')}" in terms
    )


def test_a_retention_of_part_minutes_is_rounded_up_never_promising_deletion_sooner(client, settings):
    settings.JOB_TTL_SECONDS = 1799  # 29 minutes 59 seconds
    assert "are deleted automatically 30 minutes after you upload" in text_of(client.get("/privacy/"))
    assert "deleted 30 minutes after upload" in text_of(client.get("/terms/"))


def test_the_terms_state_the_upload_limits_in_force(client, settings):
    settings.MAX_UPLOAD_BYTES = 12 * 1024 * 1024
    settings.MAX_IMAGE_PIXELS = 24_000_000
    terms = text_of(client.get("/terms/"))
    assert "Files may be JPEG, PNG or WebP, up to 12 MB." in terms and "up to 24 megapixels" in terms


@pytest.mark.parametrize(
    ("uploads", "failures", "counted"),
    [(10, 10, "uploads and wrong unlock codes"), (10, 0, "uploads"), (0, 10, "wrong unlock codes"), (0, 0, None)],
)
def test_abuse_limits_describe_only_the_limits_that_count(client, settings, uploads, failures, counted):
    settings.UPLOADS_PER_MINUTE, settings.UNLOCK_FAILURES_PER_MINUTE = uploads, failures
    settings.CLIENT_LIVE_JOBS = settings.CLIENT_STORE_PERCENT = 0
    page = text_of(client.get("/privacy/"))
    if counted is None:
        assert "Abuse limits" not in page and "network address, kept only in memory" not in page
        return
    assert f"To stop abuse, we count {counted} per connection for a few minutes." in page
    assert "keyed, one-way hash of your network address" in page
    assert page.count("To stop abuse") == 1


@pytest.mark.parametrize(("jobs", "percent"), [(5, 10), (5, 0), (0, 10)])
def test_the_photos_a_connection_holds_are_counted_and_said_so(client, settings, jobs, percent):
    settings.UPLOADS_PER_MINUTE = settings.UNLOCK_FAILURES_PER_MINUTE = 0
    settings.CLIENT_LIVE_JOBS, settings.CLIENT_STORE_PERCENT = jobs, percent
    settings.JOB_TTL_SECONDS = 1800
    page = text_of(client.get("/privacy/"))
    assert "we also count how many photos each connection has here" in page and "for at most 30 minutes" in page
    assert "keyed, one-way hash of your network address" in page
    assert "To stop abuse, we count" not in page, "no limit on uploads or codes is claimed"


def test_the_paid_upload_limit_counts_uploads_only_with_a_provider(client, settings, removebg_fake):
    settings.UPLOADS_PER_MINUTE = settings.UNLOCK_FAILURES_PER_MINUTE = 0
    settings.CLIENT_LIVE_JOBS = settings.CLIENT_STORE_PERCENT = 0
    settings.PAID_UPLOADS_PER_MINUTE = 4
    settings.BACKGROUND_ENGINE = "removebg"
    assert "we count uploads per connection" in text_of(client.get("/privacy/"))
    settings.BACKGROUND_ENGINE = "local"
    assert "Abuse limits" not in text_of(client.get("/privacy/"))


def test_error_reports_are_mentioned_only_when_they_are_sent(client, settings):
    settings.ADMINS = []
    assert "Error reports" not in text_of(client.get("/privacy/"))
    settings.ADMINS = ["ops@example.com"]
    page = text_of(client.get("/privacy/"))
    assert "emails the operator an error report" in page and "never contains your photo" in page


def test_the_cookie_and_tracking_statements_are_there(client):
    page = text_of(client.get("/privacy/"))
    assert "This website sets no cookies for visitors" in page  # tests/test_privacy_cookies.py
    assert "no tracking scripts, analytics, advertising, or third-party fonts or scripts" in page  # test_headers.py
    assert "sets one session cookie for signed-in staff, limited to the administration pages" in page
    assert (
        "nor any processed image is ever written to disk, and none of them is logged" in page
    )  # test_privacy_disk.py, test_logs.py
    assert "erased within a minute" in page  # tests/test_privacy_expiry.py


def test_the_chinese_pages_render_for_every_configuration(client, removebg):
    removebg.DASHSCOPE_API_KEY = "key"
    for path in ("/zh-hans/privacy/", "/zh-hans/terms/"):
        assert client.get(path).status_code == 200


# --- The claims, held to the code ----------------------------------------------------------------------


def test_claim_metadata_is_removed_before_anything_is_processed():
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # camera make
    exif[0x0132] = "2026:05:15 10:00:00"  # date
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 12.0, 30.0)
    photo = intake.accept_upload(encode(portrait_scene(300, 200), "JPEG", exif=exif.tobytes(), comment=b"home"))
    assert b"SecretCam" not in photo.data and b"Exif" not in photo.data and b"home" not in photo.data
    with Image.open(io.BytesIO(photo.data)) as stored:
        assert not stored.getexif() and "comment" not in stored.info


def test_claim_the_network_address_itself_is_not_stored(client, settings):
    settings.UPLOADS_PER_MINUTE = 10
    settings.BACKGROUND_ENGINE = settings.CROWD_ENGINE = "local"
    caches["default"].clear()
    upload(client, encode(portrait_scene(200, 150)), REMOTE_ADDR="203.0.113.199")
    stored = repr(dict(caches["default"]._cache)) + repr(list(caches["default"]._cache))
    assert caches["default"]._cache, "the upload was counted"
    assert "203.0.113.199" not in stored and "203.0.113" not in stored
    caches["default"].clear()


def test_claim_a_used_code_records_only_the_time_the_tool_and_the_delivery(client):
    from unlock.models import Redemption, UnlockCode

    assert "we record the time, the tool and whether the result was delivered, nothing else" in text_of(
        client.get("/privacy/")
    )
    fields = {field.name for field in Redemption._meta.concrete_fields}
    assert fields == {"id", "code", "created_at", "tool", "delivered"}, (
        "nothing about the visitor, the photo or the job"
    )
    assert "code" not in {field.name for field in UnlockCode._meta.concrete_fields}, "codes are kept as digests"


def test_the_date_reads_naturally_in_chinese(client):
    page = client.get("/zh-hans/privacy/").content.decode()
    assert f"{legal.POLICY_UPDATED.year}年{legal.POLICY_UPDATED.month}月{legal.POLICY_UPDATED.day}日" in page
