"""Alibaba Cloud DashScope (Model Studio) client: the only code that talks to DashScope.

One job is one synchronous call to `qwen-image-edit-plus` (settings.DASHSCOPE_MODEL) with the photo
inline as a base64 data URI — never a public URL, never DashScope's `oss://` temporary upload, whose
files sit in a bucket for 48 h and cannot be deleted. The answer names a signed result URL on
Alibaba's storage (it lives 24 h; there is no delete call), which we fetch at once into memory.

Each call costs money (about 0.2 CNY per output image), so a job never calls twice: we retry only
what cannot have been billed — a connection that was never made, a 429 throttle, a 500/503
(failed calls are not billed; a 504 gateway timeout may hide a model that ran, so it is not).
A read timeout or a connection dropped after the request went out may have produced (and billed)
an image, so those end the job. The shared retry loop in `segmentation.providers.http` applies that
rule (`RETRY_POLICY`); the result download, which costs nothing, may also repeat after a dropped
connection.

Every failure is a `ProviderError` whose message is a key of `MESSAGES`; the engine
(segmentation.engines.dashscope) turns it into what the visitor reads.

Contract: docs/providers/dashscope.md. Never logged: the key, image bytes, data URIs, and the
result URL's query (its signature).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from PIL import Image

from segmentation.composite import on_white
from segmentation.intake import Photo
from segmentation.pixels import encode
from segmentation.providers import http
from segmentation.providers.http import ProviderError

logger = logging.getLogger(__name__)

GENERATION_PATH = "/services/aigc/multimodal-generation/generation"

# The instruction (≤ 800 characters). Qwen follows English instructions well; the wording names
# what to keep as firmly as what to remove, because an image-edit model redraws the whole frame.
DEFAULT_PROMPT = (
    "Remove all passers-by, bystanders and other people in the background from this photo, and "
    "fill the places where they were with the scenery that would naturally be behind them. "
    "Keep the main subject, the person or people the photo is of, exactly as they are: same face, "
    "expression, pose, hair, clothing and position. Change nothing else: keep the same framing, "
    "composition, perspective, lighting, colours and sharpness, and add nothing new."
)
# What the model must not produce (≤ 500 characters).
DEFAULT_NEGATIVE_PROMPT = (
    "extra people, remaining passers-by, partial bodies, ghost figures, silhouettes, leftover "
    "shadows or reflections of removed people, duplicated objects, altered face, changed subject, "
    "changed pose, different framing, cropping, zoom, blur, distortion, artifacts, text, watermark"
)

# Input limits: the documented cap is 10 MB per image, but whether that counts the raw or the
# base64 size is unconfirmed, so the raw bytes stay under 7 MB (base64: 9.4 MB).
MAX_INPUT_BYTES = 7 * 1024 * 1024
MIN_INPUT_SIDE, MAX_INPUT_SIDE = 384, 3072
MAX_ASPECT = MAX_INPUT_SIDE / MIN_INPUT_SIDE  # 8:1; beyond it no scaling meets both limits
# Smaller photos are scaled up to MIN_INPUT_SIDE for the model (the composite scales its answer
# back down), but below this there is too little to find people in.
MIN_PHOTO_SIDE = 128
INPUT_JPEG_QUALITY = 92
# Output `size`: each side 512–2048, taken only by the plus and max models (and their dated
# snapshots); the older qwen-image-edit makes about 1 MP in the input's aspect ratio.
MIN_OUTPUT_SIDE, MAX_OUTPUT_SIDE = 512, 2048
SIZED_MODELS = ("qwen-image-edit-plus", "qwen-image-edit-max")
MAX_RESULT_BYTES = 40 * 1024 * 1024  # a noisy 2048×2048 RGBA PNG stays well below this
# The model's output is at most 2048 px a side; a frame far larger is not what we asked for.
MAX_RESULT_SIDE = 4096
# The generation call answers with a short JSON document (or an error page): read at most this.
MAX_ANSWER_BYTES = 1024 * 1024
SEED_LIMIT = 2**31 - 1

# The model answers in seconds (reports of ~8 s) but a read timeout is the one failure we cannot
# retry without paying twice, so it is generous.
GENERATION_TIMEOUTS = http.Timeouts(connect=10.0, read=180.0)
DOWNLOAD_TIMEOUTS = http.Timeouts(connect=10.0, read=60.0)
# 500 and 503 are transient and not billed: the model did not run. Not 504: a gateway that timed
# out waiting is just where the model most likely did run (and billed), and neither is a 502 from
# a gateway in front, which says nothing about whether it ran. The free result download retries all.
RETRY_POLICY = http.RetryPolicy(
    attempts=3,
    base_delay=1.0,
    max_delay=8.0,
    rate_limit_retries=2,
    retry_after_cap=20.0,
    retry_statuses=frozenset({500, 503}),
    retry_sent_requests=False,
)
USER_AGENT = "portraitsite (+crowd removal)"


@dataclass
class ModelInput:
    """The photo as sent: encoded, upright, metadata-free, within DashScope's limits."""

    data: bytes
    media_type: str
    width: int
    height: int

    def data_uri(self) -> str:
        return f"data:{self.media_type};base64,{base64.b64encode(self.data).decode('ascii')}"


