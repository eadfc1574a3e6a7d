"""The staff pages for codes: generate a batch shown once, list, filter, search, deactivate."""

import base64
import csv
import datetime
import io
import re
from urllib.parse import unquote

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from unlock import codes
from unlock.issuing import issue
from unlock.models import UnlockCode
from unlock.redemption import redeem

pytestmark = pytest.mark.django_db

CODE_IN_PAGE = re.compile(
    r"\b[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}\b"
)
CHANGELIST = "admin:unlock_unlockcode_changelist"
GENERATE = "admin:unlock_unlockcode_generate"
FIND = "admin:unlock_unlockcode_find"


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("staff", "staff@example.com", "a long admin password")
    client.force_login(user)
    return client


def batch_token(client) -> str:
    page = client.get(reverse(GENERATE))
    assert page.status_code == 200
    return re.search(r'name="batch" value="([^"]+)"', page.text).group(1)


def generate(client, **fields):
    data = {"count": 3, "max_uses": 1, "expires_on": "", "expires_in_days": "", "label": ""} | fields
    data.setdefault("batch", batch_token(client))
    return client.post(reverse(GENERATE), data)


def csv_from(page) -> list[list[str]]:
    href = re.search(r'href="(data:text/csv;charset=utf-8;base64,[^"]+)"[^>]*download="([^"]+)"', page.text)
    assert href, "no CSV download link"
    payload = unquote(href.group(1)).split(",", 1)[1]
    return list(csv.reader(io.StringIO(base64.b64decode(payload).decode())))


def no_inline_scripts_or_styles(html: str) -> bool:
    inline_scripts = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    return not inline_scripts and "<style" not in html and " style=" not in html


def test_the_changelist_links_to_generate_codes_and_not_to_add(staff):
    page = staff.get(reverse(CHANGELIST))
    assert page.status_code == 200
    assert reverse(GENERATE) in page.text
    assert reverse("admin:unlock_unlockcode_add") not in page.text
    assert staff.get(reverse("admin:unlock_unlockcode_add")).status_code == 403


def test_generated_codes_are_shown_once_with_a_csv_of_them(staff):
    page = generate(staff, count=4, max_uses=2, expires_in_days=30, label="spring fair")
    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]
    shown = CODE_IN_PAGE.findall(page.text)
    assert len(shown) == 4 and len(set(shown)) == 4
    rows = csv_from(page)
    assert rows[0] == ["code", "uses", "expires", "label"]
    assert [row[0] for row in rows[1:]] == shown
    assert {(row[1], row[3]) for row in rows[1:]} == {("2", "spring fair")}
    # The codes work, and what stays behind is digests and hints.
    stored = UnlockCode.objects.all()
    assert {row.digest for row in stored} == {codes.digest(codes.normalise(code)) for code in shown}
    assert {row.hint for row in stored} == {code[-4:] for code in shown}
    redeem(shown[0], "cutout")
    # Nowhere else in the admin are they shown again.
    for url in (reverse(CHANGELIST), reverse("admin:unlock_unlockcode_change", args=[stored[0].pk])):
        assert not CODE_IN_PAGE.search(staff.get(url).text)


def test_the_admin_log_never_holds_a_code(staff):
    page = generate(staff, count=5, label="press")
    shown = [codes.normalise(code) for code in CODE_IN_PAGE.findall(page.text)]
    entries = LogEntry.objects.filter(action_flag=ADDITION)
    assert entries.count() == 5
    text = " ".join(f"{e.object_repr} {e.change_message} {e.get_change_message()}" for e in entries)
    assert "batch of 5 codes" in text
    for code in shown:
        assert code[:12] not in codes.normalise_fragment(text)
    assert {e.object_repr for e in entries} == {f"…-{code[-4:]}" for code in shown}


def test_no_plaintext_is_kept_in_the_session(staff):
    from django.contrib.sessions.models import Session

    page = generate(staff, count=3)
    shown = [codes.normalise(code) for code in CODE_IN_PAGE.findall(page.text)]
    assert len(shown) == 3
    for session in Session.objects.all():
        decoded = repr(session.get_decoded())
        assert not any(code in codes.normalise_fragment(decoded) for code in shown)
        assert not CODE_IN_PAGE.search(decoded)


def test_reposting_the_same_form_does_not_make_a_second_batch(staff):
    token = batch_token(staff)
    first = generate(staff, batch=token)
    assert first.status_code == 200
    again = generate(staff, batch=token)
    assert again.status_code == 302 and again["Location"] == reverse(CHANGELIST)
    assert UnlockCode.objects.count() == 3
    assert not CODE_IN_PAGE.search(staff.get(again["Location"]).text)


@pytest.mark.parametrize(
    "fields, error",
    [
        ({"count": 0}, "greater than or equal to 1"),
        ({"count": 1001}, "less than or equal to 1000"),
        ({"max_uses": 0}, "greater than or equal to 1"),
        ({"expires_on": "2001-01-01"}, "already passed"),
        ({"expires_on": "2099-01-01", "expires_in_days": 5}, "not both"),
    ],
)
def test_invalid_requests_show_the_form_again_and_create_nothing(staff, fields, error):
    page = generate(staff, **fields)
    assert page.status_code == 200
    assert error in page.text
    assert not UnlockCode.objects.exists()


