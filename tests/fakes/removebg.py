"""A fake remove.bg API v1.0: a real HTTP server on 127.0.0.1 that follows docs/providers/removebg.md.

It checks what remove.bg checks (the key header in any case, exactly one source, the file type by
its magic bytes, 22 MB and 50 MP, `size`, `format`, `type`), answers like remove.bg (error bodies,
success headers, raw, JSON and ZIP results, credits per size) and records every request it got,
so tests can assert on what was sent. Its cutout is simple but real: pixels that differ from the
median colour of the image's border are foreground, at the size remove.bg would return, except in
the rectangles of `leave_out` (fractions of the frame: left, top, right, bottom), which it leaves
out the way remove.bg leaves out someone it takes for a bystander.

The account holds `balance` credits (1000 to start; tests set it): each cutout is charged from it,
a cutout it cannot pay for is refused with 402 as remove.bg refuses it, and `GET /account` reports
what is left.

Switches make it fail the way remove.bg does: `out_of_credits` (402), `fail_next` (any status,
e.g. 429 with Retry-After, 503, a non-JSON body) and `slow_next` (an answer that takes a while).

Run on its own: `python -m tests.fakes.removebg --port 8901 [--key KEY]`.
"""

from __future__ import annotations

import base64
import io
import json
import math
import time
import urllib.parse
import zipfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message

import numpy as np
from PIL import Image, ImageDraw

from segmentation.pixels import encode
from tests.fakes import server
from tests.fakes.server import AT_ONCE, Answer, FakeServer, Pacing, command_line, fixture, recorded_sleeps

BASE_PATH = "/v1.0"
DEFAULT_KEY = "fake-removebg-key"

MAX_FILE_BYTES = 22 * 1000 * 1000
MAX_INPUT_PIXELS = 50_000_000
PNG_OUTPUT_CAP = 10_000_000
MASK_WORKING_PIXELS = 1_000_000
RATE_LIMIT = 500  # images per minute, weighted by input megapixels

# size → (output cap in pixels, credits); `auto` is priced by the result it produced.
SIZES = {
    "preview": (250_000, 0.25),
    "small": (250_000, 0.25),
    "regular": (250_000, 0.25),
    "medium": (1_500_000, 1.0),
    "hd": (4_000_000, 1.0),
    "full": (25_000_000, 1.0),
    "4k": (25_000_000, 1.0),
    "50MP": (50_000_000, 1.0),
    "auto": (25_000_000, None),
}
FORMATS = {"auto", "png", "jpg", "webp", "zip"}
TYPES = {"auto", "person", "product", "car", "animal", "graphic", "transportation"}
SOURCES = ("image_file", "image_file_b64", "image_url")


@dataclass
class Part:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None


@dataclass
class ReceivedRequest(server.ReceivedRequest):
    """One request as the fake saw it, with its form parts once parsed and the credits it cost."""

    parts: list[Part] = field(default_factory=list)
    credits: float = 0.0

    @property
    def content_type(self) -> str:
        return self.header("Content-Type") or ""

    @property
    def fields(self) -> dict[str, str]:
        """The non-file fields, name → value (the last one when repeated)."""
        return {p.name: p.data.decode("utf-8", "replace") for p in self.parts if p.filename is None}

    def files(self, name: str) -> list[Part]:
        return [p for p in self.parts if p.name == name and p.filename is not None]

    def file(self, name: str) -> Part:
        (part,) = self.files(name)
        return part


@dataclass
class Forced:
    """An answer the fake gives instead of doing the work (after checking the key)."""

    status: int
    title: str = ""
    code: str | None = None
    detail: str | None = None
    retry_after: str | None = None
    body: bytes | None = None  # raw body, e.g. an HTML error page from a proxy
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()  # more headers: Location, Transfer-Encoding