# What the visitor reads for each failure (translated when the engine shows it).
MESSAGES = {
    "unavailable": _("Crowd removal is temporarily unavailable. Please try again later."),
    "busy": _("The crowd-removal service is busy right now. Please try again in a few minutes."),
    "slow": _("The crowd-removal service took too long to answer. Please try again later."),
    "moderated": _(
        "The crowd-removal service's content checks refused this photo, so we could not edit it. "
        "Please try a different photo."
    ),
    "unprocessable": _("The crowd-removal service could not process this photo. Please try another photo."),
    "result_unavailable": _("We could not fetch the result from the crowd-removal service. Please try again later."),
    "unusable_result": _("The crowd-removal service returned an image we cannot use. Please try again."),
    "too_small": _(
        "This photo is too small for crowd removal. Please upload one at least %(side)s pixels on each side."
    ),
    "too_narrow": _(
        "This photo is too long and narrow for crowd removal (at most 8 times as wide as it is "
        "tall, or the other way round). Please crop it and try again."
    ),
}


# --- What we send --------------------------------------------------------------------------------


def prompt() -> str:
    """The instruction: DASHSCOPE_PROMPT, or the built-in one when that is empty. Its length
    (≤ 800 characters) is checked once, by settings.py at start-up."""
    return settings.DASHSCOPE_PROMPT or DEFAULT_PROMPT


def negative_prompt() -> str:
    """What the model must not produce: DASHSCOPE_NEGATIVE_PROMPT, or the built-in list (≤ 500
    characters, checked at start-up)."""
    return settings.DASHSCOPE_NEGATIVE_PROMPT or DEFAULT_NEGATIVE_PROMPT


def input_size(width: int, height: int) -> tuple[int, int]:
    """The size the photo is sent at: long side ≤ 3072, short side ≥ 384, aspect kept.

    Small photos are scaled up rather than padded: a padded frame gives the model a border to
    "repair" and the composite a frame to re-align, while an upscaled one is simply scaled back.
    """
    long_side, short_side = max(width, height), min(width, height)
    scale = 1.0
    if long_side > MAX_INPUT_SIDE:
        scale = MAX_INPUT_SIDE / long_side
    if short_side * scale < MIN_INPUT_SIDE:
        scale = MIN_INPUT_SIDE / short_side
    clamp = lambda side: min(MAX_INPUT_SIDE, max(MIN_INPUT_SIDE, round(side * scale)))  # noqa: E731
    return clamp(width), clamp(height)