def test_a_date_makes_codes_valid_through_that_day(staff):
    day = timezone.localdate() + datetime.timedelta(days=5)
    page = generate(staff, count=1, expires_on=day.isoformat())
    expires = timezone.localtime(UnlockCode.objects.get().expires_at)
    assert expires == timezone.make_aware(datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time()))
    # Staff see the day they chose, not the next day's midnight it is stored as.
    assert f"{date_format(day, 'DATE_FORMAT')}, inclusive" in page.text
    assert date_format(day + datetime.timedelta(days=1), "DATE_FORMAT") not in page.text
    assert {row[2] for row in csv_from(page)[1:]} == {day.isoformat()}


def test_a_number_of_days_shows_and_exports_the_moment_of_expiry(staff):
    page = generate(staff, count=1, expires_in_days=3)
    expires = UnlockCode.objects.get().expires_at
    assert "inclusive" not in page.text
    assert {datetime.datetime.fromisoformat(row[2]) for row in csv_from(page)[1:]} == {expires}


def test_generate_needs_staff_with_the_add_permission(client):
    assert client.get(reverse(GENERATE)).status_code == 302  # to the admin login
    user = User.objects.create_user("clerk", password="a long clerk password", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_unlockcode"))
    client.force_login(user)
    assert client.get(reverse(GENERATE)).status_code == 403
    assert client.post(reverse(GENERATE), {"count": 1, "max_uses": 1, "batch": "x"}).status_code == 403
    assert reverse(GENERATE) not in client.get(reverse(CHANGELIST)).text
    user.user_permissions.add(Permission.objects.get(codename="add_unlockcode"))
    assert client.get(reverse(GENERATE)).status_code == 200


def make_states() -> dict[str, UnlockCode]:
    now = timezone.now()
    rows = {}
    for state, label, kwargs in [
        ("active", "fair", {"max_uses": 3}),
        ("used_up", "fair", {"max_uses": 1}),
        ("expired", "press", {"expires_at": now + datetime.timedelta(seconds=2)}),
        ("deactivated", "press", {}),
    ]:
        batch = issue(1, max_uses=kwargs.get("max_uses", 1), expires_at=kwargs.get("expires_at"), label=label)
        rows[state] = UnlockCode.objects.get(pk=batch.ids[0])
        if state in ("active", "used_up"):
            redeem(codes.display(batch.codes[0]), "crowd")
    UnlockCode.objects.filter(pk=rows["expired"].pk).update(expires_at=now - datetime.timedelta(days=1))
    UnlockCode.objects.filter(pk=rows["deactivated"].pk).update(active=False)
    return rows


def listed(client, **query) -> set[str]:
    page = client.get(reverse(CHANGELIST), query)
    assert page.status_code == 200
    return set(re.findall(r"…-([0-9A-Z]{4})", page.text))


def test_the_list_shows_hint_label_uses_expiry_and_state(staff):
    rows = make_states()
    page = staff.get(reverse(CHANGELIST)).text
    for header in ("Code", "Label", "Uses", "Expires", "State", "Created"):
        assert f">{header}<" in page or f">{header}</a>" in page
    assert "1/3" in page and "1/1" in page
    for label in ("active", "used up", "expired", "deactivated"):
        assert f'<td class="field-state_display">{label}</td>' in page
    assert listed(staff) == {row.hint for row in rows.values()}


@pytest.mark.parametrize("state", ["active", "used_up", "expired", "deactivated"])
def test_the_state_filter_finds_each_state(staff, state):
    rows = make_states()
    assert listed(staff, state=state) == {rows[state].hint}


def test_the_label_filter_and_the_search(staff):
    rows = make_states()
    assert listed(staff, label="press") == {rows["expired"].hint, rows["deactivated"].hint}
    assert listed(staff, q="fai") == {rows["active"].hint, rows["used_up"].hint}
    hint = rows["used_up"].hint
    # Staff type a hint as a visitor reads it to them: lower case, with the ellipsis, O for 0.
    assert hint in listed(staff, q=hint.lower())
    assert hint in listed(staff, q=f"…-{hint.replace('0', 'O').replace('1', 'I')}")


def test_a_label_search_does_not_match_hints_its_last_letters_spell(staff):
    campaign = UnlockCode.objects.get(pk=issue(1, max_uses=1, expires_at=None, label="campaign").ids[0])
    other = UnlockCode.objects.get(pk=issue(1, max_uses=1, expires_at=None, label="press").ids[0])
    UnlockCode.objects.filter(pk=other.pk).update(hint="A1GN")  # "CAMPAIGN" read as a code ends in A1GN
    UnlockCode.objects.filter(pk=campaign.pk).update(hint="7KQ2")
    assert listed(staff, q="campaign") == {"7KQ2"}
    assert listed(staff, q="summer campaign") == set()
    # Written the way codes are, the same letters still find the hint.
    assert listed(staff, q="…-a1gn") == {"A1GN"}
    assert listed(staff, q="…-aIgn") == {"A1GN"}


def test_a_whole_code_is_never_searched_by_address_but_found_by_post(staff):
    """A search is part of the page's address, and addresses end up in access logs: a whole code
    (or more of it than its hint) in ?q= finds nothing and says where to look it up instead."""
    batch = issue(2, max_uses=1, expires_at=None, label="fair")
    code = batch.codes[0]
    hint = UnlockCode.objects.get(pk=batch.ids[0]).hint
    for term in (codes.display(code).lower(), code, codes.display(code)[10:], codes.display(code)[:9]):
        page = staff.get(reverse(CHANGELIST), {"q": term})
        assert listed(staff, q=term) == set(), term
        assert "not searched by more than their last four characters" in page.text
    assert listed(staff, q=hint) == {hint}
    assert listed(staff, q=f"…-{hint.lower()}") == {hint}
    assert 'method="post"' in staff.get(reverse(CHANGELIST)).text

    found = staff.post(reverse(FIND), {"code": codes.display(code).lower()})
    assert found.status_code == 302
    assert found["Location"] == reverse("admin:unlock_unlockcode_change", args=[batch.ids[0]])
    for wrong in ("0000-0000-0000-0000", "not a code"):
        missed = staff.post(reverse(FIND), {"code": wrong}, follow=True)
        assert "No code matches what you entered." in missed.text
    assert staff.get(reverse(FIND))["Location"] == reverse(CHANGELIST), "no code is ever taken from an address"


def test_find_a_code_needs_staff(client):
    batch = issue(1, max_uses=1, expires_at=None, label="fair")
    response = client.post(reverse(FIND), {"code": batch.codes[0]})
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_deactivate_and_reactivate_actions(staff):
    rows = make_states()
    targets = [rows["active"].pk, rows["expired"].pk]
    response = staff.post(reverse(CHANGELIST), {"action": "deactivate", "_selected_action": targets})
    assert response.status_code == 302
    assert not UnlockCode.objects.filter(pk__in=targets, active=True).exists()
    assert "Deactivated 2 codes." in staff.get(response["Location"]).text
    assert UnlockCode.objects.get(pk=rows["active"].pk).state == "deactivated"
    staff.post(reverse(CHANGELIST), {"action": "reactivate", "_selected_action": [rows["active"].pk]})
    assert UnlockCode.objects.get(pk=rows["active"].pk).state == "active"
    changes = [entry.object_repr for entry in LogEntry.objects.filter(action_flag=CHANGE).order_by("pk")]
    assert sorted(changes[:2]) == sorted([str(rows["active"]), str(rows["expired"])])
    assert changes[2:] == [str(rows["active"])]


def test_a_code_page_lists_its_redemptions_read_only(staff):
    batch = issue(1, max_uses=3, expires_at=None, label="fair")
    redeem(batch.displayed[0], "cutout")
    redeem(batch.displayed[0], "crowd")
    page = staff.get(reverse("admin:unlock_unlockcode_change", args=[batch.ids[0]])).text
    assert "background removal" in page and "crowd removal" in page
    assert 'name="redemptions-0-tool"' not in page  # shown, not editable
    assert "redemptions-TOTAL_FORMS" in page
    assert str(UnlockCode.objects.get()) in page


def test_editing_a_code_keeps_its_uses(staff):
    batch = issue(1, max_uses=3, expires_at=None, label="fair")
    row = UnlockCode.objects.get()
    redeem(batch.displayed[0], "cutout")
    data = {
        "label": "fair 2",
        "max_uses": 5,
        "expires_at_0": "",
        "expires_at_1": "",
        "active": "on",
        "redemptions-TOTAL_FORMS": 1,
        "redemptions-INITIAL_FORMS": 1,
        "redemptions-MIN_NUM_FORMS": 0,
        "redemptions-MAX_NUM_FORMS": 1000,
    }
    response = staff.post(reverse("admin:unlock_unlockcode_change", args=[row.pk]), data)
    assert response.status_code == 302, response.context["errors"] if response.context else response
    row.refresh_from_db()
    assert (row.label, row.max_uses, row.used) == ("fair 2", 5, 1)
    data["max_uses"] = 0
    refused = staff.post(reverse("admin:unlock_unlockcode_change", args=[row.pk]), data)
    assert refused.status_code == 200 and UnlockCode.objects.get().max_uses == 5


def test_admin_pages_add_no_inline_scripts_or_styles(staff):
    make_states()
    pages = [
        staff.get(reverse(GENERATE)),
        generate(staff, count=2),
        staff.get(reverse(CHANGELIST)),
        staff.get(reverse("admin:unlock_unlockcode_change", args=[UnlockCode.objects.first().pk])),
    ]
    for page in pages:
        assert page.status_code == 200
        assert "Content-Security-Policy" in page
        assert no_inline_scripts_or_styles(page.text)
