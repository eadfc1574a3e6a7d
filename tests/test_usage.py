"""Usage totals: each event adds once to its day and tool, nothing personal is kept, totals go after
400 days, the admin shows them, and the privacy page says so in one sentence that matches."""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from portraitsite import usage
from portraitsite.models import DailyCount
from tests.fakes.removebg import jpeg, portrait
from tests.flow import token_of, upload, wait_for_pool_idle, wait_ready, wait_unlocked
from tests.photos import encode, gradient, portrait_scene
from unlock.issuing import issue

pytestmark = pytest.mark.django_db(transaction=True)

ADDRESS = "203.0.113.77"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) UsageTestBrowser/1.0"


def totals(tool: str | None = None) -> dict[str, Decimal]:
    rows = DailyCount.objects.filter(day=usage.today())
    if tool is not None:
        rows = rows.filter(tool=tool)
    return {row.name: row.value for row in rows}


def one_code() -> str:
    return issue(count=1, max_uses=1, expires_at=None, label="usage").displayed[0]


def test_a_whole_visit_adds_one_upload_one_preview_one_unlock_and_nothing_personal(client):
    response = upload(client, encode(portrait_scene(800, 600), "JPEG"), REMOTE_ADDR=ADDRESS, HTTP_USER_AGENT=BROWSER)
    token = token_of(response)
    assert wait_ready(token).state == "ready"
    code = one_code()
    assert client.post(f"/jobs/{token}/unlock", {"code": code}, REMOTE_ADDR=ADDRESS).status_code == 303
    assert wait_unlocked(token).unlocked
    client.get(f"/jobs/{token}/download")  # downloads are not counted: they are not events of their own
    wait_for_pool_idle()  # the unlock is counted once the use is confirmed, just after the page shows it

    assert totals("cutout") == {usage.UPLOADS: 1, usage.PREVIEWS: 1, usage.UNLOCKS: 1}
    # Only day, tool, name and number exist, and none of them holds the visit's particulars.
    assert [field.name for field in DailyCount._meta.get_fields()] == ["id", "day", "tool", "name", "value"]
    stored = " ".join(f"{row.day} {row.tool} {row.name} {row.value}" for row in DailyCount.objects.all())
    for secret in (ADDRESS, "203.0.113", BROWSER, "UsageTestBrowser", token, code, code.replace("-", "")):
        assert secret not in stored
    assert all(
        isinstance(row.day, datetime.date) and not isinstance(row.day, datetime.datetime)
        for row in DailyCount.objects.all()
    )


def test_failures_are_counted_by_reason_and_tool(client, settings):
    assert upload(client, b"not a photo").status_code == 400
    failed = token_of(upload(client, encode(gradient(640, 480), "JPEG")))
    assert wait_ready(failed).state == "failed"
    settings.UPLOADS_PER_MINUTE = 1
    assert upload(client, encode(portrait_scene(400, 300), "JPEG"), mode="crowd").status_code == 303
    assert upload(client, encode(portrait_scene(400, 300), "JPEG"), mode="crowd").status_code == 429
    too_big = client.post("/jobs/", {}, CONTENT_LENGTH=str(settings.MAX_UPLOAD_BYTES * 2))
    assert too_big.status_code == 413

    assert totals("cutout") == {
        usage.UPLOADS: 1,  # the gradient was accepted, then failed
        "failed:upload_invalid": 1,
        "failed:preview_unusable": 1,
    }
    assert totals("crowd")[usage.UPLOADS] == 1
    # Refused before its form was read: the tool is unknown, and the body is left unread.
    assert totals("")["failed:upload_too_large"] == 1
    assert totals("")["failed:upload_rate_limited"] == 1


def test_a_tool_the_site_does_not_have_is_never_stored(client):
    assert client.post("/jobs/", {"mode": "<script>x</script>"}).status_code == 400
    assert set(DailyCount.objects.values_list("tool", flat=True)) == {""}


def test_provider_charges_are_counted_under_the_tool_that_made_them(client, removebg_fake):
    token = token_of(upload(client, jpeg(portrait(800, 600))))
    assert wait_ready(token).state == "ready"
    assert client.post(f"/jobs/{token}/unlock", {"code": one_code()}).status_code == 303
    assert wait_unlocked(token).unlocked
    assert totals("cutout")[usage.REMOVEBG_CREDITS] == Decimal("1.25") == Decimal(str(removebg_fake.credits_charged))


def test_dashscope_billed_calls_are_counted(client, dashscope_fake):
    token = token_of(upload(client, encode(portrait_scene(640, 480), "JPEG"), mode="crowd"))
    job = wait_ready(token)
    assert job.engine == "dashscope" and job.state == "ready", job.error
    assert totals("crowd")[usage.DASHSCOPE_CALLS] == 1


def test_a_failure_to_count_never_fails_the_visitor(client, monkeypatch, caplog):
    def broken(*args, **kwargs):
        from django.db import OperationalError

        raise OperationalError("disk I/O error")

    monkeypatch.setattr(usage, "_add", broken)
    response = upload(client, encode(portrait_scene(400, 300), "JPEG"))
    assert response.status_code == 303
    assert "Could not count uploads for cutout: OperationalError" in caplog.text