def output_size(width: int, height: int) -> tuple[int, int] | None:
    """The `size` to ask for: the photo's aspect ratio with the long side as large as the model
    allows (2048), but not beyond the photo's own long side, since the composite would only scale
    the extra pixels away again (a larger frame costs the same but takes longer). None when no size
    within 512–2048 keeps the aspect ratio (beyond 4:1): the model then keeps the input's own."""
    long_side, short_side = max(width, height), min(width, height)
    out_long = min(MAX_OUTPUT_SIDE, max(long_side, MIN_OUTPUT_SIDE))
    out_short = round(out_long * short_side / long_side)
    if out_short < MIN_OUTPUT_SIDE:
        out_long = round(MIN_OUTPUT_SIDE * long_side / short_side)
        out_short = MIN_OUTPUT_SIDE
        if out_long > MAX_OUTPUT_SIDE:
            return None
    return (out_long, out_short) if width >= height else (out_short, out_long)


def model_input(photo: Photo) -> ModelInput:
    """The photo prepared for DashScope, or a ProviderError when it cannot be (before any call)."""
    width, height = photo.width, photo.height
    if min(width, height) < MIN_PHOTO_SIDE:
        raise ProviderError(
            "too_small",
            f"photo {width}x{height} below {MIN_PHOTO_SIDE} px",
            retryable=False,
            values={"side": MIN_PHOTO_SIDE},
        )
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ProviderError("too_narrow", f"photo {width}x{height} beyond {MAX_ASPECT:.0f}:1", retryable=False)
    target = input_size(width, height)
    if target == (width, height) and photo.media_type == "image/jpeg" and not photo.has_alpha:
        # Intake already cut the JPEG's metadata out; send its pixel stream untouched if we can.
        data, media_type = photo.upright_bytes()
        if len(data) <= MAX_INPUT_BYTES:
            return ModelInput(data, media_type, width, height)
    image = on_white(photo.open_reduced(max(target)))
    while True:
        if image.size != target:
            image = image.resize(target, Image.Resampling.LANCZOS)
        for quality in (INPUT_JPEG_QUALITY, 85, 75):
            data = encode(image, "JPEG", quality=quality)
            if len(data) <= MAX_INPUT_BYTES:
                return ModelInput(data, "image/jpeg", *target)
        # Only pure noise gets here: shrink and try again, never below the minimum side.
        factor = max(0.75, MIN_INPUT_SIDE / min(target))
        if factor >= 1.0:
            raise ProviderError(
                "unprocessable", f"cannot encode {target} under {MAX_INPUT_BYTES} bytes", retryable=False
            )
        target = (round(target[0] * factor), round(target[1] * factor))


def request_body(image: ModelInput, *, seed: int | None = None) -> dict:
    parameters = {
        "n": 1,
        "prompt_extend": False,  # an LLM would rewrite the instruction: unpredictable edits
        "watermark": False,
        "negative_prompt": negative_prompt(),
        # A fresh seed per call: a visitor who tries the same photo again wants another attempt.
        "seed": secrets.randbelow(SEED_LIMIT + 1) if seed is None else seed,
    }
    size = output_size(image.width, image.height)
    if size is not None and settings.DASHSCOPE_MODEL.startswith(SIZED_MODELS):
        parameters["size"] = f"{size[0]}*{size[1]}"
    return {
        "model": settings.DASHSCOPE_MODEL,
        "input": {"messages": [{"role": "user", "content": [{"image": image.data_uri()}, {"text": prompt()}]}]},
        "parameters": parameters,
    }


# --- The client ----------------------------------------------------------------------------------


