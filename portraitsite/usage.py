"""Usage totals for the operator: how many uploads, previews, unlocks and failures per day and
tool, and what the providers billed. Nothing about anyone.

Each total is one row keyed by (day, tool, name). No row holds an address, a user agent, a token,
a code, an image or a time finer than the day, so the admin can show a week's work without the
site knowing who did it. Rows older than RETENTION_DAYS are deleted on write: the first count of
a total each day deletes them (`manage.py purge_usage` does the same by hand).

Counting is one conditional UPDATE (`value = value + n`, computed by the database, never read into
Python): every event adds exactly once, however many threads and processes count at the same
moment. The first event of a day inserts the row; if another process inserted it first, the
unique constraint refuses ours and the UPDATE runs instead. A failure to count is logged and
swallowed: a visitor's upload never fails because a total could not be written.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import functools
import logging
from collections.abc import Callable, Iterator
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from portraitsite.models import DailyCount

logger = logging.getLogger(__name__)

RETENTION_DAYS = 400

# The names counted, in the order the admin shows them. Failures are "failed:<reason>".
UPLOADS = "uploads"
PREVIEWS = "previews"
UNLOCKS = "unlocks"
REMOVEBG_CREDITS = "removebg_credits"
DASHSCOPE_CALLS = "dashscope_calls"
FAILED = "failed:"
COLUMNS = (UPLOADS, PREVIEWS, UNLOCKS, REMOVEBG_CREDITS, DASHSCOPE_CALLS)


def today() -> datetime.date:
    return timezone.now().date()  # UTC (TIME_ZONE): one day boundary for every process


def count(tool: str, name: str, amount: float | int | Decimal = 1) -> None:
    """Add `amount` to today's total `name` for `tool`. Never raises: see the module's docstring."""
    amount = Decimal(str(amount))
    if not amount:
        return
    try:
        _add(today(), tool, name, amount)
    except Exception as exc:  # a database error, or none reachable: the event happened all the same
        logger.warning("Could not count %s for %s: %s", name, tool or "-", type(exc).__name__)


def _add(day: datetime.date, tool: str, name: str, amount: Decimal) -> None:
    rows = DailyCount.objects.filter(day=day, tool=tool, name=name)
    if rows.update(value=F("value") + amount):
        return
    try:
        with transaction.atomic():  # a savepoint: a lost insert race must not spoil an outer transaction
            DailyCount.objects.create(day=day, tool=tool, name=name, value=amount)
    except IntegrityError:
        # Another thread or process created today's row between our UPDATE and INSERT.
        rows.update(value=F("value") + amount)
        return
    # The first count of a total each day also deletes what is past retention: a few small DELETEs
    # a day on an indexed column, and no scheduled job for the operator to forget.
    purge(day)


def failed(tool: str, reason: str) -> None:
    count(tool, FAILED + reason)


# Why an upload was refused, by the status of the answer.
UPLOAD_REFUSALS = {400: "upload_invalid", 413: "upload_too_large", 429: "upload_rate_limited", 503: "upload_busy"}


def counts_uploads(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Count what the upload view answered: an accepted upload (303), or a refusal by reason."""

    @functools.wraps(view)
    def counted(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if response.status_code == 303:
            count(_posted_tool(request), UPLOADS)
        elif response.status_code in UPLOAD_REFUSALS:
            failed(_posted_tool(request), UPLOAD_REFUSALS[response.status_code])
        return response

    return counted


def _posted_tool(request: HttpRequest) -> str:
    """The tool the visitor chose, if the view read the form; "" otherwise. Reading it here must not
    parse a body the view refused unread (too large), and only the site's own tools are stored,
    never whatever text a request carried."""
    from segmentation.forms import UploadForm

    if "_post" not in request.__dict__:  # Django caches the parsed form there; unset = never read
        return ""
    tool = request.POST.get("mode", "")
    return tool if tool in dict(UploadForm.base_fields["mode"].choices) else ""


# --- Which tool a provider call is made for ------------------------------------------------------
# A provider client does not know the job it works for; the job phase says so around its work, and
# what the provider bills is counted under that tool.

_tool: contextvars.ContextVar[str] = contextvars.ContextVar("usage_tool", default="")


@contextlib.contextmanager
def working_for(tool: str) -> Iterator[None]:
    reset = _tool.set(tool)
    try:
        yield
    finally:
        _tool.reset(reset)


def count_for_current_tool(name: str, amount: float | int | Decimal = 1) -> None:
    count(_tool.get(), name, amount)


# --- Keeping and reading ---------------------------------------------------------------------------------


def purge(now: datetime.date | None = None) -> int:
    """Delete the totals older than RETENTION_DAYS; how many rows went."""
    cutoff = (now or today()) - datetime.timedelta(days=RETENTION_DAYS)
    deleted, _by_model = DailyCount.objects.filter(day__lt=cutoff).delete()
    return deleted


def table(days: int, now: datetime.date | None = None) -> dict:
    """The last `days` days as rows for the admin: {"columns", "failure_reasons", "rows", "totals"}.

    Each row is (day, tool, {name: value}); days and tools with no events have no row."""
    end = now or today()
    start = end - datetime.timedelta(days=days - 1)
    found: dict[tuple[datetime.date, str], dict[str, Decimal]] = {}
    reasons: set[str] = set()
    totals: dict[str, Decimal] = {}
    for day, tool, name, value in (
        DailyCount.objects.filter(day__gte=start, day__lte=end)
        .order_by("-day", "tool", "name")
        .values_list("day", "tool", "name", "value")
    ):
        found.setdefault((day, tool), {})[name] = value
        totals[name] = totals.get(name, Decimal(0)) + value
        if name.startswith(FAILED):
            reasons.add(name)
    return {
        "columns": list(COLUMNS),
        "failure_reasons": sorted(reasons),
        "rows": [(day, tool, values) for (day, tool), values in found.items()],
        "totals": totals,
        "start": start,
        "end": end,
    }
