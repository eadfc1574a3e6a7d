"""Running jobs: a bounded worker pool inside the web process, and the two phases of a job.

Phase one (`start`) runs the engine's start() at upload and stores the watermarked preview.
Phase two (`finish`) runs after `begin_unlock` has reserved a use of the visitor's code; it stores
the full-resolution result and confirms the use, or gives the code back if anything fails, so a
failure never costs a visitor their code. `get` is the job as pages and workers see it: a job stuck
past JOB_DEADLINE_SECONDS in either phase is failed (or given its code back) there.

The pool is per process. With the Redis store a job still runs in the process that accepted it,
and any process can serve its pages, because all state lives in the store.
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
import time
from collections.abc import Callable
from queue import SimpleQueue

from django.conf import settings
from django.db import close_old_connections
from django.utils import translation
from django.utils.translation import gettext as _

from portraitsite import ratelimit, usage
from portraitsite.outages import unreachable_service
from segmentation import previews, quota, store
from segmentation.engines import EngineError, engine_named, engines_in_use
from segmentation.intake import Photo
from segmentation.quota import ClientFull
from segmentation.store import StoreFull
from unlock.redemption import CodeRejected, confirm, redeem, release

__all__ = [
    "BadChoice",
    "ClientFull",
    "CodeRejected",
    "JobBusy",
    "JobGone",
    "PoolFull",
    "SlowDown",
    "StoreFull",
    "TooManyChoices",
    "begin_unlock",
    "choose",
    "create",
    "delete",
    "finish",
    "get",
    "pool",
    "start",
]

logger = logging.getLogger(__name__)


EXIT_GRACE_SECONDS = 20


class Pool:
    """A fixed set of worker threads that refuses work instead of queueing without bound.

    The threads are daemons: a process that stops does not wait for the jobs in flight. Their
    photos live in this process's memory and go with it (on Redis, the deadline fails them), and a
    code reserved for one is given back by unlock.redemption.release_stale.
    """

    def __init__(self, workers: int, queue: int):
        self.capacity = workers + queue
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._tasks: SimpleQueue = SimpleQueue()
        self._in_flight = 0
        self._count_lock = threading.Lock()
        for number in range(workers):
            threading.Thread(target=self._work, name=f"job-{number}", daemon=True).start()
        # At exit, let running jobs end first (bounded): a daemon thread stopped inside OpenCV
        # aborts the whole process instead of letting it exit cleanly.
        atexit.register(self.drain, EXIT_GRACE_SECONDS)

    def drain(self, timeout: float) -> bool:
        """Wait until no task is queued or running; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self._in_flight

    def submit(self, task: Callable[..., None], *args) -> bool:
        """Run `task(*args)` in the pool; False (nothing started) when the pool and queue are full."""
        if not self._slots.acquire(blocking=False):
            return False
        with self._count_lock:
            self._in_flight += 1
        self._tasks.put((task, args))
        return True

    def _work(self) -> None:
        while True:
            task, args = self._tasks.get()
            try:
                task(*args)
            except Exception as exc:
                if unreachable_service(exc):  # an outage, already answered 503 to the visitors
                    logger.warning(
                        "Job task %s stopped: the %s is unreachable.", task.__name__, unreachable_service(exc)
                    )
                else:
                    logger.exception("Job task %s crashed.", getattr(task, "__name__", task))
            finally:
                with self._count_lock:
                    self._in_flight -= 1
                self._slots.release()
            # Worker threads must not keep database connections open. Failing to close one must
            # not end the thread: the pool would be a worker short for the life of the process.
            try:
                close_old_connections()
            except Exception as exc:
                logger.warning("Job worker could not close its database connection: %s", type(exc).__name__)

    @property
    def in_flight(self) -> int:
        return self._in_flight


_pool: Pool | None = None
_pool_lock = threading.Lock()


def pool() -> Pool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = Pool(settings.JOB_WORKERS, settings.JOB_QUEUE)
        return _pool


class PoolFull(Exception):
    """Every worker is busy and the queue is full: nothing was started, nothing was spent."""

    retry_after = 30