class NoAuth(requests.auth.AuthBase):
    """Makes sure a request carries no Authorization header (requests would otherwise add one
    from ~/.netrc): the signed result URL is its own credential, and our key must not travel there."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        return request


class DashScopeClient:
    """One client per job; not shared between threads (it owns a requests session)."""

    def __init__(self, *, api_url: str | None = None, api_key: str | None = None):
        self.api_url = (api_url or settings.DASHSCOPE_API_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else settings.DASHSCOPE_API_KEY
        self.policy = RETRY_POLICY
        # The result is stored: fetching it again costs nothing, so a dropped connection (or any
        # 5xx from the storage) may be repeated there, unlike the billed call.
        self.download_policy = dataclasses.replace(
            self.policy, retry_sent_requests=True, retry_statuses=http.TRANSIENT_STATUSES
        )
        self.session = http.new_session(USER_AGENT)
        # Its own session, so that no cookie the API host may set (a domain cookie for aliyuncs.com
        # would match the storage host too) travels with the signed download.
        self.download_session = http.new_session(USER_AGENT)

    def erase_people(self, photo: Photo) -> Image.Image:
        """The one billed call for a job, and the download of its result: the model's frame, RGB."""
        if not self.api_key:
            raise ProviderError("unavailable", "DASHSCOPE_API_KEY is not set", retryable=True)
        image = model_input(photo)
        answer = self._generate(request_body(image))
        from portraitsite import usage as totals  # the call succeeded: DashScope bills it, per image

        totals.count_for_current_tool(totals.DASHSCOPE_CALLS)
        url, request_id, usage = _result_url(answer)
        frame = decode_result(self.download(url))
        logger.info(
            "DashScope edit done: sent %dx%d (%d bytes), got %dx%d (usage %s), request %s",
            image.width,
            image.height,
            len(image.data),
            frame.width,
            frame.height,
            usage,
            request_id,
        )
        return frame

    def close(self) -> None:
        self.session.close()
        self.download_session.close()

    def _generate(self, body: dict) -> dict:
        url = self.api_url + GENERATION_PATH
        try:
            response = http.send(
                self.session,
                "POST",
                url,
                timeouts=GENERATION_TIMEOUTS,
                policy=self.policy,
                data=json.dumps(body).encode(),
                headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
                stream=True,  # read by read_body, within a cap
            )
        except requests.RequestException as exc:
            raise _transport_error(exc) from None
        with response:
            try:
                answer = json.loads(http.read_body(response, MAX_ANSWER_BYTES))
            except (ValueError, http.ResponseTooLarge):
                answer = None
            except requests.RequestException as exc:
                raise _transport_error(exc) from None
        if not isinstance(answer, dict):
            answer = {}
        if response.status_code != 200 or answer.get("code"):
            raise error_for(response.status_code, answer)
        return answer

    def download(self, url: str) -> bytes:
        """The signed result, fetched into memory with a plain GET: no key, no redirects, at most
        MAX_RESULT_BYTES. The image was made (and billed) by now, whatever goes wrong here."""
        check_result_url(url, self.api_url)
        where = http.without_query(url)  # the query holds the signature

        def unavailable(detail: str) -> ProviderError:
            return ProviderError("result_unavailable", detail, retryable=True, billed=True)

        try:
            response = http.send(
                self.download_session,
                "GET",
                url,
                timeouts=DOWNLOAD_TIMEOUTS,
                policy=self.download_policy,
                auth=NoAuth(),
                stream=True,
            )
        except requests.RequestException as exc:
            # Not chained: requests' messages quote the URL with its query, i.e. the signature,
            # and a traceback in the log would carry it.
            raise unavailable(f"DashScope result download from {where} failed: {type(exc).__name__}") from None
        with response:
            if response.status_code != 200:
                raise unavailable(f"DashScope result download from {where}: HTTP {response.status_code}")
            try:
                return http.read_body(response, MAX_RESULT_BYTES)
            except http.ResponseTooLarge:
                raise unavailable(f"DashScope result exceeds {MAX_RESULT_BYTES} bytes") from None
            except requests.RequestException as exc:
                raise unavailable(f"DashScope result download from {where} broke off: {type(exc).__name__}") from None