def test_totals_older_than_400_days_are_deleted_on_the_first_count_of_a_day(client, monkeypatch):
    today = datetime.date(2026, 12, 4)
    kept = today - datetime.timedelta(days=usage.RETENTION_DAYS)
    gone = kept - datetime.timedelta(days=1)
    for day in (gone, kept):
        DailyCount.objects.create(day=day, tool="cutout", name=usage.UPLOADS, value=3)
    monkeypatch.setattr(usage, "today", lambda: today)

    usage.count("cutout", usage.UPLOADS)  # the day's first: inserts, and purges
    assert sorted(DailyCount.objects.values_list("day", flat=True)) == [kept, today]

    DailyCount.objects.create(day=gone, tool="cutout", name=usage.UPLOADS, value=3)
    usage.count("cutout", usage.UPLOADS)  # not the first any more: an UPDATE only
    assert DailyCount.objects.filter(day=today).get().value == 2
    call_command("purge_usage", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert sorted(DailyCount.objects.values_list("day", flat=True)) == [kept, today]


def test_the_purge_command_deletes_what_is_past_retention(capsys):
    old = usage.today() - datetime.timedelta(days=usage.RETENTION_DAYS + 30)
    DailyCount.objects.create(day=old, tool="crowd", name=usage.PREVIEWS, value=1)
    DailyCount.objects.create(day=usage.today(), tool="crowd", name=usage.PREVIEWS, value=1)
    call_command("purge_usage")
    assert "Deleted 1 usage totals older than 400 days." in capsys.readouterr().out
    assert list(DailyCount.objects.values_list("day", flat=True)) == [usage.today()]


def test_the_privacy_page_says_what_the_totals_hold_and_how_long(client):
    sentence = re.search(r'<p id="usage-totals">([^<]+)</p>', client.get("/en/privacy/").content.decode()).group(1)
    assert f"for {usage.RETENTION_DAYS} days" in sentence
    # Each kind of total the code keeps is named in the sentence ...
    named = {
        usage.UPLOADS: "uploaded",
        usage.PREVIEWS: "previewed",
        usage.UNLOCKS: "unlocked",
        usage.FAILED: "failed and why",
        usage.REMOVEBG_CREDITS: "what the processing services charged",
        usage.DASHSCOPE_CALLS: "what the processing services charged",
    }
    assert set(named) == {*usage.COLUMNS, usage.FAILED}, "a new kind of total needs its words on the privacy page"
    for words in named.values():
        assert words in sentence
    # ... and what it promises to leave out is not a field of the model.
    assert "per day only" in sentence and "no address, browser, photo, code or time of day" in sentence
    assert {field.name for field in DailyCount._meta.get_fields()} == {"id", "day", "tool", "name", "value"}
    assert DailyCount._meta.get_field("day").get_internal_type() == "DateField"
    chinese = client.get("/zh-hans/privacy/").content.decode()
    assert re.search(r'<p id="usage-totals">[^<]*保留 400 天', chinese)


@pytest.fixture
def staff(client):
    client.force_login(User.objects.create_superuser("staff", "staff@example.com", "a long admin password"))
    return client


def test_the_admin_shows_the_totals_per_day_and_tool(staff):
    today = usage.today()
    yesterday = today - datetime.timedelta(days=1)
    DailyCount.objects.create(day=today, tool="cutout", name=usage.UPLOADS, value=12)
    DailyCount.objects.create(day=today, tool="cutout", name=usage.REMOVEBG_CREDITS, value=Decimal("3.25"))
    DailyCount.objects.create(day=today, tool="cutout", name="failed:preview_unusable", value=2)
    DailyCount.objects.create(day=yesterday, tool="crowd", name=usage.DASHSCOPE_CALLS, value=7)
    DailyCount.objects.create(day=today - datetime.timedelta(days=40), tool="crowd", name=usage.UPLOADS, value=99)

    page = staff.get("/admin/portraitsite/dailycount/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Usage per day and tool" in html and "failed: preview_unusable" in html
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td>((?:<td[^>]*>[^<]*</td>)+)</tr>", html)
    cells = {(day, tool): re.findall(r"<td[^>]*>([^<]*)</td>", rest) for day, tool, rest in rows}
    assert cells[(today.strftime("%a %Y-%m-%d"), "cutout")] == ["12", "", "", "3.25", "", "2"]
    assert cells[(yesterday.strftime("%a %Y-%m-%d"), "crowd")] == ["", "", "", "", "7", ""]
    forty_days_ago = (today - datetime.timedelta(days=40)).strftime("%a %Y-%m-%d")
    assert forty_days_ago not in html, "outside the default 30 days"
    assert forty_days_ago in staff.get("/admin/portraitsite/dailycount/?days=90").content.decode()
    # Read-only: no add, change or delete.
    assert staff.get("/admin/portraitsite/dailycount/add/").status_code == 403
    row = DailyCount.objects.first()
    assert staff.post(f"/admin/portraitsite/dailycount/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert DailyCount.objects.filter(pk=row.pk).exists()


def test_the_admin_overview_needs_staff(client):
    assert client.get("/admin/portraitsite/dailycount/").status_code == 302
