"""manage.py issue_codes: codes on stdout, one per line or as CSV, the same rules as the admin."""

import csv
import datetime
import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from unlock import codes
from unlock.models import UnlockCode
from unlock.redemption import redeem

pytestmark = pytest.mark.django_db

DISPLAYED = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}")


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("issue_codes", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_codes_are_printed_one_per_line_and_work():
    out, err = run("--count", "5", "--uses", "2", "--label", "spring fair")
    lines = out.splitlines()
    assert len(lines) == 5 and all(DISPLAYED.fullmatch(line) for line in lines)
    assert "5 codes issued" in err  # the note goes to stderr, so stdout is only codes
    rows = UnlockCode.objects.all()
    assert {(row.max_uses, row.label, row.expires_at) for row in rows} == {(2, "spring fair", None)}
    assert {row.hint for row in rows} == {line[-4:] for line in lines}
    redeem(lines[0], "crowd")
    assert UnlockCode.objects.get(hint=lines[0][-4:]).used == 1


def test_days_set_the_expiry_from_now():
    before = timezone.now()
    run("--count", "1", "--days", "30")
    expires = UnlockCode.objects.get().expires_at
    assert before + datetime.timedelta(days=30) - datetime.timedelta(seconds=1) <= expires
    assert expires <= timezone.now() + datetime.timedelta(days=30)


def test_a_date_means_valid_through_that_day():
    day = timezone.localdate() + datetime.timedelta(days=10)
    run("--count", "1", "--expires", day.isoformat())
    expires = timezone.localtime(UnlockCode.objects.get().expires_at)
    assert (expires.date(), expires.time()) == (day + datetime.timedelta(days=1), datetime.time(0))


def test_csv_has_a_header_and_one_row_per_code():
    day = timezone.localdate() + datetime.timedelta(days=1)
    out, _ = run("--count", "3", "--uses", "4", "--expires", day.isoformat(), "--label", "press", "--csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["code", "uses", "expires", "label"]
    assert len(rows) == 4
    for code, uses, expires, label in rows[1:]:
        assert DISPLAYED.fullmatch(code)
        assert (uses, label) == ("4", "press")
        # The last day the code works, as --expires took it (stored as the next midnight).
        assert expires == day.isoformat()
        stored = timezone.localtime(UnlockCode.objects.get(hint=code[-4:]).expires_at)
        assert stored.date() == day + datetime.timedelta(days=1)


@pytest.mark.parametrize(
    "args, complaint",
    [
        (["--count", "0"], "--count"),
        (["--count", "1001"], "--count"),
        (["--count", "1", "--uses", "0"], "--uses"),
        (["--count", "1", "--expires", "2001-01-01"], "already passed"),
        (["--count", "1", "--expires", "next week"], "--expires"),
        (["--count", "1", "--days", "0"], "--days"),
        (["--count", "1", "--label", "x" * 101], "--label"),
    ],
)
def test_invalid_options_are_refused_and_nothing_is_created(args, complaint):
    with pytest.raises(CommandError, match=complaint):
        run(*args)
    assert not UnlockCode.objects.exists()


def test_days_and_date_together_are_refused():
    with pytest.raises(CommandError):
        run("--count", "1", "--days", "3", "--expires", "2099-01-01")


def test_the_printed_codes_are_not_kept():
    out, _ = run("--count", "3")
    stored = repr(list(UnlockCode.objects.values_list()))
    for line in out.splitlines():
        assert codes.normalise(line) not in stored and line not in stored
