"""The remove.bg client: the only code that talks to remove.bg (contract: specs/removebg.md).

One call, `cut_out(photo, size)`, sends a person photo and returns the cutout as an RGBA image.
What it sends is upright and metadata-free, within remove.bg's input limits (22 MB, 50 MP). What it
asks for is always explicit (`size`, `format`, `type`), because remove.bg's defaults are not ours:
its default size is `preview`, and its PNG output silently stops at 10 MP, so larger results come
as a ZIP of `color.jpg` and `alpha.png` that we join here, in memory.

Every failure becomes a `RemoveBgError` (an `EngineError`): a message the visitor can act on, a
detail for the operator, and whether trying again later may help.
"""

from __future__ import annotations

import io
import logging
import threading
import zipfile
from dataclasses import dataclass

import requests
from django.conf import settings
from django.utils.translation import gettext as _
from PIL import Image

from segmentation.engines.base import EngineError
from segmentation.images import WORKING_LONG_SIDE, Photo, fit_pixels
from segmentation.providers.http import (
    TRANSIENT_STATUSES,
    RetryPolicy,
    Timeouts,
    never_sent,
    new_session,
    not_sent,
    send,
)

logger = logging.getLogger(__name__)

# remove.bg's input limits.
MAX_INPUT_BYTES = 22 * 1000 * 1000  # "22 MB"; decimal megabytes, the stricter reading
MAX_INPUT_PIXELS = 50_000_000
# Output caps per size (pixels) and remove.bg's 10 MP ceiling on PNG output.
OUTPUT_CAP = {"preview": 250_000, "full": 25_000_000}
PNG_OUTPUT_CAP = 10_000_000
# A ZIP member larger than this is not a cutout of a ≤ 25 MP photo (guards against a zip bomb).
MAX_ZIP_MEMBER_BYTES = 200 * 1024 * 1024

# A 25 MP cutout takes remove.bg several seconds; the read timeout counts between bytes, so this is
# a ceiling on silence, not on the whole call.
TIMEOUTS = Timeouts(connect=5.0, read=90.0)
# 429: at most two waits of ≤ 10 s; 500/502/503/504 (not charged) and connections that could not be
# opened: three tries in all. A connection lost after the upload is not repeated: remove.bg may have
# made (and charged for) the cutout, and a proxy that cuts large answers (a 25 MP ZIP) would charge
# every try. The visitor can still try again, knowingly.
RETRY_POLICY = RetryPolicy(
    attempts=3,
    base_delay=0.5,
    max_delay=4.0,
    rate_limit_retries=2,
    retry_after_cap=10.0,
    retry_statuses=TRANSIENT_STATUSES,
    retry_sent_requests=False,
)

USER_AGENT = "portraitsite (+remove.bg API v1.0 client)"


class RemoveBgError(EngineError):
    """remove.bg could not make the cutout. `status` is the HTTP status (None: no answer)."""

    def __init__(
        self,
        visitor_message: str,
        operator_detail: str,
        *,
        retryable: bool,
        status: int | None = None,
        code: str = "",
    ):
        super().__init__(visitor_message, operator_detail, retryable=retryable)
        self.status = status
        self.code = code


@dataclass
class Cutout:
    image: Image.Image  # RGBA, at the size remove.bg returned
    credits: float  # what this call cost (X-Credits-Charged)


# --- Credits --------------------------------------------------------------------------------------

_credits_lock = threading.Lock()
_credits_total = 0.0


def credits_charged() -> float:
    """Credits remove.bg charged this process since it started (for /healthz)."""
    with _credits_lock:
        return _credits_total


def _record_credits(amount: float) -> None:
    global _credits_total
    with _credits_lock:
        _credits_total += amount


# --- Messages -------------------------------------------------------------------------------------


def _no_person_message() -> str:
    return _("We could not find a person in this photo. Please try a photo where someone is clearly visible.")


def _unavailable_message() -> str:
    return _("Background removal is temporarily unavailable. Please try again in a few minutes.")


def _busy_message() -> str:
    return _("Background removal is busy right now. Please try again in a minute.")


def _unusable_message() -> str:
    return _("The background removal service could not process this photo. Please try another photo.")


# --- The call ---------------------------------------------------------------------------------------

_sessions = threading.local()  # requests.Session is not meant to be shared between threads


def _session() -> requests.Session:
    session = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = new_session(USER_AGENT)
    return session


