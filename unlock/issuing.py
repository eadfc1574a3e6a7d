"""Issuing a batch of codes: the one moment plaintext exists on the server, in memory only.

The admin's "Generate codes" page and the issue_codes command both call `issue`, show the codes
once and let them go; the database keeps digests and hints.
"""

from __future__ import annotations

import csv
import datetime
import io
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from unlock import codes
from unlock.models import UnlockCode

# A collision of 80 random bits is all but impossible; retries exist so that the unique
# constraint, not luck, is what guarantees uniqueness.
COLLISION_RETRIES = 5


@dataclass(frozen=True)
class IssuedBatch:
    codes: list[str]  # normalised plaintext, to be shown once
    max_uses: int
    expires_at: datetime.datetime | None
    label: str
    ids: list[int]

    @property
    def displayed(self) -> list[str]:
        return [codes.display(code) for code in self.codes]

    @property
    def last_day(self) -> datetime.date | None:
        """The last day the codes work when they expire at a midnight (site time), which is how a
        date chosen by staff is stored (valid through that day, GenerateCodesForm.expires_at):
        staff see the day they chose, not the next day's midnight. None otherwise."""
        if self.expires_at is None:
            return None
        local = timezone.localtime(self.expires_at)
        if local.time() != datetime.time(0):
            return None
        return local.date() - datetime.timedelta(days=1)

    def as_csv(self) -> str:
        """code,uses,expires,label — one row per code, for a spreadsheet or a mail merge. `expires`
        is the last day (YYYY-MM-DD, inclusive, as issue_codes --expires takes it) for a date, the
        moment (ISO 8601) for a number of days, empty for never."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["code", "uses", "expires", "label"])
        if self.last_day is not None:
            expires = self.last_day.isoformat()
        else:
            expires = self.expires_at.isoformat() if self.expires_at else ""
        for code in self.displayed:
            writer.writerow([code, self.max_uses, expires, _spreadsheet_safe(self.label)])
        return out.getvalue()


def _spreadsheet_safe(text: str) -> str:
    # A label like "=HYPERLINK(...)" would run as a formula in the spreadsheet the CSV is opened in.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class CollisionError(RuntimeError):
    pass


def issue(count: int, max_uses: int, expires_at: datetime.datetime | None, label: str) -> IssuedBatch:
    """Create `count` codes; all or none (one transaction)."""
    plaintexts: list[str] = []
    ids: list[int] = []
    with transaction.atomic():
        for _ in range(count):
            for _attempt in range(COLLISION_RETRIES):
                code = codes.generate()
                try:
                    with transaction.atomic():  # a savepoint, so a collision does not spoil the batch
                        row = UnlockCode.objects.create(
                            digest=codes.digest(code),
                            hint=codes.hint(code),
                            label=label,
                            max_uses=max_uses,
                            expires_at=expires_at,
                        )
                except IntegrityError:
                    continue
                plaintexts.append(code)
                ids.append(row.pk)
                break
            else:
                raise CollisionError(f"no unique code after {COLLISION_RETRIES} attempts")
    return IssuedBatch(codes=plaintexts, max_uses=max_uses, expires_at=expires_at, label=label, ids=ids)
