"""Redeeming a code: one conditional UPDATE reserves a use, so a code is never oversold.

`redeem` reserves one use and records a Redemption; `release` gives the use back when the
full-resolution work it paid for failed, so a failure never costs the visitor their code.
"""

from __future__ import annotations

import datetime
import functools
import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from unlock import codes
from unlock.models import Redemption, State, UnlockCode

logger = logging.getLogger(__name__)

# reason → message for the visitor: what happened, and what to do about it.
MESSAGES = {
    "malformed": codes.MALFORMED_MESSAGE,
    "unknown": _("This unlock code does not exist. Please check it for typos."),
    "used_up": _("This unlock code has already been used as often as it allows."),
    "expired": _("This unlock code has expired."),
    "inactive": _("This unlock code has been withdrawn and no longer works."),
}
_REASON_FOR_STATE = {State.USED_UP: "used_up", State.EXPIRED: "expired", State.DEACTIVATED: "inactive"}


class CodeRejected(Exception):
    """The code cannot unlock anything; `message` is for the visitor, `status` for the response."""

    def __init__(self, reason: str):
        self.reason = reason
        self.message = gettext(MESSAGES[reason])
        self.status = 400 if reason == "malformed" else 403
        super().__init__(reason)  # the reason only: exceptions end up in logs, codes must not


def redeem(code: str, tool: str) -> int:
    """Reserve one use of `code` for `tool` and return the Redemption's id, or raise CodeRejected."""
    _release_stale_now_and_then()
    if tool not in Redemption.Tool.values:
        raise ValueError(f"unknown tool {tool!r}")
    try:
        normalised = codes.normalise(code)
    except ValidationError:
        raise CodeRejected("malformed") from None
    code_id = _code_id(normalised)
    if code_id is None:
        raise CodeRejected("unknown")

    now = timezone.now()
    # The transaction begins with the write, so SQLite takes its write lock first and waits (busy
    # timeout) instead of failing on a lock upgrade; PostgreSQL re-checks the WHERE clause on the
    # row a concurrent UPDATE committed. Either way only max_uses reservations can succeed.
    with transaction.atomic():
        reserved = UnlockCode.objects.filter(pk=code_id).redeemable(now).update(used=F("used") + 1)
        if reserved:
            redemption = Redemption.objects.create(code_id=code_id, tool=tool, created_at=now)
    if not reserved:
        current = UnlockCode.objects.filter(pk=code_id).first()
        if current is None:  # deleted by staff a moment ago
            raise CodeRejected("unknown")
        # A code that is redeemable again (a use was released meanwhile) still lost this race.
        raise CodeRejected(_REASON_FOR_STATE.get(current.state, "used_up"))
    return redemption.pk


# Seconds between the attempts of a confirm or release that met an unreachable database: about
# 30 s in all, which covers a restart or a fail-over. Both are idempotent, so an attempt whose
# answer was lost with the connection is safe to repeat: it never gives or spends a use twice.
RETRY_DELAYS = (0.5, 1, 2, 4, 8, 15)


def _retried(operation: Callable[[int], bool]) -> Callable[[int], bool]:
    @functools.wraps(operation)
    def attempt(redemption_id: int) -> bool:
        for delay in (*RETRY_DELAYS, None):
            try:
                return operation(redemption_id)
            except (OperationalError, InterfaceError) as exc:
                if delay is None:
                    raise
                logger.warning(
                    "%s of a code use failed (%s); retrying in %ss.", operation.__name__, type(exc).__name__, delay
                )
                connection.close()  # the next attempt opens a new one
                time.sleep(delay)

    return attempt


def _code_id(normalised: str) -> int | None:
    """The id of the code stored under one of its digests; a code found under an older digest is
    moved to today's, so the old form serves each code at most once."""
    current, *older = codes.digests(normalised)
    found = UnlockCode.objects.filter(digest__in=[current, *older]).values_list("pk", "digest").first()
    if found is None:
        return None
    code_id, stored = found
    if stored != current:
        UnlockCode.objects.filter(pk=code_id, digest=stored).update(digest=current)
    return code_id


@_retried
def release(redemption_id: int) -> bool:
    """Give back the use a redemption reserved; True if this call gave it back. Releasing twice,
    an unknown id or a delivered use does nothing (False)."""
    code_id = Redemption.objects.filter(pk=redemption_id).values_list("code_id", flat=True).first()
    if code_id is None:
        return False
    # Only the caller whose DELETE removed the row gives the use back, so concurrent or repeated
    # releases decrement once.
    with transaction.atomic():
        # A delivered use is spent for good: nothing late (a stale task, a sweep) can undo it.
        deleted, _per_model = Redemption.objects.filter(pk=redemption_id, delivered=False).delete()
        if deleted:
            UnlockCode.objects.filter(pk=code_id, used__gt=0).update(used=F("used") - 1)
    return bool(deleted)


@_retried
def confirm(redemption_id: int) -> bool:
    """The result this use paid for exists: mark it delivered, after which it can never be given
    back. True only if this call changed exactly one row, or (a retried attempt whose first answer
    was lost) the row is delivered already; False when the use was released meanwhile (a deadline
    gave it back), and then nothing may be delivered. Only the worker holding the redemption
    confirms it, so a delivered row is its own."""
    if Redemption.objects.filter(pk=redemption_id, delivered=False).update(delivered=True) == 1:
        return True
    return Redemption.objects.filter(pk=redemption_id, delivered=True).exists()


def release_stale(older_than: datetime.timedelta) -> int:
    """Give back every use that was reserved long ago and never delivered: its job lived in the
    memory of a process that is gone. Any process that still held it would have given it back at
    the job deadline already, so `older_than` is at least that deadline."""
    cutoff = timezone.now() - older_than
    stale = list(Redemption.objects.filter(delivered=False, created_at__lt=cutoff).values_list("pk", flat=True))
    for redemption_id in stale:
        release(redemption_id)
    return len(stale)


_stale_checked_at = 0.0
_stale_lock = threading.Lock()


def _release_stale_now_and_then() -> None:
    """Before a redemption, at most once per JOB_DEADLINE_SECONDS in each process: a visitor whose
    use was stranded by a restart gets it back by the time they try again."""
    global _stale_checked_at
    with _stale_lock:
        if time.monotonic() - _stale_checked_at < settings.JOB_DEADLINE_SECONDS and _stale_checked_at:
            return
        _stale_checked_at = time.monotonic()
    released = release_stale(datetime.timedelta(seconds=2 * settings.JOB_DEADLINE_SECONDS))
    if released:
        logger.warning("Gave back %s code uses reserved by a process that stopped before delivering.", released)