def cut_out(photo: Photo, size: str) -> Cutout:
    """The person in `photo`, cut out by remove.bg at `size` ("preview" or "full")."""
    if size not in OUTPUT_CAP:
        raise ValueError(f"unsupported size {size!r}")
    api_key = settings.REMOVEBG_API_KEY
    if not api_key:
        raise RemoveBgError(_unavailable_message(), "REMOVEBG_API_KEY is not set", retryable=True)

    upload, media_type, pixels = _upload_for(photo, size)
    expected_pixels = min(pixels, OUTPUT_CAP[size])
    # PNG output stops at 10 MP; above that, the ZIP carries the full cutout.
    output_format = "zip" if expected_pixels > PNG_OUTPUT_CAP else "png"
    extension = "png" if media_type == "image/png" else "jpg"
    try:
        response = send(
            _session(),
            "POST",
            f"{settings.REMOVEBG_API_URL}/removebg",
            timeouts=TIMEOUTS,
            policy=RETRY_POLICY,
            headers={"X-API-Key": api_key},
            data={"size": size, "type": "person", "format": output_format},
            files={"image_file": (f"photo.{extension}", upload, media_type)},
        )
    except requests.RequestException as exc:
        if never_sent(exc):
            what = "unreachable"
        elif not_sent(exc):
            what = "not called (the request could not be sent)"
        else:
            what = "gave no answer (the call may have been charged)"
        # Only the exception's type, and not chained: its text can quote a header value, i.e. the
        # key (InvalidHeader, when the key ends in a newline), and this detail is logged.
        raise RemoveBgError(_unavailable_message(), f"remove.bg {what}: {type(exc).__name__}", retryable=True) from None

    with response:
        if response.status_code != 200:
            raise _error_for(response)
        credits = _charged(response)
        _record_credits(credits)
        image = _decode_result(response, output_format)
    return Cutout(image=image, credits=credits)


def _upload_for(photo: Photo, size: str) -> tuple[bytes, str, int]:
    """The bytes to send, their media type and their pixel count.

    A preview is at most 0.25 MP, so a reduced copy (the one intake already decoded) gives
    remove.bg all it needs from a fraction of the pixels (1.8 MP of a 12 MP photo): a faster
    upload, less of the visitor's photo handed over, and less weight against the rate limit, which
    counts input megapixels. The full call sends the photo itself, re-encoded only if it breaks
    remove.bg's input limits.
    """
    if size == "preview":
        reduced = photo.open_reduced(WORKING_LONG_SIDE)
        data, media_type = _encode_upload(reduced)
        return data, media_type, reduced.width * reduced.height
    data, media_type = photo.upright_bytes()
    if len(data) <= MAX_INPUT_BYTES and photo.pixels <= MAX_INPUT_PIXELS:
        return data, media_type, photo.pixels
    return _within_input_limits(photo.open(), len(data))


def _within_input_limits(image: Image.Image, encoded_bytes: int) -> tuple[bytes, str, int]:
    """The image re-encoded, and scaled down only as far as remove.bg's limits demand (a rebuilt
    PNG can pass our 20 MB upload cap and still be larger than remove.bg's 22 MB).

    Each attempt is one fast encode, so the visitor waits about a second, not ten: a JPEG is
    first re-encoded at full size (quality 90, often below the original's own); a PNG, lossless,
    goes straight to the pixel count its current size predicts (bytes grow about linearly with
    pixels). Each further attempt scales the pixels down by as much as the last one overshot."""
    image = fit_pixels(image, MAX_INPUT_PIXELS)
    ratio = min(1.0, 0.95 * MAX_INPUT_BYTES / encoded_bytes) if image.mode == "RGBA" else 1.0
    for _attempt in range(4):
        candidate = fit_pixels(image, max(1, int(image.width * image.height * ratio)))
        data, media_type = _encode_upload(candidate)
        if len(data) <= MAX_INPUT_BYTES:
            return data, media_type, candidate.width * candidate.height
        ratio *= 0.95 * MAX_INPUT_BYTES / len(data)
    raise RemoveBgError(_unusable_message(), "could not bring the upload under 22 MB", retryable=False)


def _encode_upload(image: Image.Image) -> tuple[bytes, str]:
    """Pixels only: nothing of the original file's metadata can travel with them."""
    buffer = io.BytesIO()
    if image.mode == "RGBA":
        image.save(buffer, "PNG", compress_level=1)
        return buffer.getvalue(), "image/png"
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue(), "image/jpeg"


