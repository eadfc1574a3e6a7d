"""Jobs and their images, kept only in the cache (RAM by default) and gone when they expire.

A job is one small record under `<token>` plus one entry per image under `<token>:<name>`, so a
status poll never unpickles megabytes. Every entry carries the job's remaining lifetime as its
timeout: when the job expires, all of it expires together. The token is the only key to a job.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.core.cache import caches

from segmentation import cache

logger = logging.getLogger(__name__)

QUEUED, PROCESSING, READY, FAILED = "queued", "processing", "ready", "failed"
# The second phase, after a code has been reserved: the full-resolution result is being made.
LOCKED, FINISHING, UNLOCKED = "locked", "finishing", "unlocked"

IMAGES = ("original", "before", "preview", "carry", "result")
# What a job may still add after its upload, reserved at admission and drawn down as it is stored:
# the full-resolution result (an RGBA PNG, at worst uncompressed) plus previews and engine state.
RESULT_BYTES_PER_PIXEL = 4
PREVIEW_AND_STATE_BYTES = 2 * 1024**2
# Entries a job can occupy at most: record, images, reservation, tombstone, unlocking guard.
ENTRIES_PER_JOB = len(IMAGES) + 4
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

    @property
    def expires_in(self) -> int:
        return max(0, int(self.expires_at - time.time()))

    @property
    def unlocked(self) -> bool:
        return self.delivery == UNLOCKED

    @property
    def busy(self) -> bool:
        return self.state in (QUEUED, PROCESSING) or self.delivery == FINISHING


def _cache():
    return caches[settings.JOB_CACHE_ALIAS]


def _image_key(token: str, name: str) -> str:
    return f"{token}:{name}"


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def create(mode: str, engine: str, photo_meta: dict, original: bytes, language: str = "en", spec: str = "") -> Job:
    """Admit a job, or raise StoreFull. The original is stored with the job record."""
    growth = RESULT_BYTES_PER_PIXEL * photo_meta.get("width", 0) * photo_meta.get("height", 0) + PREVIEW_AND_STATE_BYTES
    backend = _cache()
    with _admission:  # one admission at a time in this process: no two can take the same room
        used, budget = usage()
        if used + len(original) + growth > budget:
            raise StoreFull(retry_after=60)
        if hasattr(backend, "room_for_entries") and not backend.room_for_entries(ENTRIES_PER_JOB):
            backend.sweep()
            if not backend.room_for_entries(ENTRIES_PER_JOB):
                raise StoreFull(retry_after=60)
        job = _admit(mode, engine, photo_meta, original, language, growth, spec)
    return job


def _admit(mode, engine, photo_meta, original, language, growth, spec) -> Job:
    now = time.time()
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
            _cache().reserve(_image_key(job.token, "reserved"), growth, timeout=settings.JOB_TTL_SECONDS)
        put_image(job, "original", original)
        save(job)
    except Exception as exc:
        # Redis at maxmemory (noeviction) refuses writes: admission raced with other processes and
        # the budget was set too close to maxmemory. That is a full store, not a crash.
        if not cache.is_out_of_memory(exc):
            raise
        _cache().delete_many([job.token, _image_key(job.token, "original")])
        raise StoreFull(retry_after=60) from exc
    return job


def get(token: str) -> Job | None:
    """The job, or None when unknown or expired. A job stuck past JOB_DEADLINE_SECONDS in either
    phase is turned failed (or back to locked) here, whichever process serves the request."""
    if not token or len(token) > 64:
        return None
    data = _cache().get(token)
    if data is None:
        return None
    job = Job(**data)
    if time.time() >= job.expires_at:
        return None
    return _enforce_deadline(job)


def _enforce_deadline(job: Job) -> Job:
    from django.utils.translation import gettext as _

    deadline = settings.JOB_DEADLINE_SECONDS
    now = time.time()
    # A queued job whose process died (a restart, a redeploy) would otherwise wait forever.
    stuck_since = job.started_at if job.state == PROCESSING else job.created_at if job.state == QUEUED else None
    if stuck_since and now - stuck_since > deadline:
        logger.warning("Job stuck %s for over %ss; marked failed.", job.state, deadline)
        fail(job, _("Processing took too long and was stopped. Please try again."))
    elif job.delivery == FINISHING and job.delivery_started_at and now - job.delivery_started_at > deadline:
        from unlock.redemption import release

        if job.redemption is not None:
            release(job.redemption)
        job.delivery, job.redemption = LOCKED, None
        job.delivery_error = _(
            "Preparing the full-resolution image took too long. Your code was not used; please try again."
        )
        logger.warning("Job stuck in finishing for over %ss; code released.", deadline)
        save(job)
    return job


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
    if _cache().get(_image_key(job.token, "deleted")):
        _purge(job.token)
        return False
    return True


def put_image(job: Job, name: str, data: bytes) -> None:
    assert name in IMAGES, name
    remaining = job.expires_at - time.time()
    if remaining > 0:
        backend = _cache()
        backend.set(_image_key(job.token, name), data, timeout=remaining)
        if name != "original" and hasattr(backend, "draw"):
            backend.draw(_image_key(job.token, "reserved"), len(data))


def get_image(job: Job, name: str) -> bytes | None:
    return _cache().get(_image_key(job.token, name))


def has_image(job: Job, name: str) -> bool:
    """Whether the job holds the image `name`, without reading it (a carry can be 20 MB)."""
    return _cache().has_key(_image_key(job.token, name))


def delete_image(job: Job, name: str) -> None:
    _cache().delete(_image_key(job.token, name))


def delete(token: str) -> None:
    """Purge a job and all its images now. A tombstone outlives the purge so that a worker still
    holding the job finds out at its next save() and purges again."""
    if get(token) is None:
        return  # unknown or expired: nothing to purge, and no tombstone (they would pile up)
    _cache().set(_image_key(token, "deleted"), True, timeout=settings.JOB_TTL_SECONDS)
    _purge(token)


def _purge(token: str) -> None:
    _cache().delete_many([token, *_image_keys(token)])


def _image_keys(token: str) -> list[str]:
    """Every entry of a job but its record: the images and the admission's reservation."""
    return [_image_key(token, name) for name in (*IMAGES, "reserved")]


def usage() -> tuple[int, int]:
    """Bytes held by the store and the budget (IMAGE_STORE_MAX_BYTES). With Redis the bytes are
    the server's, shared by every process, so admission is decided on the same figure everywhere
    (segmentation.cache.bytes_used)."""
    used = cache.bytes_used(_cache())
    return used or 0, settings.IMAGE_STORE_MAX_BYTES