class FakeRemoveBg(FakeServer):
    name = "fake-removebg"
    base_path = BASE_PATH
    settings_prefix = "REMOVEBG"
    request_type = ReceivedRequest

    def __init__(self, api_key: str = DEFAULT_KEY, host: str = "127.0.0.1", port: int = 0):
        super().__init__(api_key, host, port)
        self.out_of_credits = False
        self.leave_out: list[tuple[float, float, float, float]] = []
        self._forced: deque[Forced] = deque()
        self._delays: deque[tuple[float, bool]] = deque()
        self._credits = 0.0
        self.balance = 1000.0  # what GET /account reports; a cutout that costs more is refused (402)
        self.account_reads = 0  # GET /account requests, kept apart from the cutout calls in `requests`
        self._window: tuple[int, float] = (0, 0.0)  # (minute, weight used)

    # --- switches ---------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        title: str | None = None,
        code: str | None = None,
        detail: str | None = None,
        retry_after: str | int | float | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
        chunked: bool = False,
    ) -> None:
        """Answer the next `times` authenticated requests with `status` instead of a cutout;
        `chunked` sends the body without declaring its length (Transfer-Encoding: chunked)."""
        default_titles = {402: "Insufficient credits", 429: "Rate limit exceeded", 503: "Service unavailable"}
        forced = Forced(
            status,
            title if title is not None else default_titles.get(status, "Error"),
            code,
            detail,
            None if retry_after is None else str(retry_after),
            body,
            content_type,
            (("Transfer-Encoding", "chunked"),) if chunked else (),
        )
        self._push(self._forced, [forced] * times)

    def redirect_next(self, location: str, status: int = 307) -> None:
        """Answer the next authenticated request with a redirect to `location`, as a misconfigured
        proxy or a hijacked DNS name might."""
        self._push(
            self._forced, [Forced(status, body=b"", content_type="text/plain", headers=(("Location", location),))]
        )

    def drop_next(self, times: int = 1) -> None:
        """Close the connection without answering the next `times` authenticated requests."""
        self._push(self._forced, [Forced(status=0)] * times)

    def slow_next(self, seconds: float, times: int = 1, *, mid_body: bool = False) -> None:
        """Delay the next `times` answers by `seconds`: before anything is sent back, or with
        `mid_body` after the headers and half of the body. The work is done (and charged) either way."""
        self._push(self._delays, [(seconds, mid_body)] * times)

    # --- what happened ------------------------------------------------------------------------------

    def _record(self, request: ReceivedRequest) -> None:
        if request.path == f"{BASE_PATH}/account":
            with self._lock:
                self.account_reads += 1
            return
        super()._record(request)

    @property
    def credits_charged(self) -> float:
        with self._lock:
            return self._credits

    def _charge(self, credits: float, input_pixels: int) -> tuple[int, int]:
        """Book credits and rate-limit weight; returns (remaining, reset)."""
        minute = int(time.time() // 60)
        weight = max(1, math.ceil(input_pixels / 1_000_000))
        with self._lock:
            self._credits += credits
            self.balance -= credits
            used = self._window[1] if self._window[0] == minute else 0.0
            self._window = (minute, used + weight)
            return max(0, RATE_LIMIT - int(used + weight)), (minute + 1) * 60

    # --- the API --------------------------------------------------------------------------------------

    def handle(self, request: ReceivedRequest) -> Answer:
        key = request.header("X-API-Key")
        if not key:
            return _error(403, "Missing API Key")
        if key != self.api_key:
            return _error(403, "API Key invalid", code="auth_failed")
        if request.path == f"{BASE_PATH}/account" and request.method == "GET":
            return self._account()
        if request.path != f"{BASE_PATH}/removebg" or request.method != "POST":
            return _error(404, "Not found")

        try:
            values, image = _parse_body(request)
            bad_request = None
        except BadRequest as exc:
            values, image, bad_request = {}, b"", exc

        forced = self._pop(self._forced)
        if forced is None and self.out_of_credits:
            forced = Forced(402, "Insufficient credits", "insufficient_credits")
        if forced is not None and forced.status == 0:
            return 0, [], b""
        if forced is not None:
            headers = [("Retry-After", forced.retry_after)] if forced.retry_after is not None else []
            headers += forced.headers
            if forced.body is not None:
                return forced.status, [("Content-Type", forced.content_type), *headers], forced.body
            status, error_headers, error_body = _error(forced.status, forced.title, forced.code, forced.detail)
            return status, error_headers + headers, error_body

        if bad_request is not None:
            return _error(400, bad_request.title, bad_request.code)
        return self._remove_background(request, values, image)

    def pacing(self, request: ReceivedRequest) -> Pacing:
        seconds, mid_body = self._pop(self._delays, (0.0, False))
        if not seconds:
            return AT_ONCE
        return Pacing(pause=seconds) if mid_body else Pacing(before=seconds)

    def _account(self) -> Answer:
        with self._lock:
            balance = self.balance
        # Whole credits come as integers and fractions as floats, as JSON numbers do.
        left = int(balance) if balance == int(balance) else balance
        payload = {
            "data": {
                "attributes": {
                    "credits": {"total": left, "subscription": 0, "payg": left, "enterprise": 0},
                    "api": {"free_calls": 50, "sizes": "all"},
                }
            }
        }
        return 200, [("Content-Type", "application/json")], json.dumps(payload).encode()

    def _remove_background(self, request: ReceivedRequest, values: dict[str, str], image: bytes) -> Answer:
        size = values.get("size") or "preview"  # remove.bg's default, which is why clients send it
        output_format = values.get("format") or "auto"
        kind = values.get("type") or "auto"
        if size not in SIZES:
            return _error(400, "Invalid size", "invalid_size")
        if output_format not in FORMATS:
            return _error(400, "Invalid format", "invalid_format")
        if kind not in TYPES:
            return _error(400, "Invalid type", "invalid_type")  # code unconfirmed
        if len(image) > MAX_FILE_BYTES:
            return _error(400, "File too large", "file_too_large")
        if not _is_supported_image(image):
            return _error(400, "Invalid file type", "invalid_file_type")
        try:
            with Image.open(io.BytesIO(image)) as im:
                width, height = im.size
                if width * height > MAX_INPUT_PIXELS:
                    return _error(400, "Resolution too high", "resolution_too_high")
                cap, credits = SIZES[size]
                if output_format in ("png", "auto"):  # `auto` gives PNG: a cutout is transparent
                    cap = min(cap, PNG_OUTPUT_CAP)
                rgb = _decode_at_most(im, cap)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            return _error(400, "Resolution too high", "resolution_too_high")
        except (OSError, ValueError, SyntaxError):
            return _error(400, "Failed to read image", "failed_to_read_image")

        alpha = _foreground_alpha(rgb)
        for left, top, right, bottom in self.leave_out:
            alpha.paste(
                0, (int(left * rgb.width), int(top * rgb.height), int(right * rgb.width), int(bottom * rgb.height))
            )
        box = alpha.getbbox()
        if box is None or _coverage(alpha) < 0.005:
            return _error(400, "Could not identify foreground in image", "unknown_foreground")
        if credits is None:
            credits = 0.25 if rgb.width * rgb.height <= 250_000 else 1.0
        if self.balance < credits:
            return _error(402, "Insufficient credits", "insufficient_credits")
        content_type, result = _encode_result(rgb, alpha, output_format)

        remaining, reset = self._charge(credits, width * height)
        request.credits = credits
        left, top, right, bottom = box
        foreground = {
            "foreground_top": top,
            "foreground_left": left,
            "foreground_width": right - left,
            "foreground_height": bottom - top,
        }
        headers = [
            ("X-Credits-Charged", f"{credits:g}"),
            ("X-Width", str(rgb.width)),
            ("X-Height", str(rgb.height)),
            ("X-Foreground-Top", str(top)),
            ("X-Foreground-Left", str(left)),
            ("X-Foreground-Width", str(right - left)),
            ("X-Foreground-Height", str(bottom - top)),
            ("X-RateLimit-Limit", str(RATE_LIMIT)),
            ("X-RateLimit-Remaining", str(remaining)),
            ("X-RateLimit-Reset", str(reset)),
        ]
        if values.get("type_level") != "none":
            headers.append(("X-Type", "person" if kind == "auto" else kind))
        if "application/json" in (request.header("Accept") or ""):
            payload = {"data": {"result_b64": base64.b64encode(result).decode("ascii"), **foreground}}
            return 200, [("Content-Type", "application/json"), *headers], json.dumps(payload).encode()
        return 200, [("Content-Type", content_type), *headers], result


# --- request parsing -------------------------------------------------------------------------------


class BadRequest(Exception):
    def __init__(self, title: str, code: str):
        super().__init__(title)
        self.title, self.code = title, code


def _header_params(value: str) -> Message:
    message = Message()
    message["Content-Type"] = value
    return message


def _parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """RFC 7578 by hand: exact bytes, no line-ending games, no temporary files."""
    boundary = _header_params(content_type).get_param("boundary")
    if not boundary:
        raise BadRequest("Malformed multipart body", "invalid_request")
    delimiter = b"--" + str(boundary).encode("latin-1")
    parts = []
    for section in body.split(delimiter)[1:]:
        if section.startswith(b"--"):
            break
        section = section.removeprefix(b"\r\n").removesuffix(b"\r\n")
        head, separator, data = section.partition(b"\r\n\r\n")
        if not separator:
            raise BadRequest("Malformed multipart body", "invalid_request")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = Message()
        disposition["Content-Disposition"] = headers.get("content-disposition", "")
        name = disposition.get_param("name", header="content-disposition")
        filename = disposition.get_param("filename", header="content-disposition")
        if name is None:
            continue
        parts.append(Part(str(name), data, None if filename is None else str(filename), headers.get("content-type")))
    return parts


def _parse_body(request: ReceivedRequest) -> tuple[dict[str, str], bytes]:
    """The parameters, and the image bytes from exactly one source."""
    body = request.body
    media_type = request.content_type.split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        request.parts = _parse_multipart(body, request.content_type)
    elif media_type == "application/x-www-form-urlencoded":
        pairs = urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        request.parts = [Part(k, v.encode()) for k, v in pairs]
    elif media_type == "application/json":
        try:
            payload = json.loads(body or b"{}")
        except ValueError as exc:
            raise BadRequest("Malformed JSON body", "invalid_request") from exc
        request.parts = [Part(k, str(v).encode()) for k, v in payload.items()]
    else:
        request.parts = []

    values = {p.name: p.data.decode("utf-8", "replace") for p in request.parts if p.filename is None}
    # Empty strings and 0-byte parts count as absent. Only multipart carries file parts.
    sources = [p for p in request.parts if p.name in SOURCES and p.data]
    if media_type != "multipart/form-data":
        sources = [p for p in sources if p.name != "image_file"]
    if not sources:
        raise BadRequest("No image given", "missing_source")
    if len(sources) > 1:
        raise BadRequest("Multiple image sources given", "multiple_sources")
    (source,) = sources
    if source.name == "image_url":
        raise BadRequest("Failed to read image from URL (the fake fetches nothing)", "failed_to_read_image")
    if source.name == "image_file_b64":
        try:
            return values, base64.b64decode(source.data, validate=True)
        except ValueError as exc:
            raise BadRequest("Failed to read image", "failed_to_read_image") from exc
    return values, source.data


def _is_supported_image(data: bytes) -> bool:
    return (
        data.startswith(b"\xff\xd8\xff")
        or data.startswith(b"\x89PNG\r\n\x1a\n")
        or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
    )


# --- the cutout --------------------------------------------------------------------------------------


def _decode_at_most(im: Image.Image, max_pixels: int) -> Image.Image:
    """The stored pixels (no EXIF orientation applied: remove.bg's behaviour is unconfirmed, so a
    client that sends sideways pixels gets a sideways result), scaled down to `max_pixels`."""
    width, height = im.size
    target = (width, height)
    if width * height > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
        target = (max(1, int(width * scale)), max(1, int(height * scale)))
    if im.format == "JPEG" and target != (width, height):
        im.draft("RGB", target)  # DCT scaling: decode at 1/2, 1/4 or 1/8 when that still covers it
    im.load()
    rgb = im.convert("RGB")
    if rgb.size != target:
        rgb = rgb.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)
    return rgb


