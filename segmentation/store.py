"""Jobs and their images, kept only in the cache (RAM by default) and gone when they expire.

A job is one small record under `<token>` plus one entry per image under `<token>:<name>`, so a
status poll never unpickles megabytes. Every entry carries the job's remaining lifetime as its
timeout: when the job expires, all of it expires together. The token is the only key to a job.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.core.cache import caches

from segmentation import cache

QUEUED, PROCESSING, READY, FAILED = "queued", "processing", "ready", "failed"
# The second phase, after a code has been reserved: the full-resolution result is being made.
LOCKED, FINISHING, UNLOCKED = "locked", "finishing", "unlocked"

IMAGES = ("original", "before", "preview", "carry", "result")
# Room a job will need is reserved before it is used and drawn down as images are stored, in two
# steps: at upload what phase one stores (previews and carry), when a code is spent the
# full-resolution result. Most jobs are never unlocked, so their result's room is never taken:
# reserving it at upload let one client hold the whole budget with cheap large-pixel uploads.
UPLOAD, RESULT = "upload", "result"
_RESERVATION = {UPLOAD: "reserved", RESULT: "reserved-result"}
# Entries a job can occupy at most: record, images, two reservations, tombstone, unlocking guard,
# and its client's ledger (segmentation.quota).
ENTRIES_PER_JOB = len(IMAGES) + 6
_admission = threading.Lock()


class StoreFull(Exception):
    """No room for another job within IMAGE_STORE_MAX_BYTES; try again when jobs expire."""

    def __init__(self, retry_after: int):
        super().__init__(f"image store full, retry after {retry_after}s")
        self.retry_after = retry_after


@dataclass
class Job:
    token: str
    mode: str  # "cutout", "crowd" or "idphoto"
    engine: str  # name of the engine that runs it
    created_at: float
    expires_at: float
    photo_meta: dict = field(default_factory=dict)  # Photo.meta(): media_type, width, height, orientation, has_alpha
    language: str = "en"  # the visitor's, so that messages made in the worker speak it too
    state: str = QUEUED
    error: str = ""  # for the visitor, when state is FAILED
    note: str = ""  # for the visitor, about a result that is ready
    started_at: float | None = None
    delivery: str = LOCKED  # of the full-resolution result: LOCKED, FINISHING, UNLOCKED
    delivery_error: str = ""  # for the visitor, when making the full result failed
    delivery_started_at: float | None = None
    redemption: int | None = None  # the reserved use of a code while FINISHING
    result: dict = field(default_factory=dict)  # media_type, width, height once UNLOCKED
    spec: str = ""  # the ID-photo size an idphoto job makes (segmentation.idphoto.specs)
    # The people the visitor may keep or let go, as the status JSON lists them: id, box, kept.
    people: list = field(default_factory=list)
    choosing_since: float | None = None  # a new choice of people is being drawn since then
    choices: int = 0  # choices drawn (or being drawn) so far, within CHOICES_PER_JOB
    drawn: int = 0  # choices drawn and stored: the preview's version, in its address on the page
    choice_error: str = ""  # for the visitor, when drawing their last choice failed

    @property
    def expires_in(self) -> int:
        return max(0, int(self.expires_at - time.time()))

    @property
    def unlocked(self) -> bool:
        return self.delivery == UNLOCKED

    @property
    def choosing(self) -> bool:
        return self.choosing_since is not None

    @property
    def busy(self) -> bool:
        return self.state in (QUEUED, PROCESSING) or self.delivery == FINISHING or self.choosing


def _cache():
    return caches[settings.JOB_CACHE_ALIAS]


def _entry_key(token: str, name: str) -> str:
    return f"{token}:{name}"


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def create(
    mode: str,
    engine: str,
    photo_meta: dict,
    original: bytes,
    *,
    growth: int = 0,
    language: str = "en",
    now: float | None = None,
    spec: str = "",
) -> Job:
    """Admit a job, or raise StoreFull. The original is stored with the job record, and `growth`
    bytes (what phase one will store) are reserved for it."""
    backend = _cache()
    with _admission:  # one admission at a time in this process: no two can take the same room
        used, budget = usage()
        if used + len(original) + growth > budget:
            raise StoreFull(retry_after=60)
        if hasattr(backend, "room_for_entries") and not backend.room_for_entries(ENTRIES_PER_JOB):
            backend.sweep()
            if not backend.room_for_entries(ENTRIES_PER_JOB):
                raise StoreFull(retry_after=60)
        job = _admit(mode, engine, photo_meta, original, language, growth, time.time() if now is None else now, spec)
    return job


def reserve(job: Job, step: str, nbytes: int) -> None:
    """Reserve room for what `step` (RESULT) will store, or raise StoreFull and reserve nothing."""
    backend = _cache()
    with _admission:
        used, budget = usage()
        if used + nbytes > budget:
            raise StoreFull(retry_after=60)
        if hasattr(backend, "reserve"):
            backend.reserve(_entry_key(job.token, _RESERVATION[step]), nbytes, timeout=max(1, job.expires_in))


def drop_reservation(job: Job, step: str) -> None:
    """What `step` stores is stored (or never will be): the rest of its reservation is free."""
    _cache().delete(_entry_key(job.token, _RESERVATION[step]))


def _admit(mode, engine, photo_meta, original, language, growth, now, spec) -> Job:
    job = Job(
        token=new_token(),
        mode=mode,
        engine=engine,
        created_at=now,
        expires_at=now + settings.JOB_TTL_SECONDS,
        photo_meta=photo_meta,
        language=language,
        spec=spec,
    )
    try:
        if hasattr(_cache(), "reserve"):
            _cache().reserve(_entry_key(job.token, _RESERVATION[UPLOAD]), growth, timeout=settings.JOB_TTL_SECONDS)
        put_image(job, "original", original)
        save(job)
    except Exception as exc:
        # Redis at maxmemory (noeviction) refuses writes: admission raced with other processes and
        # the budget was set too close to maxmemory. That is a full store, not a crash.
        if not cache.is_out_of_memory(exc):
            raise
        _cache().delete_many([job.token, _entry_key(job.token, "original")])
        raise StoreFull(retry_after=60) from exc
    return job


def get(token: str) -> Job | None:
    """The job as stored, or None when unknown or expired. (segmentation.jobs.get also enforces
    the job deadline: that is what pages and workers read.)"""
    if not token or len(token) > 64:
        return None
    data = _cache().get(token)
    if data is None:
        return None
    job = Job(**data)
    if time.time() >= job.expires_at:
        return None
    return job


def claim_flag(job: Job, name: str, timeout: int) -> bool:
    """Take the flag `name` of a job, across threads and processes; False if it is held already.
    The flag goes by drop_flag() or after `timeout` seconds, whichever comes first."""
    return _cache().add(_entry_key(job.token, name), 1, timeout=timeout)


def drop_flag(job: Job, name: str) -> None:
    _cache().delete(_entry_key(job.token, name))


def fail(job: Job, message: str) -> None:
    """Mark the job failed for the visitor to read, and let its images go now: a failed job keeps
    its record until it expires, but no photo and no room in the budget. Deleting first also lets
    the save succeed on a Redis that is at maxmemory."""
    _cache().delete_many(_image_keys(job.token))
    job.state, job.error = FAILED, message
    save(job)


def save(job: Job) -> bool:
    """Write the job record with its remaining lifetime. False if it has expired, or if the visitor
    deleted it meanwhile: a delete that raced with a worker's or a view's writes still wins, and
    whatever those wrote is purged again here."""
    remaining = job.expires_at - time.time()
    if remaining <= 0:
        return False
    _cache().set(job.token, asdict(job), timeout=remaining)
    if _cache().get(_entry_key(job.token, "deleted")):
        _purge(job.token)
        return False
    return True


def put_image(job: Job, name: str, data: bytes) -> None:
    assert name in IMAGES, name
    remaining = job.expires_at - time.time()
    if remaining > 0:
        backend = _cache()
        backend.set(_entry_key(job.token, name), data, timeout=remaining)
        if name != "original" and hasattr(backend, "draw"):
            step = RESULT if name == "result" else UPLOAD
            backend.draw(_entry_key(job.token, _RESERVATION[step]), len(data))


def get_image(job: Job, name: str) -> bytes | None:
    return _cache().get(_entry_key(job.token, name))


def has_image(job: Job, name: str) -> bool:
    """Whether the job holds the image `name`, without reading it (a carry can be 20 MB)."""
    return _cache().has_key(_entry_key(job.token, name))


def delete_image(job: Job, name: str) -> None:
    _cache().delete(_entry_key(job.token, name))


def delete(token: str) -> None:
    """Purge a job and all its images now. A tombstone outlives the purge so that a worker still
    holding the job finds out at its next save() and purges again."""
    if get(token) is None:
        return  # unknown or expired: nothing to purge, and no tombstone (they would pile up)
    _cache().set(_entry_key(token, "deleted"), True, timeout=settings.JOB_TTL_SECONDS)
    _purge(token)


def _purge(token: str) -> None:
    _cache().delete_many([token, *_image_keys(token)])


def _image_keys(token: str) -> list[str]:
    """Every entry of a job but its record: the images and their reservations."""
    return [_entry_key(token, name) for name in (*IMAGES, *_RESERVATION.values())]


def usage() -> tuple[int, int]:
    """Bytes held by the store and the budget (IMAGE_STORE_MAX_BYTES). With Redis the bytes are
    the server's, shared by every process, so admission is decided on the same figure everywhere
    (segmentation.cache.bytes_used)."""
    used = cache.bytes_used(_cache())
    return used or 0, settings.IMAGE_STORE_MAX_BYTES