class SlowDown(Exception):
    """This client sent more uploads for a paid provider than PAID_UPLOADS_PER_MINUTE."""

    def __init__(self, retry_after: int):
        super().__init__(f"paid uploads limited, retry after {retry_after}s")
        self.retry_after = retry_after


class JobGone(Exception):
    """The job expired or was deleted while it was being unlocked."""


class JobBusy(Exception):
    """The job is making its preview, its full result or another choice: try again in a moment."""


class BadChoice(Exception):
    """The people chosen are not the job's (unknown ids), or nobody was chosen."""


class TooManyChoices(Exception):
    """The job has drawn CHOICES_PER_JOB choices of people already."""


# Room reserved in the store before it is used (segmentation.store.reserve). The full-resolution
# result is an RGBA PNG, at worst uncompressed. Phase one stores two WebP previews of at most
# 0.25 MP (tens of kB each) and the engine's carry: a matte or a patch at the working size
# (hundreds of kB), or remove.bg's full result with REMOVEBG_FULL_RESULT=upfront.
RESULT_BYTES_PER_PIXEL = 4
PHASE_ONE_BYTES = 2 * 1024**2


def result_bytes(photo_meta: dict) -> int:
    """The most a full-resolution result of this photo can take in the store."""
    return RESULT_BYTES_PER_PIXEL * photo_meta.get("width", 0) * photo_meta.get("height", 0)


def unlock_bytes(job: store.Job) -> int:
    """Room making the full result needs: the result, and for remove.bg also its raw full cutout,
    which `finish` hands back as Result.carry and the job keeps, so that a changed choice of people
    after unlocking needs no call (engines.removebg)."""
    return result_bytes(job.photo_meta) * (2 if job.engine == "removebg" else 1)


def phase_one_bytes(engine: str, photo_meta: dict) -> int:
    if engine == "removebg" and settings.REMOVEBG_FULL_RESULT == "upfront":
        return PHASE_ONE_BYTES + result_bytes(photo_meta)  # its carry is the full result
    return PHASE_ONE_BYTES


# Every upload a paid provider serves is one billed call (the unlock's call is paid by a code).
PROVIDER_SCOPE, PROVIDER_WINDOW = "provider-calls", 3600
PAID_UPLOAD_SCOPE = "paid-upload"


def _engine_for_upload(mode: str, client: str) -> tuple[str, str]:
    """The engine that serves this upload, and a note for the visitor about it. Past a paid
    provider's PROVIDER_CALLS_PER_HOUR the embedded engine serves: a result now is better for the
    visitor than a busy page, and the bill has a ceiling. Raises SlowDown past the client's
    PAID_UPLOADS_PER_MINUTE."""
    engine = engines_in_use()[mode]
    if engine == "local":
        return engine, ""
    ceiling = settings.PROVIDER_CALLS_PER_HOUR
    if not ratelimit.check(PROVIDER_SCOPE, engine, ceiling, PROVIDER_WINDOW).allowed:
        logger.warning("%s reached PROVIDER_CALLS_PER_HOUR=%s; the local engine serves uploads.", engine, ceiling)
        return "local", _(
            "Our external service has reached its limit for this hour, so the site's own engine made this preview."
        )
    verdict = ratelimit.hit(PAID_UPLOAD_SCOPE, client, settings.PAID_UPLOADS_PER_MINUTE)
    if not verdict.allowed:
        raise SlowDown(verdict.retry_after)
    return engine, ""