def _charged(response: requests.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("X-Credits-Charged", "")))
    except ValueError:
        logger.warning("remove.bg answered without a readable X-Credits-Charged header")
        return 0.0


def _decode_result(response: requests.Response, output_format: str) -> Image.Image:
    body = response.content
    try:
        if output_format == "zip":
            return _join_zip(body)
        with Image.open(io.BytesIO(body)) as im:
            if im.format != "PNG":
                raise ValueError(f"expected a PNG, got {im.format}")
            im.load()
            return im.convert("RGBA")
    except (
        OSError,
        ValueError,
        zipfile.BadZipFile,
        KeyError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise RemoveBgError(
            _unavailable_message(),
            f"remove.bg sent an unreadable {output_format} result ({len(body)} bytes, "
            f"Content-Type {response.headers.get('Content-Type', '?')}): {exc}",
            retryable=True,
            status=response.status_code,
        ) from exc


def _join_zip(body: bytes) -> Image.Image:
    """Join remove.bg's ZIP result: `color.jpg` (RGB) + `alpha.png` (white = foreground)."""
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        members = {info.filename: info for info in archive.infolist()}
        for name in ("color.jpg", "alpha.png"):
            if name not in members:
                raise KeyError(f"{name} missing from the ZIP")
            if members[name].file_size > MAX_ZIP_MEMBER_BYTES:
                raise ValueError(f"{name} declares {members[name].file_size} bytes")
        with Image.open(io.BytesIO(archive.read("color.jpg"))) as im:
            im.load()
            colour = im.convert("RGB")
        with Image.open(io.BytesIO(archive.read("alpha.png"))) as im:
            im.load()
            alpha = im.convert("L")
    if colour.size != alpha.size:
        raise ValueError(f"color.jpg is {colour.size}, alpha.png is {alpha.size}")
    colour.putalpha(alpha)
    return colour


# --- Errors -------------------------------------------------------------------------------------------


def _error_for(response: requests.Response) -> RemoveBgError:
    """Key on the status first: `code` and `detail` may be missing, and proxies answer in HTML."""
    status = response.status_code
    title, code, detail = _first_error(response)
    described = f"remove.bg {status}" + (f" {code}" if code else "") + f": {title}" + (f" ({detail})" if detail else "")

    if status == 400 and (code == "unknown_foreground" or "foreground" in title.lower()):
        return RemoveBgError(_no_person_message(), described, retryable=False, status=status, code=code)
    if status == 402:
        logger.error(
            "remove.bg is out of credits (%s). Top up the account at https://www.remove.bg/ "
            "(Dashboard › API); cutouts fail until then.",
            described,
        )
        return RemoveBgError(_unavailable_message(), described, retryable=True, status=status, code=code)
    if status in (401, 403):
        logger.error("remove.bg refused the API key (%s). Check REMOVEBG_API_KEY.", described)
        return RemoveBgError(_unavailable_message(), described, retryable=True, status=status, code=code)
    if status == 429:
        return RemoveBgError(_busy_message(), described, retryable=True, status=status, code=code)
    if 500 <= status <= 599:
        return RemoveBgError(_unavailable_message(), described, retryable=True, status=status, code=code)
    if status == 400:
        # Our request was checked against the contract, so this is about the photo (unreadable,
        # too large) or a change on remove.bg's side: the operator should see it either way.
        logger.error("remove.bg rejected a request (%s).", described)
        return RemoveBgError(_unusable_message(), described, retryable=False, status=status, code=code)
    logger.error("remove.bg answered with an unexpected status (%s). Check REMOVEBG_API_URL.", described)
    return RemoveBgError(_unavailable_message(), described, retryable=True, status=status, code=code)


def _first_error(response: requests.Response) -> tuple[str, str, str]:
    """title, code, detail of the first error in the body; the start of the body if not JSON."""
    try:
        first = response.json()["errors"][0]
        title = str(first.get("title") or "")
        code = str(first.get("code") or "")
        detail = str(first.get("detail") or "")
        return title or "(no title)", code, detail
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        content_type = response.headers.get("Content-Type", "")
        if content_type.startswith(("text/", "application/json")):
            text = " ".join(response.text[:200].split())
            return f"non-JSON error body: {text!r}", "", ""
        return f"error body of type {content_type or 'unknown'} ({len(response.content)} bytes)", "", ""