def _transport_error(exc: requests.RequestException) -> ProviderError:
    """A generation call that got no usable answer. Only a connection that never opened (or a
    request that could not be sent) is certain not to have produced, and billed, an image."""
    if http.is_read_timeout(exc):
        return ProviderError(
            "slow",
            f"DashScope read timeout after {GENERATION_TIMEOUTS.read:.0f} s",
            retryable=True,
            billed=True,
        )
    if http.never_sent(exc):
        return ProviderError("unavailable", f"DashScope unreachable: {type(exc).__name__}", retryable=True)
    if http.not_sent(exc):
        return ProviderError(
            "unavailable", f"DashScope not called (the request could not be sent): {type(exc).__name__}", retryable=True
        )
    return ProviderError(
        "unavailable", f"DashScope connection lost mid-call: {type(exc).__name__}", retryable=True, billed=True
    )


# --- Where results may come from ---------------------------------------------------------------

# A result link names a bucket on Alibaba's object storage (OSS) in the API's own region: as seen
# in answers and in Alibaba's examples, Singapore's results live on
# dashscope-result-sgp.oss-ap-southeast-1.aliyuncs.com; Beijing's on buckets in several mainland
# regions (dashscope-result-bj.oss-cn-beijing, -sz.oss-cn-shenzhen, -wlcb-acdr-1.oss-cn-wulanchabu-
# acdr-1, …) and on OSS's global accelerate endpoint (dashscope-result-sh.oss-accelerate). Any other
# host is refused before a request goes out: an answer must not send our server anywhere else.
RESULT_HOST = re.compile(r"dashscope-result-[a-z0-9-]+\.oss-(?P<region>[a-z0-9-]+)\.aliyuncs\.com")
RESULT_REGIONS = {
    "dashscope-intl.aliyuncs.com": re.compile(r"ap-southeast-1"),
    "dashscope.aliyuncs.com": re.compile(r"cn-[a-z0-9-]+|accelerate"),
}
# An API host not listed above (a region added later) accepts results on any OSS region.
ANY_REGION = re.compile(r"[a-z0-9-]+")


def check_result_url(url: str, api_url: str) -> None:
    """Refuse a result URL that is not https on an OSS host of the API's region (RESULT_HOST,
    RESULT_REGIONS). Against a local fake (the API plain http on a loopback address) the fake's
    own host is accepted instead, over http or https."""
    api = urlsplit(api_url)
    result = urlsplit(url)
    scheme, host = result.scheme.lower(), (result.hostname or "").lower()
    api_host = (api.hostname or "").lower()
    if api.scheme.lower() == "http" and http.is_loopback(api_host):
        allowed = scheme in ("http", "https") and host == api_host
        expected = f"http(s) on {api_host}"
    else:
        match = RESULT_HOST.fullmatch(host)
        regions = RESULT_REGIONS.get(api_host, ANY_REGION)
        allowed = scheme == "https" and match is not None and regions.fullmatch(match["region"]) is not None
        expected = f"https on dashscope-result-*.oss-<{regions.pattern}>.aliyuncs.com"
    if not allowed:
        logger.error("DashScope named a result on %s://%s, expected %s: refused", scheme or "?", host or "?", expected)
        raise ProviderError(
            "result_unavailable",
            f"DashScope result URL refused: scheme {scheme or 'none'!r}, host {host or 'none'!r} (expected {expected})",
            retryable=True,
            billed=True,
        )


def _result_url(answer: dict) -> tuple[str, str, object]:
    request_id = str(answer.get("request_id", ""))
    try:
        content = answer["output"]["choices"][0]["message"]["content"]
        url = next(part["image"] for part in content if isinstance(part, dict) and part.get("image"))
    except (KeyError, IndexError, TypeError, StopIteration):
        logger.error("DashScope answered 200 without a result image (request %s)", request_id)
        raise ProviderError(
            "unavailable", f"DashScope 200 without an image, request {request_id}", retryable=True, billed=True
        ) from None
    if not isinstance(url, str):
        raise ProviderError(
            "unavailable", f"DashScope result is not a URL, request {request_id}", retryable=True, billed=True
        )
    return url, request_id, answer.get("usage")