def _foreground_alpha(rgb: Image.Image) -> Image.Image:
    """Soft mask of pixels unlike the background (white = foreground).

    The background is modelled twice and a pixel is background if it is close to either: the
    median colour of the whole border (a plain backdrop), or, along each row, the blend between that
    row's left and right edge colours (a backdrop with a horizontal gradient or uneven light).
    Like real matting models it works on a reduced copy (≤ 1 MP) and scales the mask up."""
    if rgb.width * rgb.height > MASK_WORKING_PIXELS:
        scale = math.sqrt(MASK_WORKING_PIXELS / (rgb.width * rgb.height))
        small = rgb.resize(
            (max(1, int(rgb.width * scale)), max(1, int(rgb.height * scale))),
            Image.Resampling.BILINEAR,
            reducing_gap=2.0,
        )
        return _foreground_alpha(small).resize(rgb.size, Image.Resampling.BILINEAR)
    pixels = np.asarray(rgb)
    height, width = pixels.shape[:2]
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    median = np.median(border, axis=0).astype(np.float32)
    edge = max(1, min(4, width // 50))
    left = np.median(pixels[:, :edge], axis=1).astype(np.float32)  # (height, 3)
    right = np.median(pixels[:, -edge:], axis=1).astype(np.float32)
    blend = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    alpha = np.empty((height, width), dtype=np.uint8)
    for top in range(0, height, 256):  # bands keep the temporaries small
        band = pixels[top : top + 256].astype(np.float32)
        to_median = np.abs(band - median).max(axis=2)
        row_background = left[top : top + 256, None, :] + (right - left)[top : top + 256, None, :] * blend[..., None]
        to_rows = np.abs(band - row_background).max(axis=2)
        distance = np.minimum(to_median, to_rows)
        alpha[top : top + 256] = np.clip((distance - 24) * 8, 0, 255).astype(np.uint8)
    return Image.fromarray(alpha, "L")


def _coverage(alpha: Image.Image) -> float:
    histogram = alpha.histogram()
    return sum(histogram[128:]) / (alpha.width * alpha.height)


def _encode_result(rgb: Image.Image, alpha: Image.Image, output_format: str) -> tuple[str, bytes]:
    buffer = io.BytesIO()
    if output_format == "zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("color.jpg", encode(rgb, "JPEG", quality=90))
            archive.writestr("alpha.png", encode(alpha, "PNG", compress_level=1))
        return "application/zip", buffer.getvalue()
    if output_format == "jpg":
        flat = Image.new("RGB", rgb.size, "white")
        flat.paste(rgb, mask=alpha)
        return "image/jpeg", encode(flat, "JPEG", quality=90)
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    if output_format == "webp":
        return "image/webp", encode(rgba, "WEBP", quality=90)
    return "image/png", encode(rgba, "PNG", compress_level=1)


def _error(status: int, title: str, code: str | None = None, detail: str | None = None) -> Answer:
    error = {"title": title}
    if code:
        error["code"] = code
    if detail:
        error["detail"] = detail
    return status, [("Content-Type", "application/json")], json.dumps({"errors": [error]}).encode()


# --- images the fake can cut out --------------------------------------------------------------------------


def portrait(width: int, height: int, *, background: tuple[int, int, int] = (90, 160, 220)) -> Image.Image:
    """A plain background with a figure (head and shoulders) in the middle: the fake's cutout finds
    exactly the figure. Noise-free, so it compresses small even at tens of megapixels."""
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    cx = width / 2
    draw.ellipse((cx - width * 0.12, height * 0.15, cx + width * 0.12, height * 0.45), fill=(224, 172, 140))
    draw.rectangle((cx - width * 0.25, height * 0.5, cx + width * 0.25, height), fill=(40, 40, 40))
    return image


def jpeg(image: Image.Image, **options) -> bytes:
    """`image` as JPEG bytes (quality 90 unless given); options go to Pillow's save."""
    return encode(image, "JPEG", **{"quality": 90, **options})


# --- pytest ---------------------------------------------------------------------------------------------


@fixture
def removebg_sleeps(monkeypatch) -> list[float]:
    """The client's backoff waits, recorded instead of slept."""
    from segmentation.providers import removebg as client

    return recorded_sleeps(monkeypatch, client)


@fixture
def removebg_fake(settings, removebg_sleeps) -> Iterator[FakeRemoveBg]:
    """A running fake with the site's settings pointed at it; backoff waits are not slept."""
    with FakeRemoveBg() as fake:
        settings.REMOVEBG_API_URL = fake.base_url
        settings.REMOVEBG_API_KEY = fake.api_key
        yield fake


def main() -> None:
    arguments = command_line(__doc__, port=8901, key=DEFAULT_KEY).parse_args()
    FakeRemoveBg(api_key=arguments.key, host=arguments.host, port=arguments.port).serve_until_interrupted()


if __name__ == "__main__":
    main()