def create(mode: str, photo: Photo, *, client: str, language: str = "en", spec: str = "") -> store.Job:
    """Admit an upload of `client` (a keyed hash, portraitsite.ratelimit.client_key) and queue its
    phase one. Raises SlowDown (too many paid uploads from this client), ClientFull (the client
    holds its share of the store), StoreFull or PoolFull; then nothing of the photo is kept."""
    engine, note = _engine_for_upload(mode, client)
    meta = photo.meta()
    growth = phase_one_bytes(engine, meta)
    now = time.time()
    expires_at = now + settings.JOB_TTL_SECONDS
    quota.admit(client, len(photo.data) + growth, expires_at)
    try:
        job = store.create(mode, engine, meta, photo.data, growth=growth, language=language, now=now, spec=spec)
    except BaseException:
        quota.forget(client, expires_at)
        raise
    if note:
        job.note = note
        store.save(job)
    if not pool().submit(start, job.token, photo, client):
        delete(job.token, client)
        raise PoolFull
    if engine != "local" and settings.PROVIDER_CALLS_PER_HOUR:
        ratelimit.record(PROVIDER_SCOPE, engine, PROVIDER_WINDOW)
    return job


def delete(token: str, client: str) -> None:
    """The visitor's "Delete now": the job and its images go at once, and its client's slot too
    (a failed job's slot went back when it failed)."""
    job = store.get(token)
    store.delete(token)
    if job is not None and job.state != store.FAILED:
        quota.forget(client, job.expires_at)


def get(token: str) -> store.Job | None:
    """The job, or None when unknown or expired. A job stuck past JOB_DEADLINE_SECONDS in either
    phase is turned failed (or back to locked, its code given back) here, whichever process serves
    the request: its worker may be gone with the process that ran it."""
    job = store.get(token)
    return _enforce_deadline(job) if job is not None else None


def _enforce_deadline(job: store.Job) -> store.Job:
    deadline = settings.JOB_DEADLINE_SECONDS
    now = time.time()
    # A queued job whose process died (a restart, a redeploy) would otherwise wait forever.
    stuck_since = (
        job.started_at if job.state == store.PROCESSING else job.created_at if job.state == store.QUEUED else None
    )
    if stuck_since and now - stuck_since > deadline:
        logger.warning("Job stuck %s for over %ss; marked failed.", job.state, deadline)
        store.fail(job, _("Processing took too long and was stopped. Please try again."))
    elif job.delivery == store.FINISHING and job.delivery_started_at and now - job.delivery_started_at > deadline:
        if job.redemption is not None and not release(job.redemption):
            return job  # confirmed a moment ago: the worker is saving the delivered result
        store.drop_reservation(job, store.RESULT)
        job.delivery, job.redemption = store.LOCKED, None
        job.delivery_error = _(
            "Preparing the full-resolution image took too long. Your code was not used; please try again."
        )
        logger.warning("Job stuck in finishing for over %ss; code released.", deadline)
        store.save(job)
    elif job.choosing_since and now - job.choosing_since > deadline:
        store.drop_reservation(job, store.RESULT)  # room for a new full result, when unlocked
        job.choosing_since = None
        job.choice_error = _("Redrawing the photo for your choice took too long. Please try again.")
        logger.warning("Job stuck drawing a choice for over %ss; choice dropped.", deadline)
        store.save(job)
    return job


# One unlock at a time per job, across threads and processes: two codes entered at once must not
# both be spent on the same photo. The flag lives as long as one redemption can take at most.
UNLOCKING, UNLOCKING_SECONDS = "unlocking", 30


def begin_unlock(job: store.Job, code: str) -> None:
    """Spend one use of `code` on the job's full-resolution result and queue the work (`finish`).

    Room for the result is reserved in the store here, not at upload: most jobs are never
    unlocked. Spends nothing when the job is already unlocked or being unlocked (another tab, or
    another code entered at the same moment). Raises CodeRejected when the code cannot pay,
    StoreFull when there is no room for the result, PoolFull when no worker can take the work,
    JobGone when the job vanished meanwhile, JobBusy while a choice of people is being drawn (the
    result must follow it); in every one of those cases the code keeps its use."""
    flagged = job
    if not store.claim_flag(flagged, UNLOCKING, UNLOCKING_SECONDS):
        return
    try:
        job = get(job.token)  # again, under the flag: another tab may have just unlocked it
        if job is None:
            raise JobGone
        if job.delivery != store.LOCKED:
            return
        if job.choosing:
            raise JobBusy
        store.reserve(job, store.RESULT, unlock_bytes(job))
        try:
            redemption = redeem(code, tool=job.mode)
        except BaseException:
            store.drop_reservation(job, store.RESULT)
            raise
        try:
            _start_finishing(job, redemption)
        except BaseException:
            release(redemption)  # a store that refused the write must not cost the visitor their code
            store.drop_reservation(job, store.RESULT)
            raise
    finally:
        store.drop_flag(flagged, UNLOCKING)


