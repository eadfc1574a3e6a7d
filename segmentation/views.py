"""The visitor's side: upload, job page, status, preview, who stays, unlock, download, delete.

Views read like the HTTP contract in docs/architecture.md ("URLs"); the work happens in images,
store, jobs and the unlock app. Every response about a job is `Cache-Control: no-store`: it is somebody's photo.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from portraitsite import ratelimit, usage
from portraitsite.context_processors import minutes_rounded_up
from portraitsite.errors import error_response, refusal
from segmentation import intake, jobs, previews, store
from segmentation.engines import IDPHOTO
from segmentation.forms import PeopleForm, UploadForm
from segmentation.idphoto import downloads as idphoto_downloads
from segmentation.idphoto.compose import copies_per_sheet
from segmentation.idphoto.guide import guide, id_photo_backgrounds
from segmentation.idphoto.specs import DEFAULT_SPEC, SPECS
from segmentation.uploads import UploadTooLarge, body_too_large
from unlock.forms import UnlockForm

logger = logging.getLogger(__name__)


def _home(request: HttpRequest, form: UploadForm | None = None, error: str = "", status: int = 200) -> HttpResponse:
    context = {
        "form": form or UploadForm(),
        "error": error,
        "max_upload": intake.upload_limit(),
        "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
        "max_megapixels": settings.MAX_IMAGE_PIXELS // 1_000_000,
        "canonical_path": reverse("home"),  # also when answering a refused upload (POST /jobs/)
        "deleted": request.method == "GET" and request.GET.get("deleted") == "1",
    }
    return render(request, "segmentation/home.html", context, status=status)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return _home(request)


@require_POST
@never_cache
@usage.counts_uploads
def create_job(request: HttpRequest) -> HttpResponse:
    # Refuse by the declared length before a single byte of the body is read.
    content_length = _content_length(request)
    if body_too_large(content_length):
        return _too_large(request)
    verdict = ratelimit.hit("upload", ratelimit.client_key(request), settings.UPLOADS_PER_MINUTE)
    if not verdict.allowed:
        return error_response(request, 429, "rate_limited", retry_after=verdict.retry_after)
    try:
        form = UploadForm(request.POST, request.FILES)
        valid = form.is_valid()
    except UploadTooLarge:
        return _too_large(request)
    if not valid:
        return _home(request, form, status=400)
    upload = form.cleaned_data["image"]
    try:
        with decoding_slot() as free:
            if not free:
                return error_response(request, 503, "busy", retry_after=DECODING_RETRY_AFTER)
            photo = intake.accept_upload(upload.read())
    except intake.ImageRejected as rejected:
        initial = {"mode": form.cleaned_data["mode"], "spec": form.cleaned_data["spec"] or DEFAULT_SPEC}
        return _home(request, UploadForm(initial=initial), rejected.message, rejected.status)
    finally:
        upload.close()
    try:
        job = jobs.create(
            form.cleaned_data["mode"],
            photo,
            client=ratelimit.client_key(request),
            language=translation.get_language(),
            spec=form.cleaned_data["spec"],
        )
    except jobs.SlowDown as slow:
        return error_response(request, 429, "rate_limited", retry_after=slow.retry_after)
    except jobs.ClientFull as full:
        return error_response(request, 429, "too_many_jobs", retry_after=full.retry_after)
    except (jobs.StoreFull, jobs.PoolFull) as full:  # logged by error_response, at most once a minute
        return error_response(request, 503, "busy", retry_after=full.retry_after)
    return see_other(reverse("job", args=[job.token]))


# Decoding a whole photo inside a request (intake of anything but a plain JPEG, a download on a
# coloured background) costs up to ~15 bytes per pixel: 0.5 GB at 37 MP. At most JOB_WORKERS of
# them run at once per process, whatever the number of request threads. A request that finds them
# all busy waits a little, and only as many wait as decode: the rest hear "busy" at once, so a burst
# of uploads holds at most 2 × JOB_WORKERS request threads and the other pages keep answering.
DECODING_WAIT_SECONDS = 2
DECODING_RETRY_AFTER = 10


@functools.cache
def _decoding_slots() -> tuple[threading.BoundedSemaphore, threading.BoundedSemaphore]:
    """The slots for decoding, and the places for waiting for one."""
    return threading.BoundedSemaphore(settings.JOB_WORKERS), threading.BoundedSemaphore(settings.JOB_WORKERS)


@contextlib.contextmanager
def decoding_slot():
    slots, waiting = _decoding_slots()
    free = slots.acquire(blocking=False)
    if not free and waiting.acquire(blocking=False):
        try:
            free = slots.acquire(timeout=DECODING_WAIT_SECONDS)
        finally:
            waiting.release()
    try:
        yield free
    finally:
        if free:
            slots.release()


def _content_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


def _too_large(request: HttpRequest) -> HttpResponse:
    # The unread rest of the body is not ours to handle: gunicorn discards it in small chunks
    # before the next request on the connection (WSGI forbids setting Connection ourselves).
    return error_response(request, 413, "too_large", limit=intake.upload_limit())


def see_other(url: str) -> HttpResponse:
    """303: after a POST the browser fetches the next page with GET."""
    response = HttpResponse(status=303)
    response["Location"] = url
    return response


def _job_or_404(token: str) -> store.Job:
    job = jobs.get(token)
    if job is None:
        raise Http404("no such job")
    return job


def _job_page(
    request: HttpRequest, job: store.Job, *, unlock_error: str = "", choice_error: str = "", status: int = 200
) -> HttpResponse:
    width = job.result.get("width") or job.photo_meta.get("width")
    height = job.result.get("height") or job.photo_meta.get("height")
    size = {"w": width, "h": height}
    context = {
        "job": job,
        "engine": job.engine,
        "unlock_form": UnlockForm(),
        "hd_unavailable": _hd_unavailable(job),
        "unlock_error": unlock_error or job.delivery_error,
        "refresh": job.busy,
        "expires_minutes": minutes_rounded_up(job.expires_in),
        "result_width": width,
        "result_height": height,
        # The page's own address: a page rendered in answer to a POST (a wrong code) refreshes and
        # links to languages through it, never through the POST-only address it was served at.
        "canonical_path": reverse("job", args=[job.token]),
        # Cutouts have transparency: the page offers backgrounds behind the preview and the download.
        "transparent": job.mode == "cutout" and job.result.get("media_type", "image/png") == "image/png",
        # (value for ?background=, swatch label, download button label)
        "backgrounds": [
            ("transparent", _("Transparent"), _("Download PNG, transparent background, %(w)s×%(h)s px") % size),
            ("white", _("White"), _("Download JPEG, white background, %(w)s×%(h)s px") % size),
            ("blue", _("Blue"), _("Download JPEG, blue background, %(w)s×%(h)s px") % size),
            ("red", _("Red"), _("Download JPEG, red background, %(w)s×%(h)s px") % size),
        ],
        # The page's script puts the chosen colour where "{colour}" stands.
        "custom_download_label": _("Download JPEG, background %(colour)s, %(w)s×%(h)s px")
        % dict(size, colour="{colour}"),
        "people": _people_offered(job),
        "choice_error": choice_error or job.choice_error,
        "choices_left": max(0, settings.CHOICES_PER_JOB - job.choices),
    }
    if job.mode == IDPHOTO:
        context.update(_id_photo_context(job))
    return render(request, "segmentation/job.html", context, status=status)


def _hd_unavailable(job: store.Job) -> bool:
    """A job whose full result needs a remove.bg call the account cannot pay for: the page says so
    instead of taking a code (which the failed call would give back, after a wait)."""
    if job.engine != "removebg" or job.state != store.READY or job.unlocked or job.delivery == store.FINISHING:
        return False
    from segmentation.engines.removebg import full_result_unavailable

    return full_result_unavailable(store.has_image(job, "carry"))


def _hd_unavailable_message() -> str:
    return _(
        "The full-resolution service is unavailable at the moment, so no code can be used now. "
        "Please try again later: your preview stays here until the photo is deleted."
    )


def _id_photo_context(job: store.Job) -> dict:
    spec = SPECS[job.spec]
    return {
        "result_width": spec.width_px,
        "result_height": spec.height_px,
        "idphoto": {
            "spec": spec,
            "guide": guide(spec),
            "backgrounds": id_photo_backgrounds(spec),
            "copies": copies_per_sheet(spec),
            "file_sizes": idphoto_downloads.FILE_SIZE_CHOICES_KB,
        },
    }


@require_GET
@never_cache
def job_page(request: HttpRequest, token: str) -> HttpResponse:
    return _job_page(request, _job_or_404(token))


def _people_offered(job: store.Job) -> list[dict]:
    """The people the visitor may keep or let go, once the preview is ready: a choice needs at
    least two (one must stay), and CHOICES_PER_JOB=0 offers none."""
    if job.state != store.READY or not settings.CHOICES_PER_JOB or len(job.people) < 2:
        return []
    return job.people


@require_GET
@never_cache
def job_status(request: HttpRequest, token: str) -> JsonResponse:
    job = jobs.get(token)
    if job is None:
        return JsonResponse({"state": "gone", "error": _("This photo has expired or was deleted.")}, status=404)
    status = {
        "state": job.state,
        "error": job.error,
        "note": job.note,
        "expires_in": job.expires_in,
        "unlocked": job.unlocked,
        "delivery": job.delivery,
        "delivery_error": job.delivery_error,
        "choosing": job.choosing,
        "choice_error": job.choice_error,
    }
    if job.state == store.READY:
        status["people"] = [
            {"id": person["id"], "box": person["box"], "kept": person["kept"]} for person in _people_offered(job)
        ]
    return JsonResponse(status)


def _image_response(data: bytes, media_type: str) -> HttpResponse:
    response = HttpResponse(data, content_type=media_type)
    response["Cache-Control"] = "no-store"
    return response


def _small_image(token: str, name: str) -> HttpResponse:
    """A job's preview-sized WebP ("preview" watermarked, "before" the visitor's own photo)."""
    job = _job_or_404(token)
    data = store.get_image(job, name) if job.state == store.READY else None
    if data is None:
        raise Http404("no preview yet")
    return _image_response(data, "image/webp")


@require_GET
@never_cache
def preview(request: HttpRequest, token: str) -> HttpResponse:
    return _small_image(token, "preview")


@require_GET
@never_cache
def before(request: HttpRequest, token: str) -> HttpResponse:
    return _small_image(token, "before")


@require_GET
@never_cache
def person(request: HttpRequest, token: str, person: int) -> HttpResponse:
    """One person cut from the "before" picture, for the list of who stays (made on request from
    the job's small picture: nothing more is stored)."""
    job = _job_or_404(token)
    box = next((p["box"] for p in _people_offered(job) if p["id"] == person), None)
    before = store.get_image(job, "before") if box is not None else None
    if before is None:
        raise Http404("no such person")
    return _image_response(previews.render_person(before, box), "image/webp")


@require_POST
@never_cache
def choose_people(request: HttpRequest, token: str) -> HttpResponse:
    """Who stays: the repeated field `keep` holds the ids of the people kept."""
    job = _job_or_404(token)
    if job.state != store.READY or job.busy:
        return _job_page(request, job, choice_error=_busy_message(job), status=409)
    form = PeopleForm(request.POST, people=_people_offered(job))
    if not form.is_valid():
        return _job_page(request, job, choice_error=form.errors["keep"][0], status=400)
    try:
        jobs.choose(job, frozenset(form.cleaned_data["keep"]))
    except jobs.BadChoice:  # the people changed since the form was read (a choice just drawn)
        return _job_page(request, job, choice_error=_("Please choose again."), status=400)
    except jobs.JobBusy:
        return _job_page(request, jobs.get(token) or job, choice_error=_busy_message(job), status=409)
    except jobs.TooManyChoices:
        message = _(
            "You have changed who stays %(count)s times for this photo, the most we allow. Your preview "
            "and download stay as they are; to start again, upload the photo again."
        ) % {"count": settings.CHOICES_PER_JOB}
        return _job_page(request, job, choice_error=message, status=429)
    except jobs.JobGone:
        raise Http404("job expired or deleted during the choice") from None
    except (jobs.StoreFull, jobs.PoolFull) as full:
        return error_response(request, 503, "busy", retry_after=full.retry_after)
    return see_other(reverse("job", args=[token]))


@require_POST
@never_cache
def unlock(request: HttpRequest, token: str) -> HttpResponse:
    from unlock import limits

    job = _job_or_404(token)
    job_url = reverse("job", args=[token])
    if job.delivery != store.LOCKED:
        return see_other(job_url)  # already paid for: nothing more is consumed
    if job.state != store.READY:
        return _job_page(
            request, job, unlock_error=_("The preview is not ready yet. Please wait a moment."), status=409
        )
    if _hd_unavailable(job):
        page = _job_page(request, job, unlock_error=_hd_unavailable_message(), status=503)
        return refusal(page, "hd_unavailable")
    wait = limits.unlock_blocked(request, token)
    if wait is not None:
        return error_response(request, 429, "rate_limited", retry_after=wait)
    form = UnlockForm(request.POST)
    if not form.is_valid():
        return _job_page(request, job, unlock_error=form.errors["code"][0], status=400)
    try:
        jobs.begin_unlock(job, form.cleaned_data["code"])
    except jobs.CodeRejected as rejected:
        limits.record_failure(request, token)
        return _job_page(request, job, unlock_error=rejected.message, status=rejected.status)
    except jobs.JobGone:
        raise Http404("job expired or deleted during unlock") from None
    except jobs.JobBusy:
        return _job_page(request, job, unlock_error=_busy_message(job), status=409)
    except (jobs.StoreFull, jobs.PoolFull) as full:
        return error_response(request, 503, "busy", retry_after=full.retry_after)
    return see_other(job_url)


def _busy_message(job: store.Job) -> str:
    """Why the job cannot take a choice or a code right now."""
    if job.state in (store.QUEUED, store.PROCESSING):
        return _("The preview is not ready yet. Please wait a moment.")
    if job.state == store.FAILED:
        return _("This photo could not be processed. Please upload it again.")
    if job.delivery == store.FINISHING:
        return _("The full-resolution image is being prepared. Please wait a moment and try again.")
    return _("Your photo is being redrawn for your choice of people. Please wait a moment and try again.")


@require_GET
@never_cache
def download(request: HttpRequest, token: str) -> HttpResponse:
    job = _job_or_404(token)
    if not job.unlocked:
        return error_response(request, 403, "locked")
    data = store.get_image(job, "result")
    if data is None:
        raise Http404("result gone")
    if job.mode == IDPHOTO:
        return _id_photo_download(request, job, data)
    media_type = job.result["media_type"]
    try:
        colour = previews.parse_background(request.GET.get("background"))
    except ValueError:
        return error_response(request, 400, "bad_background")
    if colour is not None and media_type == "image/png" and job.mode == "cutout":
        # Each of these decodes the whole result: one code must not keep the decoding slots busy.
        verdict = ratelimit.hit(
            "background-download", ratelimit.token_key(token), settings.BACKGROUND_DOWNLOADS_PER_MINUTE
        )
        if not verdict.allowed:
            return error_response(request, 429, "too_many_downloads", retry_after=verdict.retry_after)
        with decoding_slot() as free:
            if not free:
                return error_response(request, 503, "busy", retry_after=DECODING_RETRY_AFTER)
            data, media_type = previews.on_background(data, colour), "image/jpeg"
    extension = "png" if media_type == "image/png" else "jpg"
    name = f"{job.mode}-{job.result['width']}x{job.result['height']}.{extension}"
    response = _image_response(data, media_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _id_photo_download(request: HttpRequest, job: store.Job, result: bytes) -> HttpResponse:
    """The ID photo on its background, single or as a print sheet, optionally under a file size;
    all from the one stored result (small: the spec's size), so no decoding slot is needed."""
    spec = SPECS[job.spec]
    try:
        choice = idphoto_downloads.parse(request.GET, spec)
        data, name = idphoto_downloads.render(result, spec, choice)
    except idphoto_downloads.BadDownload as bad:
        return error_response(request, 400, bad.reason)
    response = _image_response(data, "image/jpeg")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_POST
def delete(request: HttpRequest, token: str) -> HttpResponse:
    jobs.delete(token, ratelimit.client_key(request))  # unknown tokens too: idempotent, reveals nothing
    return see_other(reverse("home") + "?deleted=1")
