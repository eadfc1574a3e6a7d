"""The remove.bg client: the only code that talks to remove.bg (contract: docs/providers/removebg.md).

One call, `cut_out(photo, size)`, sends a person photo and returns the cutout as an RGBA image.
What it sends is upright and metadata-free, within remove.bg's input limits (22 MB, 50 MP). What it
asks for is always explicit (`size`, `format`, `type`), because remove.bg's defaults are not ours:
its default size is `preview`, and its PNG output silently stops at 10 MP, so larger results come
as a ZIP of `color.jpg` and `alpha.png` that we join here, in memory.

Every failure is a `ProviderError` whose message is a key of `MESSAGES`; the engine
(segmentation.engines.removebg) turns it into what the visitor reads.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import zipfile

import requests
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from PIL import Image

from segmentation.intake import WORKING_LONG_SIDE, Photo
from segmentation.pixels import encode, encode_png, fit_pixels
from segmentation.providers.http import (
    TRANSIENT_STATUSES,
    ProviderError,
    ResponseTooLarge,
    RetryPolicy,
    Timeouts,
    never_sent,
    new_session,
    not_sent,
    read_body,
    send,
    without_query,
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
# The answer is read into memory up to a cap, so an endless or hostile body cannot fill the RAM.
# Measured on pure noise, the worst case for any encoder: an RGBA PNG takes 4.0 bytes a pixel, the
# ZIP's color.jpg 2.0 at quality 100 (1.2 at 95) and its alpha.png 1.0. Twice the worst case, plus
# room for the framing of small results: 3 MB for a preview, 201 MB for a 25 MP full result.
RESULT_BYTES_PER_PIXEL = 8
RESULT_BYTES_MARGIN = 1024 * 1024
# An error answer is a short JSON document (or a proxy's HTML page): only its start is read.
ERROR_BODY_LIMIT = 64 * 1024

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


# What the visitor reads for each failure (translated when the engine shows it).
MESSAGES = {
    "no_person": _("We could not find a person in this photo. Please try a photo where someone is clearly visible."),
    "unavailable": _("Background removal is temporarily unavailable. Please try again in a few minutes."),
    "busy": _("Background removal is busy right now. Please try again in a minute."),
    "unusable": _("The background removal service could not process this photo. Please try another photo."),
}


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
    from portraitsite import usage
    from segmentation.providers import removebg_account

    removebg_account.charged(amount)
    usage.count_for_current_tool(usage.REMOVEBG_CREDITS, amount)


# --- The call ---------------------------------------------------------------------------------------

_sessions = threading.local()  # requests.Session is not meant to be shared between threads


def _session() -> requests.Session:
    session = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = new_session(USER_AGENT)
    return session


def cut_out(photo: Photo, size: str) -> Image.Image:
    """The person in `photo`, cut out by remove.bg at `size` ("preview" or "full"): RGBA, at the
    size remove.bg returned."""
    if size not in OUTPUT_CAP:
        raise ValueError(f"unsupported size {size!r}")
    api_key = settings.REMOVEBG_API_KEY
    if not api_key:
        raise ProviderError("unavailable", "REMOVEBG_API_KEY is not set", retryable=True)

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
            stream=True,  # read by read_body, within a cap
        )
    except requests.RequestException as exc:
        if never_sent(exc):
            what, billed = "unreachable", False
        elif not_sent(exc):
            what, billed = "not called (the request could not be sent)", False
        else:
            what, billed = "gave no answer", True
        # Only the exception's type, and not chained: its text can quote a header value, i.e. the
        # key (InvalidHeader, when the key ends in a newline), and this detail is logged.
        raise ProviderError(
            "unavailable", f"remove.bg {what}: {type(exc).__name__}", retryable=True, billed=billed
        ) from None

    with response:
        if response.status_code != 200:
            raise _error_for(response)
        _record_credits(_charged(response))
        limit = RESULT_BYTES_PER_PIXEL * expected_pixels + RESULT_BYTES_MARGIN
        try:
            body = read_body(response, limit)
        except ResponseTooLarge as exc:
            logger.error("remove.bg sent a %s result over %d bytes; not read further.", output_format, exc.limit)
            raise ProviderError(
                "unavailable", f"remove.bg result exceeds {exc.limit} bytes", retryable=True, billed=True, status=200
            ) from None
        except requests.RequestException as exc:
            raise ProviderError(
                "unavailable",
                f"remove.bg result broke off: {type(exc).__name__}",
                retryable=True,
                billed=True,
                status=200,
            ) from None
    return _decode_result(body, output_format, response.headers.get("Content-Type", "?"))


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
    raise ProviderError("unusable", "could not bring the upload under 22 MB", retryable=False)


def _encode_upload(image: Image.Image) -> tuple[bytes, str]:
    """Pixels only: nothing of the original file's metadata can travel with them."""
    if image.mode == "RGBA":
        return encode_png(image), "image/png"
    return encode(image.convert("RGB"), "JPEG", quality=90), "image/jpeg"


