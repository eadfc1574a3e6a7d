"""The stored side of codes: what a row holds (and does not), its state, and issuing batches."""

import csv
import datetime
import io

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from unlock import codes, issuing
from unlock.issuing import issue
from unlock.models import Redemption, State, UnlockCode
from unlock.redemption import redeem

pytestmark = pytest.mark.django_db


def test_a_code_is_stored_as_digest_and_hint_only():
    batch = issue(1, max_uses=1, expires_at=None, label="fair")
    plaintext = batch.codes[0]
    row = UnlockCode.objects.get(pk=batch.ids[0])
    assert row.digest == codes.digest(plaintext)
    assert row.hint == plaintext[-4:]
    stored = " ".join(str(value) for value in UnlockCode.objects.values_list().get(pk=row.pk))
    assert plaintext not in stored
    assert plaintext[:12] not in stored


def test_str_shows_only_the_hint():
    batch = issue(1, max_uses=1, expires_at=None, label="")
    row = UnlockCode.objects.get(pk=batch.ids[0])
    assert str(row) == f"…-{batch.codes[0][-4:]}"
    assert batch.codes[0][:12] not in str(row) + repr(row)


def test_a_redemption_holds_nothing_personal():
    assert {field.name for field in Redemption._meta.get_fields()} == {"id", "code", "created_at", "tool", "delivered"}
    batch = issue(1, max_uses=1, expires_at=None, label="")
    redemption = Redemption.objects.get(pk=redeem(codes.display(batch.codes[0]), "cutout"))
    assert redemption.tool == "cutout"
    assert redemption.code_id == batch.ids[0]


def test_states_follow_active_uses_and_expiry():
    now = timezone.now()
    past, future = now - datetime.timedelta(minutes=1), now + datetime.timedelta(days=1)
    cases = {
        State.ACTIVE: UnlockCode(max_uses=2, used=1, expires_at=future),
        State.USED_UP: UnlockCode(max_uses=2, used=2, expires_at=future),
        State.EXPIRED: UnlockCode(max_uses=2, used=1, expires_at=past),
        State.DEACTIVATED: UnlockCode(max_uses=2, used=0, active=False),
    }
    for n, (state, row) in enumerate(cases.items()):
        row.digest, row.hint = f"{n:064x}", "AAAA"
        row.save()
        assert row.state == state
        # The queryset agrees with the model, and the states do not overlap.
        assert list(UnlockCode.objects.in_state(state).values_list("pk", flat=True)) == [row.pk]
    assert UnlockCode.objects.redeemable().count() == 1


def test_saving_a_stale_row_does_not_undo_a_redemption():
    batch = issue(1, max_uses=3, expires_at=None, label="old")
    stale = UnlockCode.objects.get(pk=batch.ids[0])  # loaded by a staff member's change form
    redeem(codes.display(batch.codes[0]), "cutout")
    stale.label = "new"
    stale.save()
    fresh = UnlockCode.objects.get(pk=stale.pk)
    assert (fresh.label, fresh.used) == ("new", 1)


def test_max_uses_cannot_go_below_what_was_used():
    batch = issue(1, max_uses=3, expires_at=None, label="")
    redeem(codes.display(batch.codes[0]), "cutout")
    redeem(codes.display(batch.codes[0]), "cutout")
    row = UnlockCode.objects.get(pk=batch.ids[0])
    row.max_uses = 1
    with pytest.raises(ValidationError) as caught:
        row.full_clean()
    assert "max_uses" in caught.value.message_dict
    # And the database refuses it even if clean was skipped.
    with pytest.raises(IntegrityError), transaction.atomic():
        UnlockCode.objects.filter(pk=row.pk).update(max_uses=1)


def test_issue_retries_when_a_code_collides(monkeypatch):
    first = issue(1, max_uses=1, expires_at=None, label="")
    taken = first.codes[0]
    sequence = iter([taken, taken, "ABCDEFGHJKMNPQRS"])
    monkeypatch.setattr(issuing.codes, "generate", lambda: next(sequence))
    second = issue(1, max_uses=1, expires_at=None, label="")
    assert second.codes == ["ABCDEFGHJKMNPQRS"]
    assert UnlockCode.objects.count() == 2


def test_issue_gives_up_rather_than_loop_forever(monkeypatch):
    taken = issue(1, max_uses=1, expires_at=None, label="").codes[0]
    monkeypatch.setattr(issuing.codes, "generate", lambda: taken)
    with pytest.raises(issuing.CollisionError):
        issue(3, max_uses=1, expires_at=None, label="")
    assert UnlockCode.objects.count() == 1  # all or nothing


def test_the_csv_lists_each_code_with_its_terms():
    expires = timezone.now().replace(microsecond=0) + datetime.timedelta(days=3)
    batch = issue(3, max_uses=2, expires_at=expires, label="=cmd()")
    rows = list(csv.reader(io.StringIO(batch.as_csv())))
    assert rows[0] == ["code", "uses", "expires", "label"]
    assert [row[0] for row in rows[1:]] == batch.displayed
    assert {tuple(row[1:]) for row in rows[1:]} == {("2", expires.isoformat(), "'=cmd()")}