def _start_finishing(job: store.Job, redemption: int) -> None:
    """Hand the reserved use's work to the pool; the caller gives the use back if this raises."""
    job.delivery, job.redemption, job.delivery_error = store.FINISHING, redemption, ""
    job.delivery_started_at = time.time()
    if not store.save(job):
        raise JobGone
    if not pool().submit(finish, job.token, redemption):
        job.delivery, job.redemption = store.LOCKED, None
        store.save(job)
        raise PoolFull


def _photo_of(job: store.Job, original: bytes) -> Photo:
    return Photo.from_meta(original, job.photo_meta)


def in_visitors_language(task: Callable[[str], None]) -> Callable[..., None]:
    """Run a phase under the job's language: messages made in the worker speak the visitor's."""

    @functools.wraps(task)
    def run(token: str, *args) -> None:
        job = get(token)
        # What a provider bills during the phase is counted under the job's tool.
        with translation.override(job.language if job else None), usage.working_for(job.mode if job else ""):
            task(token, *args)

    return run


@in_visitors_language
def start(token: str, photo: Photo, client: str = "") -> None:
    """Phase one: the engine's first pass, the previews, and the job marked ready or failed. The
    uploader's `client` key is held by this call only, never stored with the job: a job that fails
    gives its client's slot back at once."""
    job = get(token)
    if job is None or job.state != store.QUEUED:
        return
    job.state, job.started_at = store.PROCESSING, time.time()
    store.save(job)
    try:
        engine = engine_named(job.mode, job.engine, job.spec)
        draft = engine.start(photo)
        people = _listed(engine.people(draft.carry))
        preview = previews.render_preview(draft.preview)
        before = previews.render_before(photo.working if photo.working is not None else photo.open_reduced(1024))
        job = get(token)
        if job is None or job.state != store.PROCESSING:
            return  # deleted, expired or timed out meanwhile: keep nothing
        # A store that refuses a write (Redis at maxmemory) fails the job now, not at the deadline.
        store.put_image(job, "preview", preview)
        store.put_image(job, "before", before)
        if draft.carry is not None:
            store.put_image(job, "carry", draft.carry)
        usage.count(job.mode, usage.PREVIEWS)  # made (and paid for), whether or not it is still wanted
        job.state, job.note = store.READY, " ".join(filter(None, (job.note, draft.note)))
        job.people = people
        store.save(job)  # a delete that raced with the writes above purges them here
        store.drop_reservation(job, store.UPLOAD)  # all that phase one stores is stored
    except EngineError as exc:
        logger.warning(
            "Job failed in %s %s engine: %s", job.engine, job.mode, exc.operator_detail or exc.visitor_message
        )
        usage.failed(job.mode, "preview_unavailable" if exc.retryable else "preview_unusable")
        _record_failure(token, exc.visitor_message, client)
    except Exception:
        logger.exception("Job crashed in %s %s engine.", job.engine, job.mode)
        usage.failed(job.mode, "preview_crash")
        _record_failure(token, _("Something went wrong while processing this photo. Please try again."), client)


def _record_failure(token: str, message: str, client: str) -> None:
    job = get(token)
    if job is not None and job.state == store.PROCESSING:
        store.fail(job, message)  # its images go now, and so does its place in its client's share
        quota.forget(client, job.expires_at)


def finish(token: str, redemption: int) -> None:
    """Phase two (`_finish`), and whatever stops it — the job store gone with the job in it — the
    use goes back at once. Release is idempotent and never undoes a delivered (confirmed) use."""
    try:
        _finish(token, redemption)
    except Exception:
        from unlock.redemption import release

        release(redemption)
        raise