def _charged(response: requests.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("X-Credits-Charged", "")))
    except ValueError:
        logger.warning("remove.bg answered without a readable X-Credits-Charged header")
        return 0.0


def _decode_result(body: bytes, output_format: str, content_type: str) -> Image.Image:
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
        raise ProviderError(
            "unavailable",
            f"remove.bg sent an unreadable {output_format} result ({len(body)} bytes, "
            f"Content-Type {content_type}): {exc}",
            retryable=True,
            billed=True,
            status=200,
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


def _error_for(response: requests.Response) -> ProviderError:
    """Key on the status first: `code` and `detail` may be missing, and proxies answer in HTML.
    No refusal is billed (remove.bg charges successes only)."""
    status = response.status_code
    title, code, detail = _first_error(response)
    described = f"remove.bg {status}" + (f" {code}" if code else "") + f": {title}" + (f" ({detail})" if detail else "")

    def error(message: str, *, retryable: bool) -> ProviderError:
        return ProviderError(message, described, retryable=retryable, status=status, code=code)

    if status == 400 and (code == "unknown_foreground" or "foreground" in title.lower()):
        return error("no_person", retryable=False)
    if status == 402:
        logger.error(
            "remove.bg is out of credits (%s). Top up the account at https://www.remove.bg/ "
            "(Dashboard › API); cutouts fail until then.",
            described,
        )
        return error("unavailable", retryable=True)
    if status in (401, 403):
        logger.error("remove.bg refused the API key (%s). Check REMOVEBG_API_KEY.", described)
        return error("unavailable", retryable=True)
    if status == 429:
        return error("busy", retryable=True)
    if 500 <= status <= 599:
        return error("unavailable", retryable=True)
    if status == 400:
        # Our request was checked against the contract, so this is about the photo (unreadable,
        # too large) or a change on remove.bg's side: the operator should see it either way.
        logger.error("remove.bg rejected a request (%s).", described)
        return error("unusable", retryable=False)
    if 300 <= status <= 399:
        # Not followed (see segmentation.providers.http): the key would travel with the request.
        logger.error(
            "remove.bg answered with a redirect to %s (%s), not followed. Check REMOVEBG_API_URL.",
            without_query(response.headers.get("Location", "")) or "(no Location)",
            described,
        )
        return error("unavailable", retryable=True)
    logger.error("remove.bg answered with an unexpected status (%s). Check REMOVEBG_API_URL.", described)
    return error("unavailable", retryable=True)


def _first_error(response: requests.Response) -> tuple[str, str, str]:
    """title, code, detail of the first error in the body; the start of the body if not JSON."""
    try:
        body = read_body(response, ERROR_BODY_LIMIT)
    except ResponseTooLarge:
        return f"an error body over {ERROR_BODY_LIMIT} bytes", "", ""
    except requests.RequestException as exc:
        return f"an error body that broke off ({type(exc).__name__})", "", ""
    try:
        first = json.loads(body)["errors"][0]
        title = str(first.get("title") or "")
        code = str(first.get("code") or "")
        detail = str(first.get("detail") or "")
        return title or "(no title)", code, detail
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        content_type = response.headers.get("Content-Type", "")
        if content_type.startswith(("text/", "application/json")):
            text = " ".join(body[:200].decode("utf-8", "replace").split())
            return f"non-JSON error body: {text!r}", "", ""
        return f"error body of type {content_type or 'unknown'} ({len(body)} bytes)", "", ""
