"""Redeeming and releasing codes: each reason a code is refused, and giving a use back."""

import datetime

import pytest
from django.utils import timezone

from unlock import codes
from unlock.issuing import issue
from unlock.models import Redemption, UnlockCode
from unlock.redemption import CodeRejected, redeem, release

pytestmark = pytest.mark.django_db


def issue_one(**kwargs) -> tuple[str, UnlockCode]:
    options = {"max_uses": 1, "expires_at": None, "label": ""} | kwargs
    batch = issue(1, **options)
    return codes.display(batch.codes[0]), UnlockCode.objects.get(pk=batch.ids[0])


def rejection(code: str) -> CodeRejected:
    with pytest.raises(CodeRejected) as caught:
        redeem(code, "cutout")
    return caught.value


def test_a_valid_code_is_redeemed_once_and_records_the_tool():
    code, row = issue_one()
    redemption_id = redeem(code, "crowd")
    row.refresh_from_db()
    assert row.used == 1
    redemption = Redemption.objects.get(pk=redemption_id)
    assert (redemption.code_id, redemption.tool) == (row.pk, "crowd")


def test_a_code_is_accepted_as_people_type_it():
    code, row = issue_one()
    typed = "  " + code.lower().replace("-", " ") + " "
    redeem(typed, "cutout")
    row.refresh_from_db()
    assert row.used == 1


def test_a_used_up_code_is_refused_as_used_up():
    code, _ = issue_one(max_uses=2)
    redeem(code, "cutout")
    redeem(code, "crowd")
    refused = rejection(code)
    assert (refused.reason, refused.status) == ("used_up", 403)
    assert "used" in refused.message


def test_an_expired_code_is_refused_as_expired():
    code, _ = issue_one(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    refused = rejection(code)
    assert (refused.reason, refused.status) == ("expired", 403)
    assert "expired" in refused.message


def test_a_deactivated_code_is_refused_as_inactive():
    code, row = issue_one()
    UnlockCode.objects.filter(pk=row.pk).update(active=False)
    refused = rejection(code)
    assert (refused.reason, refused.status) == ("inactive", 403)
    assert "withdrawn" in refused.message


def test_an_unknown_code_is_refused_as_unknown():
    issue_one()
    refused = rejection(codes.display(codes.generate()))
    assert (refused.reason, refused.status) == ("unknown", 403)
    assert "does not exist" in refused.message


@pytest.mark.parametrize(
    "typed", ["", "ABCD-EFGH", "ABCD-EFGH-JKMN-PQRU", "ABCD-EFGH-JKMN-PQRS-T", "ABCD!EFGH#JKMN?PQRS"]
)
def test_a_malformed_code_is_refused_with_400(typed):
    refused = rejection(typed)
    assert (refused.reason, refused.status) == ("malformed", 400)
    assert "16 letters and digits" in refused.message


def test_refusals_never_change_the_count():
    code, row = issue_one(max_uses=1)
    redeem(code, "cutout")
    for _ in range(3):
        rejection(code)
    row.refresh_from_db()
    assert row.used == 1
    assert row.redemptions.count() == 1


def test_release_gives_the_use_back():
    code, row = issue_one()
    redemption_id = redeem(code, "cutout")
    assert rejection(code).reason == "used_up"
    release(redemption_id)
    row.refresh_from_db()
    assert row.used == 0
    assert not Redemption.objects.filter(pk=redemption_id).exists()
    redeem(code, "cutout")  # usable again


def test_release_is_idempotent():
    code, row = issue_one(max_uses=3)
    first = redeem(code, "cutout")
    redeem(code, "crowd")
    release(first)
    release(first)
    release(987654321)  # never existed
    row.refresh_from_db()
    assert row.used == 1
    assert row.redemptions.count() == 1


def test_a_rejection_does_not_carry_the_code_in_its_text():
    code = codes.display(codes.generate())
    refused = rejection(code)
    for text in (str(refused), repr(refused), refused.message):
        assert codes.normalise(code) not in codes.normalise_fragment(text)


def test_an_unknown_tool_is_a_programming_error():
    code, _ = issue_one()
    with pytest.raises(ValueError):
        redeem(code, "sharpen")
