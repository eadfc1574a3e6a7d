"""The remove.bg balance against the fake: read from GET /account, cached, kept current from
X-Credits-Charged, shown to staff and to the /healthz token; low → a banner and one WARNING an
hour; none left → the preview still comes, and the job page says the HD service is unavailable
before any code is spent."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import User

from segmentation import store
from segmentation.providers import removebg_account
from tests.fakes.removebg import jpeg, portrait
from tests.flow import health_details, token_of, upload, wait_ready, wait_unlocked
from tests.photos import encode, portrait_scene
from unlock.issuing import issue
from unlock.models import UnlockCode

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def clock(monkeypatch):
    """removebg_account's monotonic clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(removebg_account.time, "monotonic", lambda: now[0])
    return now


def test_the_balance_is_read_once_then_kept_current_from_each_charge(removebg_fake, clock):
    removebg_fake.balance = 120.0
    assert removebg_account.balance() == 120.0
    assert removebg_account.balance() == 120.0
    assert removebg_fake.account_reads == 1, "cached: one GET /account"

    from segmentation.intake import accept_upload
    from segmentation.providers import removebg

    removebg.cut_out(accept_upload(jpeg(portrait(800, 600))), "preview")
    assert removebg_account.balance() == 119.75, "lowered by X-Credits-Charged, without asking"
    assert removebg_fake.account_reads == 1

    clock[0] += removebg_account.CACHE_SECONDS + 1
    removebg_fake.balance = 80.0  # topped down elsewhere (another site on the same key)
    assert removebg_account.balance() == 80.0
    assert removebg_fake.account_reads == 2


def test_an_account_that_cannot_be_read_is_unknown_and_blocks_nobody(settings, removebg_fake, clock, caplog):
    settings.REMOVEBG_API_KEY = "a-wrong-key"
    assert removebg_account.balance() is None
    assert removebg_account.can_afford(removebg_account.FULL_CREDITS)
    assert "remove.bg account answered 403" in caplog.text and "a-wrong-key" not in caplog.text
    assert removebg_account.balance() is None and removebg_fake.account_reads == 1, "not asked again at once"
    settings.REMOVEBG_API_KEY = ""
    removebg_account.forget()
    assert removebg_account.balance() is None and removebg_fake.account_reads == 1, "no key: never asked"


def test_healthz_shows_the_number_and_never_the_key(client, removebg_fake):
    removebg_fake.balance = 321.5
    response = client.get("/healthz", HTTP_AUTHORIZATION="Bearer test-healthz-token")
    assert response.json()["removebg"]["credits"] == 321.5
    assert response.json()["removebg"]["low"] is False
    assert removebg_fake.api_key not in response.content.decode()
    assert client.get("/healthz").json() == {"ok": True}


@pytest.fixture
def staff(client):
    client.force_login(User.objects.create_superuser("staff", "staff@example.com", "a long admin password"))
    return client


def test_low_credits_show_a_banner_in_the_admin_and_warn_once_an_hour(staff, removebg_fake, clock, caplog, settings):
    settings.REMOVEBG_LOW_CREDITS = 50
    removebg_fake.balance = 400.0
    page = staff.get("/admin/").content.decode()
    assert 'id="removebg-low-credits"' not in page
    assert "remove.bg balance: 400 credits." in staff.get("/admin/portraitsite/dailycount/").content.decode()

    removebg_fake.balance = 12.5
    clock[0] += removebg_account.CACHE_SECONDS + 1
    caplog.set_level(logging.WARNING, logger="segmentation.providers.removebg_account")
    for path in ("/admin/", "/admin/unlock/unlockcode/", "/admin/portraitsite/dailycount/"):
        page = staff.get(path).content.decode()
        assert 'id="removebg-low-credits"' in page and "12.50 left" in page, path
    for _read in range(3):
        clock[0] += removebg_account.CACHE_SECONDS + 1
        removebg_account.balance()
    warnings = [r for r in caplog.records if "remove.bg credits are low" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    health = health_details(staff)
    assert health["removebg"]["low"] is True and health["removebg"]["credits"] == 12.5


def test_visitors_never_see_the_balance(client, removebg_fake):
    removebg_fake.balance = 3.0
    for path in ("/", "/en/privacy/", "/healthz"):
        html = client.get(path).content.decode()
        assert "removebg-low-credits" not in html and "credits" not in html.lower(), path


def code() -> str:
    return issue(count=1, max_uses=1, expires_at=None, label="credits").displayed[0]


def test_with_no_credits_left_the_preview_still_comes_and_no_code_is_spent(client, removebg_fake):
    removebg_fake.balance = 0.0
    token = token_of(upload(client, encode(portrait_scene(800, 600), "JPEG")))
    job = wait_ready(token)
    assert job.state == store.READY and job.engine == "removebg", job.error
    assert removebg_fake.requests == [], "no call the account cannot pay: the embedded engine made the preview"
    assert client.get(f"/jobs/{token}/preview").status_code == 200

    page = client.get(f"/jobs/{token}/").content.decode()
    assert 'id="hd-unavailable"' in page and 'id="unlock-form"' not in page
    chinese = client.get(f"/zh-hans/jobs/{token}/").content.decode()
    assert 'id="hd-unavailable"' in chinese and "高清处理服务暂时不可用" in chinese

    unlock_code = code()
    refused = client.post(f"/jobs/{token}/unlock", {"code": unlock_code})
    assert refused.status_code == 503 and 'id="hd-unavailable"' in refused.content.decode()
    assert UnlockCode.objects.get().used == 0 and not UnlockCode.objects.get().redemptions.exists()

    # Credits are back: the same job unlocks with remove.bg's full result.
    removebg_fake.balance = 100.0
    removebg_account.forget()
    assert 'id="unlock-form"' in client.get(f"/jobs/{token}/").content.decode()
    assert client.post(f"/jobs/{token}/unlock", {"code": unlock_code}).status_code == 303
    assert wait_unlocked(token).unlocked
    assert [request.fields.get("size") for request in removebg_fake.requests] == ["full"]


def test_enough_for_a_preview_but_not_a_full_result(client, removebg_fake):
    removebg_fake.balance = 0.5
    token = token_of(upload(client, jpeg(portrait(800, 600))))
    assert wait_ready(token).state == store.READY
    assert [request.fields.get("size") for request in removebg_fake.requests] == ["preview"]
    assert 'id="hd-unavailable"' in client.get(f"/jobs/{token}/").content.decode()
