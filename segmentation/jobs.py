"""Running jobs: a bounded worker pool inside the web process, and the two phases of a job.

Phase one (`start`) runs the engine's start() at upload and stores the watermarked preview.
Phase two (`finish`) runs after the visitor's code has been reserved; it stores the
full-resolution result and confirms the unlock, or gives the code back if anything fails, so a
failure never costs a visitor their code.

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

from portraitsite import usage
from portraitsite.outages import unreachable_service
from segmentation import previews, store
from segmentation.engines import EngineError, engine_named
from segmentation.intake import Photo

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
                close_old_connections()  # worker threads must not keep database connections open
                with self._count_lock:
                    self._in_flight -= 1
                self._slots.release()

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


def _photo_of(job: store.Job, original: bytes) -> Photo:
    return Photo.from_meta(original, job.photo_meta)


def in_visitors_language(task: Callable[[str], None]) -> Callable[..., None]:
    """Run a phase under the job's language: messages made in the worker speak the visitor's."""

    @functools.wraps(task)
    def run(token: str, *args) -> None:
        job = store.get(token)
        # What a provider bills during the phase is counted under the job's tool.
        with translation.override(job.language if job else None), usage.working_for(job.mode if job else ""):
            task(token, *args)

    return run


@in_visitors_language
def start(token: str, photo: Photo) -> None:
    """Phase one: the engine's first pass, the previews, and the job marked ready or failed."""
    job = store.get(token)
    if job is None or job.state != store.QUEUED:
        return
    job.state, job.started_at = store.PROCESSING, time.time()
    store.save(job)
    try:
        draft = engine_named(job.mode, job.engine, job.spec).start(photo)
        preview = previews.render_preview(draft.preview)
        before = previews.render_before(photo.working if photo.working is not None else photo.open_reduced(1024))
        job = store.get(token)
        if job is None or job.state != store.PROCESSING:
            return  # deleted, expired or timed out meanwhile: keep nothing
        # A store that refuses a write (Redis at maxmemory) fails the job now, not at the deadline.
        store.put_image(job, "preview", preview)
        store.put_image(job, "before", before)
        if draft.carry is not None:
            store.put_image(job, "carry", draft.carry)
        usage.count(job.mode, usage.PREVIEWS)  # made (and paid for), whether or not it is still wanted
        job.state, job.note = store.READY, draft.note
        store.save(job)  # a delete that raced with the writes above purges them here
    except EngineError as exc:
        logger.warning(
            "Job failed in %s %s engine: %s", job.engine, job.mode, exc.operator_detail or exc.visitor_message
        )
        usage.failed(job.mode, "preview_unavailable" if exc.retryable else "preview_unusable")
        _record_failure(token, exc.visitor_message)
    except Exception:
        logger.exception("Job crashed in %s %s engine.", job.engine, job.mode)
        usage.failed(job.mode, "preview_crash")
        _record_failure(token, _("Something went wrong while processing this photo. Please try again."))


def _record_failure(token: str, message: str) -> None:
    job = store.get(token)
    if job is not None and job.state == store.PROCESSING:
        store.fail(job, message)


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
    job = store.get(token)
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
        job = store.get(token)
        if not _waiting_for(job, redemption):
            _give_back(token, redemption, "")  # deleted, expired or timed out before delivery
            return
        store.put_image(job, "result", result.data)
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
    store.delete_image(job, "carry")  # no longer needed; frees RAM for other visitors
    # The reservation is now a delivered use; the job forgets which redemption paid for it.
    job.delivery, job.delivery_error, job.redemption = store.UNLOCKED, "", None
    job.result = {"media_type": result.media_type, "width": result.width, "height": result.height}
    if store.save(job):
        from unlock.redemption import confirm

        confirm(redemption)
        usage.count(job.mode, usage.UNLOCKS)
    else:
        _give_back(token, redemption, "")  # deleted at the last moment: nothing was delivered


def _waiting_for(job: store.Job | None, redemption: int) -> bool:
    return job is not None and job.delivery == store.FINISHING and job.redemption == redemption


def _give_back(token: str, redemption: int, message: str) -> None:
    """The full result could not be delivered: the code's use returns, the visitor is told.
    Releasing is idempotent, so a use the deadline already gave back is not given twice."""
    from unlock.redemption import release

    release(redemption)
    job = store.get(token)
    if _waiting_for(job, redemption):
        job.delivery, job.redemption = store.LOCKED, None
        job.delivery_error = message + " " + _("Your code was not used; you can try again.")
        store.save(job)