@in_visitors_language
def _finish(token: str, redemption: int) -> None:
    """Phase two: the full-resolution result, paid for by `redemption` (a reserved use of a code).
    Confirms it by delivering, or gives it back. The task acts only while the job is still waiting
    for this very redemption: a deadline may have given it back meanwhile, and the visitor may have
    unlocked again with another code."""
    job = get(token)
    if not _waiting_for(job, redemption):
        _give_back(token, redemption, "")
        return
    job.delivery_started_at = time.time()  # the deadline counts from here, not from the queue
    store.save(job)
    try:
        original = store.get_image(job, "original")
        if original is None:
            raise EngineError(_("This photo has expired. Please upload it again."), "original gone")
        result = engine_named(job.mode, job.engine, job.spec).finish(
            _photo_of(job, original), store.get_image(job, "carry")
        )
        job = get(token)
        if not _waiting_for(job, redemption):
            _give_back(token, redemption, "")  # deleted, expired or timed out before delivery
            return
        store.put_image(job, "result", result.data)
        # The carry stays after unlocking: a changed choice of people is made from it, without a
        # code. What the engine hands back for that (remove.bg's full cutout) has its room reserved.
        if result.carry is not None:
            store.put_image(job, "carry", result.carry)
    except EngineError as exc:
        logger.warning("Full result failed in %s %s engine: %s", job.engine, job.mode, exc.operator_detail)
        usage.failed(job.mode, "unlock_unavailable" if exc.retryable else "unlock_unusable")
        _give_back(token, redemption, exc.visitor_message)
        return
    except Exception:
        logger.exception("Full result crashed in %s %s engine.", job.engine, job.mode)
        usage.failed(job.mode, "unlock_crash")
        _give_back(token, redemption, _("Something went wrong while preparing the full-resolution image."))
        return
    # Confirm first, then deliver: the use is spent only if it was still reserved for this job. A
    # deadline that gave it back meanwhile (another request, another process) wins: the result is
    # dropped and the job stays as the deadline left it, so no result is ever free.
    store.drop_reservation(job, store.RESULT)  # the result (and carry) stored, at their real size
    if not confirm(redemption):
        store.delete_image(job, "result")
        return
    # The reservation is now a delivered use; the job forgets which redemption paid for it. (A
    # visitor who presses "Delete now" in the instant between the two lines has spent the use.)
    job.delivery, job.delivery_error, job.redemption = store.UNLOCKED, "", None
    job.result = {"media_type": result.media_type, "width": result.width, "height": result.height}
    store.save(job)
    usage.count(job.mode, usage.UNLOCKS)


def _waiting_for(job: store.Job | None, redemption: int) -> bool:
    return job is not None and job.delivery == store.FINISHING and job.redemption == redemption


def _give_back(token: str, redemption: int, message: str) -> None:
    """The full result could not be delivered: the code's use returns, the visitor is told.
    Releasing is idempotent, so a use the deadline already gave back is not given twice."""
    release(redemption)
    job = get(token)
    if _waiting_for(job, redemption):
        store.drop_reservation(job, store.RESULT)
        job.delivery, job.redemption = store.LOCKED, None
        job.delivery_error = message + " " + _("Your code was not used; you can try again.")
        store.save(job)


# --- Choosing who stays ------------------------------------------------------------------------


def _listed(people: list) -> list[dict]:
    """The engine's PersonChoice list as the job record keeps it (and the status JSON shows it)."""
    return [{"id": person.id, "box": list(person.box), "kept": person.kept} for person in people]