def decode_result(data: bytes) -> Image.Image:
    """The model's frame as RGB (transparency flattened onto white, as the model was shown the
    photo), refusing what is not a plausible result."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if max(im.size) > MAX_RESULT_SIDE or min(im.size) < 1:
                raise ValueError(f"{im.width}x{im.height}")
            im.load()
            return on_white(im.convert("RGBA") if "A" in im.getbands() or "transparency" in im.info else im)
    except Exception as exc:  # Pillow reports undecodable data through many exception types
        raise ProviderError(
            "unusable_result",
            f"DashScope result is not a usable image: {type(exc).__name__}: {exc}"[:300],
            retryable=True,
            billed=True,
        ) from None


# --- Errors --------------------------------------------------------------------------------------

# Codes the operator must act on: logged at ERROR, with what to check.
OPERATOR_ACTION = {
    "InvalidApiKey": "check DASHSCOPE_API_KEY, and that DASHSCOPE_API_URL is the key's region "
    "(international keys do not work in Beijing and vice versa)",
    "Arrearage": "the Alibaba Cloud account is overdue: top it up",
    "AccessDenied": "the model is not enabled for this account (or the key may not call it): "
    "check DASHSCOPE_MODEL and the Model Studio console",
    "InvalidParameter": "our request was refused as malformed, or DASHSCOPE_MODEL names no model",
}


def error_for(status: int, answer: dict) -> ProviderError:
    """Map a DashScope error answer to a ProviderError, by code (never by message text), and log
    it: ERROR where the operator must act, WARNING for the service's own trouble. Failed calls are
    not billed, except that a 504 may hide a model that ran."""
    code = str(answer.get("code") or "")
    family = code.split(".", 1)[0]
    request_id = str(answer.get("request_id", ""))
    detail = (
        f"DashScope HTTP {status} {code or '(no code)'}: {_safe_message(answer.get('message'))} (request {request_id})"
    )

    def error(message: str, *, retryable: bool) -> ProviderError:
        return ProviderError(message, detail, retryable=retryable, billed=status == 504, status=status, code=code)

    if family == "DataInspectionFailed" or code == "InvalidParameter.DataInspection":
        logger.info("%s", detail)
        return error("moderated", retryable=False)
    if family in ("InvalidApiKey", "Arrearage", "AccessDenied") or (status == 401 and not family):
        action = OPERATOR_ACTION.get(family, OPERATOR_ACTION["InvalidApiKey"])
        logger.error("%s — %s", detail, action)
        return error("unavailable", retryable=True)
    if family == "Throttling" or status == 429:
        logger.warning("%s", detail)
        return error("busy", retryable=True)
    if code in ("InvalidParameter.ImageFormat", "InvalidParameter.ImageContent", "InvalidParameter.FileDownload"):
        logger.warning("%s", detail)
        return error("unprocessable", retryable=False)
    if family == "InvalidParameter":
        # Not about the photo (those codes are above): our request or DASHSCOPE_MODEL is wrong, and
        # another photo would fail the same way until the operator fixes it.
        logger.error("%s — %s", detail, OPERATOR_ACTION["InvalidParameter"])
        return error("unavailable", retryable=True)
    if status >= 500 or family in ("InternalError", "ServiceUnavailable", "GatewayTimeout"):
        logger.warning("%s", detail)
        return error("unavailable", retryable=True)
    if 300 <= status <= 399:
        logger.error("%s — a redirect, not followed: check DASHSCOPE_API_URL", detail)
        return error("unavailable", retryable=True)
    logger.error("%s — unexpected answer", detail)
    return error("unavailable", retryable=True)


def _safe_message(message: object) -> str:
    """DashScope's own message, shortened, with anything that could carry a payload cut out."""
    text = str(message or "")[:200]
    for marker in ("data:", "base64,", "Signature=", "http://", "https://"):
        index = text.find(marker)
        if index >= 0:
            text = text[:index] + "…"
    return text