def choose(job: store.Job, keep: frozenset[int]) -> None:
    """Queue a redraw of the job for a new choice of people (`keep`: the ids who stay).

    The preview, and once unlocked the full-resolution result, are made again for that choice in
    the pool (`redraw`), without a new code: the visitor paid for the photo, not for one guess.
    A choice equal to the current one changes nothing. Raises JobBusy while the job is making
    anything (and, under the unlock's flag, while a code is being redeemed), BadChoice for ids the
    job does not have or for nobody, TooManyChoices past CHOICES_PER_JOB, StoreFull when there is
    no room for a second full result, PoolFull when no worker can take the work; nothing is
    counted then."""
    if job.state != store.READY or job.busy:
        raise JobBusy
    known = {person["id"] for person in job.people}
    if not keep or not keep <= known:
        raise BadChoice
    if keep == {person["id"] for person in job.people if person["kept"]}:
        return
    if job.choices >= settings.CHOICES_PER_JOB:
        raise TooManyChoices
    flagged = job
    # The unlock's flag: a code being redeemed and a choice being queued exclude each other, so the
    # full result always follows the last choice.
    if not store.claim_flag(flagged, UNLOCKING, UNLOCKING_SECONDS):
        raise JobBusy
    try:
        job = get(job.token)
        if job is None:
            raise JobGone
        if job.busy:
            raise JobBusy
        if job.choices >= settings.CHOICES_PER_JOB:
            raise TooManyChoices
        if job.unlocked:  # the new full result is stored while the old one still is
            store.reserve(job, store.RESULT, unlock_bytes(job))
        job.choosing_since, job.choice_error = time.time(), ""
        job.choices += 1
        if not store.save(job):
            store.drop_reservation(job, store.RESULT)
            raise JobGone
        if not pool().submit(redraw, job.token, job.choosing_since, keep):
            job.choosing_since, job.choices = None, job.choices - 1
            store.drop_reservation(job, store.RESULT)
            store.save(job)
            raise PoolFull
    finally:
        store.drop_flag(flagged, UNLOCKING)


@in_visitors_language
def redraw(token: str, since: float, keep: frozenset[int]) -> None:
    """Draw the job for the choice queued at `since`: a new preview and carry, and when the job is
    unlocked a new full result from them. Everything is made first and stored only if all of it
    was made, so a failure leaves the job as it was: what the visitor paid for stays downloadable."""
    job = get(token)
    if not _drawing(job, since):
        return
    try:
        original, carry = store.get_image(job, "original"), store.get_image(job, "carry")
        if original is None or carry is None:
            raise EngineError(_("This photo has expired. Please upload it again."), "original or carry gone")
        engine = engine_named(job.mode, job.engine, job.spec)
        photo = _photo_of(job, original)
        draft = engine.choose(photo, carry, keep)
        people = _listed(engine.people(draft.carry))
        preview = previews.render_preview(draft.preview)
        result = engine.finish(photo, draft.carry) if job.unlocked else None
        job = get(token)
        if not _drawing(job, since):
            return  # deleted, expired or timed out meanwhile
        if result is not None:
            store.put_image(job, "result", result.data)
            job.result = {"media_type": result.media_type, "width": result.width, "height": result.height}
        store.put_image(job, "preview", preview)
        kept_carry = result.carry if result is not None and result.carry is not None else draft.carry
        store.put_image(job, "carry", kept_carry)
        store.drop_reservation(job, store.RESULT)  # the new result (and carry) stored, at their real size
        job.people, job.choosing_since, job.choice_error = people, None, ""
        job.drawn += 1
        store.save(job)
    except EngineError as exc:
        logger.warning("Choice failed in %s %s engine: %s", job.engine, job.mode, exc.operator_detail)
        _choice_failed(token, since, exc.visitor_message)
    except Exception:
        logger.exception("Choice crashed in %s %s engine.", job.engine, job.mode)
        _choice_failed(token, since, _("Something went wrong while redrawing your photo."))


def _drawing(job: store.Job | None, since: float) -> bool:
    return job is not None and job.choosing_since == since


def _choice_failed(token: str, since: float, message: str) -> None:
    job = get(token)
    if not _drawing(job, since):
        return  # the deadline dropped the choice (and its reservation) already
    store.drop_reservation(job, store.RESULT)
    if job.unlocked:
        message += " " + _("Your full-resolution image is unchanged and can still be downloaded.")
    job.choosing_since, job.choice_error = None, message + " " + _("The previous choice of people stays.")
    store.save(job)
