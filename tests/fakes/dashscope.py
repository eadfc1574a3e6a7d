"""A fake DashScope (Alibaba Cloud Model Studio): a real HTTP server on 127.0.0.1 that follows
docs/providers/dashscope.md for `qwen-image-edit-plus`.

The generation endpoint checks what DashScope checks — the Bearer key (401 InvalidApiKey), a known
model (400 "Model not exist."), one user message with 1–3 images (data URI or https URL) and exactly
one text, the parameters' types and ranges — and answers like DashScope: a signed-looking result URL
on storage the fake serves itself (`GET /results/<id>.png?Expires=…&OSSAccessKeyId=…&Signature=…`,
refused with 403 when the request carries an Authorization header, as OSS refuses a second kind of
credential), or an error body `{"code", "message", "request_id"}`.

Its edit is simple but real and checkable: the rectangles in `erase` (fractions of the frame) are
painted over with the median colour of a ring around each, and the frame comes back at the
requested `size` with the drift an image-edit model has — a global colour shift (`colour_shift`,
+2 by default), optionally softer (`blur`) and slightly zoomed (`zoom`).

Switches make it fail the way DashScope does: `fail_next` (any status and code, optionally with
Retry-After), `moderate_next` (DataInspectionFailed), `throttle_next` (429 Throttling.RateQuota),
`break_next` (500 InternalError), `code_in_200_next`, `slow_next`, `stall_next` (half an answer, then
silence), `drop_next` (hang up after reading the request), and for the result download
`fail_download_next`, `drop_download_next` and `redirect_download_next`. Every request is recorded.

Run on its own: `python -m tests.fakes.dashscope --port 8902 [--key KEY]`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import json
import re
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from segmentation import pixels
from segmentation.pixels import encode_png
from tests.fakes.server import (
    AT_ONCE,
    Answer,
    FakeServer,
    Pacing,
    ReceivedRequest,
    command_line,
    fixture,
    recorded_sleeps,
)

if TYPE_CHECKING:  # the fake runs on its own, without Django: the site's modules load only in tests
    from segmentation.intake import Photo

BASE_PATH = "/api/v1"
GENERATION_PATH = f"{BASE_PATH}/services/aigc/multimodal-generation/generation"
DEFAULT_KEY = "sk-fake-dashscope-key"
MODELS = {"qwen-image-edit-plus", "qwen-image-edit-max", "qwen-image-edit"}
IMAGE_TYPES = {"image/jpeg", "image/jpg", "image/png", "image/bmp", "image/tiff", "image/webp", "image/gif"}
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MIN_SIDE, MAX_SIDE = 384, 3072
MIN_OUTPUT_SIDE, MAX_OUTPUT_SIDE = 512, 2048
PARAMETERS = {"n", "prompt_extend", "watermark", "negative_prompt", "seed", "size"}
RESULT_TTL = 24 * 3600
DATA_URI = re.compile(r"data:(?P<mime>[\w/+.-]+);base64,(?P<data>.*)", re.S)


@dataclass
class Forced:
    """An answer the fake gives instead of doing the work (after checking key and body)."""

    status: int  # 0: close the connection without answering
    code: str = ""
    message: str = ""
    retry_after: str | None = None


@dataclass
class StoredResult:
    data: bytes
    expires: int
    signature: str


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FakeDashScope(FakeServer):
    name = "fake-dashscope"
    base_path = BASE_PATH
    settings_prefix = "DASHSCOPE"

    def __init__(self, api_key: str = DEFAULT_KEY, host: str = "127.0.0.1", port: int = 0):
        super().__init__(api_key, host, port)
        # The edit: rectangles (left, top, right, bottom) as fractions of the frame.
        self.erase: list[tuple[float, float, float, float]] = []
        self.colour_shift = 2
        self.blur = 0.0  # Gaussian radius in output pixels
        self.zoom = 1.0  # > 1: the output shows a slightly smaller centre of the frame
        self.result_url: str | None = None  # hand out this URL instead of the fake's own
        self._forced: deque[Forced] = deque()
        self._code_in_200: deque[str] = deque()
        self._download_failures: deque[int] = deque()
        self._download_drops = 0
        self._download_redirects: deque[str] = deque()
        self._delays: deque[float] = deque()
        self._stalls: deque[float] = deque()
        self._results: dict[str, StoredResult] = {}
        self._signing_key = uuid.uuid4().bytes

    # --- switches ---------------------------------------------------------------------------------

    def fail_next(
        self, status: int, code: str, message: str = "", *, times: int = 1, retry_after: str | int | None = None
    ) -> None:
        """Answer the next `times` valid generation calls with this error."""
        forced = Forced(status, code, message or f"fake {code}", None if retry_after is None else str(retry_after))
        self._push(self._forced, [forced] * times)

    def moderate_next(self, times: int = 1) -> None:
        self.fail_next(400, "DataInspectionFailed", "Input data may contain inappropriate content.", times=times)

    def throttle_next(self, times: int = 1, retry_after: str | int | None = None) -> None:
        self.fail_next(
            429,
            "Throttling.RateQuota",
            "Requests rate limit exceeded, please try again later.",
            times=times,
            retry_after=retry_after,
        )

    def break_next(self, times: int = 1) -> None:
        self.fail_next(500, "InternalError", "An internal error has occured, please try again later.", times=times)

    def drop_next(self, times: int = 1) -> None:
        """Read the next `times` generation calls, then hang up without answering."""
        self._push(self._forced, [Forced(0)] * times)

    def code_in_200_next(self, code: str = "InternalError.Algo", times: int = 1) -> None:
        """Answer HTTP 200 with an error body (DashScope does this for some failures)."""
        self._push(self._code_in_200, [code] * times)

    def slow_next(self, seconds: float, times: int = 1) -> None:
        """Delay the next `times` generation answers by `seconds`."""
        self._push(self._delays, [seconds] * times)

    def stall_next(self, seconds: float, times: int = 1) -> None:
        """Send the headers and half of the next `times` generation answers, then go quiet for
        `seconds`: the image was made, the answer never fully arrives."""
        self._push(self._stalls, [seconds] * times)

    def fail_download_next(self, status: int, times: int = 1) -> None:
        self._push(self._download_failures, [status] * times)

    def drop_download_next(self, times: int = 1) -> None:
        """Hang up on the next `times` result downloads without answering."""
        with self._lock:
            self._download_drops += times

    def redirect_download_next(self, location: str, status: int = 302) -> None:
        """Answer the next result download with a redirect to `location` (as a storage front might
        send a client elsewhere); the redirect carries the original signed query string."""
        self._push(self._download_redirects, [f"{status} {location}"])

    # --- what happened ----------------------------------------------------------------------------

    @property
    def generation_calls(self) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path == GENERATION_PATH]

    @property
    def downloads(self) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.path.startswith("/results/")]

    # --- the API ----------------------------------------------------------------------------------

    def handle(self, request: ReceivedRequest) -> Answer:
        if request.path.startswith("/results/") and request.method == "GET":
            return self._download(request)
        request_id = str(uuid.uuid4())
        if request.path != GENERATION_PATH or request.method != "POST":
            return _error(404, "NotFound", "Not found.", request_id)
        authorization = request.header("Authorization") or ""
        if not authorization.startswith("Bearer ") or not authorization[7:].strip():
            return _error(401, "InvalidApiKey", "No API-key provided.", request_id)
        if not hmac.compare_digest(authorization[7:].strip(), self.api_key):
            return _error(401, "InvalidApiKey", "Invalid API-key provided.", request_id)
        if (request.header("X-DashScope-Async") or "").lower() == "enable":
            return _error(403, "AccessDenied", "current user api does not support asynchronous calls", request_id)
        try:
            body = _parse_body(request)
            images, text, parameters = _validate(body)
            frame = _decode_image(images[0])
        except Refused as exc:
            return _error(exc.status, exc.code, exc.message, request_id)

        forced = self._pop(self._forced)
        if forced is not None:
            if forced.status == 0:
                return 0, [], b""
            extra = [("Retry-After", forced.retry_after)] if forced.retry_after is not None else []
            status, headers, payload = _error(forced.status, forced.code, forced.message, request_id)
            return status, headers + extra, payload
        code = self._pop(self._code_in_200)
        if code is not None:
            return _error(200, code, f"fake {code}", request_id)

        edited = self.edit(frame, _output_size(parameters.get("size"), frame.size))
        url = self.publish(edited) if self.result_url is None else self.result_url
        answer = {
            "output": {
                "choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": [{"image": url}]}}]
            },
            "usage": {"width": edited.width, "height": edited.height, "image_count": 1},
            "request_id": request_id,
        }
        return 200, [("Content-Type", "application/json")], json.dumps(answer).encode()

    def pacing(self, request: ReceivedRequest) -> Pacing:
        """`slow_next` and `stall_next` hold back generation answers only, never a download."""
        if request.path != GENERATION_PATH:
            return AT_ONCE
        return Pacing(before=self._pop(self._delays, 0.0), pause=self._pop(self._stalls), hang_up=True)

    def edit(self, frame: Image.Image, size: tuple[int, int]) -> Image.Image:
        """The fake model, with the current switches."""
        return redraw(frame, size, erase=self.erase, colour_shift=self.colour_shift, blur=self.blur, zoom=self.zoom)

    def publish(self, image: Image.Image) -> str:
        """Keep `image` as a result and return its signed URL."""
        data = encode_png(image)
        name = uuid.uuid4().hex
        expires = int(time.time()) + RESULT_TTL
        signature = self._sign(name, expires)
        with self._lock:
            self._results[name] = StoredResult(data, expires, signature)
        query = urllib.parse.urlencode(
            {"Expires": expires, "OSSAccessKeyId": "LTAI5tFakeAccessKeyId", "Signature": signature}
        )
        return f"{self.origin}/results/{name}.png?{query}"

    def _sign(self, name: str, expires: int) -> str:
        digest = hmac.new(self._signing_key, f"{name}\n{expires}".encode(), hashlib.sha1).digest()
        return base64.b64encode(digest).decode()

    def _download(self, request: ReceivedRequest) -> Answer:
        if request.header("Authorization") is not None:
            return _oss_error(403, "AccessDenied", "Authorization header is not allowed with a signed URL.")
        with self._lock:
            drop, self._download_drops = self._download_drops > 0, max(0, self._download_drops - 1)
        if drop:
            return 0, [], b""
        redirect = self._pop(self._download_redirects)
        if redirect is not None:
            status, location = redirect.split(" ", 1)
            return int(status), [("Location", location), ("Content-Type", "text/plain")], b"moved"
        status = self._pop(self._download_failures)
        if status is not None:
            return _oss_error(status, "InternalError", "fake download failure")
        name = request.path.removeprefix("/results/").removesuffix(".png")
        with self._lock:
            stored = self._results.get(name)
        if stored is None:
            return _oss_error(404, "NoSuchKey", "The specified key does not exist.")
        if not hmac.compare_digest(request.query.get("Signature", ""), stored.signature) or request.query.get(
            "Expires"
        ) != str(stored.expires):
            return _oss_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")
        if time.time() > stored.expires:
            return _oss_error(403, "AccessDenied", "Request has expired.")
        return 200, [("Content-Type", "image/png")], stored.data


# --- request checks -------------------------------------------------------------------------------


def _parse_body(request: ReceivedRequest) -> dict:
    if not (request.header("Content-Type") or "").lower().startswith("application/json"):
        raise Refused(400, "InvalidParameter", "Content-Type must be application/json.")
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "InvalidParameter.JsonPhrase", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise Refused(400, "InvalidParameter.JsonPhrase", "The request body must be a JSON object.")
    return body


def _validate(body: dict) -> tuple[list[str], str, dict]:
    model = body.get("model")
    if not model:
        raise Refused(400, "InvalidParameter", "Model not specified.")
    if model not in MODELS:
        raise Refused(400, "InvalidParameter", "Model not exist.")
    messages = (body.get("input") or {}).get("messages") if isinstance(body.get("input"), dict) else None
    if not isinstance(messages, list) or len(messages) != 1:
        raise Refused(400, "InvalidParameter", "input.messages must hold exactly one message.")
    message = messages[0]
    if not isinstance(message, dict) or message.get("role") != "user" or not isinstance(message.get("content"), list):
        raise Refused(400, "InvalidParameter", "The message must have role user and a content list.")
    images, texts = [], []
    for part in message["content"]:
        if not isinstance(part, dict) or len(part) != 1:
            raise Refused(400, "InvalidParameter", "Each content item holds one image or one text.")
        if isinstance(part.get("image"), str):
            images.append(part["image"])
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            raise Refused(400, "InvalidParameter", "Each content item holds one image or one text.")
    if not 1 <= len(images) <= 3 or len(texts) != 1:
        raise Refused(400, "InvalidParameter", "The message needs 1 to 3 images and exactly one text.")
    if not 1 <= len(texts[0]) <= 800:
        raise Refused(400, "InvalidParameter", "The text must have 1 to 800 characters.")
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise Refused(400, "InvalidParameter", "parameters must be an object.")
    unknown = set(parameters) - PARAMETERS
    if unknown:  # the real service may ignore these; the fake is strict to catch typos
        raise Refused(400, "InvalidParameter", f"Unknown parameters: {', '.join(sorted(unknown))}.")
    if "n" in parameters and (type(parameters["n"]) is not int or not 1 <= parameters["n"] <= 6):
        raise Refused(400, "InvalidParameter", "n must be an integer from 1 to 6.")
    for flag in ("prompt_extend", "watermark"):
        if flag in parameters and not isinstance(parameters[flag], bool):
            raise Refused(400, "InvalidParameter", f"{flag} must be a boolean.")
    negative = parameters.get("negative_prompt", "")
    if not isinstance(negative, str) or len(negative) > 500:
        raise Refused(400, "InvalidParameter", "negative_prompt must be a string of at most 500 characters.")
    seed = parameters.get("seed", 0)
    if type(seed) is not int or not 0 <= seed <= 2147483647:
        raise Refused(400, "InvalidParameter", "seed must be an integer from 0 to 2147483647.")
    if "size" in parameters:
        if model == "qwen-image-edit":  # the older model makes one image of its own size
            raise Refused(400, "InvalidParameter", "size is not supported by this model.")
        _output_size(parameters["size"], (1, 1))
    if model == "qwen-image-edit" and parameters.get("n", 1) != 1:
        raise Refused(400, "InvalidParameter", "n must be 1 for this model.")
    return images, texts[0], parameters


def _output_size(size: object, frame: tuple[int, int]) -> tuple[int, int]:
    """The requested `size`, or about 1 MP with the input's aspect ratio."""
    if size is None:
        width, height = frame
        scale = (1024 * 1024 / (width * height)) ** 0.5
        return max(16, round(width * scale / 16) * 16), max(16, round(height * scale / 16) * 16)
    match = re.fullmatch(r"(\d+)\*(\d+)", size) if isinstance(size, str) else None
    if not match:
        raise Refused(400, "InvalidParameter", "size must look like 1024*1024.")
    width, height = int(match[1]), int(match[2])
    if not (MIN_OUTPUT_SIDE <= width <= MAX_OUTPUT_SIDE and MIN_OUTPUT_SIDE <= height <= MAX_OUTPUT_SIDE):
        raise Refused(400, "InvalidParameter", "Each side of size must be between 512 and 2048.")
    return width, height


def _decode_image(reference: str) -> Image.Image:
    if reference.startswith("https://"):
        # The fake has no internet; DashScope reports an unreachable image like this.
        raise Refused(400, "InvalidParameter.FileDownload", "Download the media resource timed out.")
    match = DATA_URI.fullmatch(reference)
    if not match:
        raise Refused(400, "InvalidParameter", "The image must be a data URI or an https URL.")
    if match["mime"].lower() not in IMAGE_TYPES:
        raise Refused(400, "InvalidParameter.ImageFormat", "The image format is not supported.")
    try:
        data = base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise Refused(400, "InvalidParameter.ImageContent", "The image data is not valid base64.") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise Refused(400, "InvalidParameter.ImageContent", "The image exceeds 10 MB.")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            frame = im.convert("RGB")
    except Exception:
        raise Refused(400, "InvalidParameter.ImageFormat", "The image cannot be decoded.") from None
    if not (min(frame.size) >= MIN_SIDE and max(frame.size) <= MAX_SIDE):
        raise Refused(400, "InvalidParameter.ImageContent", "Image sides must be between 384 and 3072 pixels.")
    return frame


def redraw(
    frame: Image.Image, size: tuple[int, int], *, erase=(), colour_shift: int = 2, blur: float = 0.0, zoom: float = 1.0
) -> Image.Image:
    """What the fake model does: erase the rectangles in `erase` (fractions of the frame) with the
    colour around each, then redraw the frame at `size` with a model's drift."""
    pixels = np.array(frame.convert("RGB"))
    height, width = pixels.shape[:2]
    for left, top, right, bottom in erase:
        box = (int(left * width), int(top * height), int(np.ceil(right * width)), int(np.ceil(bottom * height)))
        pixels[box[1] : box[3], box[0] : box[2]] = _ring_median(pixels, box)
    image = Image.fromarray(pixels)
    if zoom != 1.0:
        # Zoom about the centre straight into the output grid (reflecting at the border when
        # zooming out), as the model's own slight reframing does.
        sx, sy = width / size[0] / zoom, height / size[1] / zoom
        to_input = np.array([[sx, 0, (width - sx * size[0]) / 2], [0, sy, (height - sy * size[1]) / 2]])
        warped = cv2.warpAffine(
            pixels, to_input, size, flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
        )
        image = Image.fromarray(warped)
    else:
        image = image.resize(size, Image.Resampling.LANCZOS)
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    if colour_shift:
        shifted = np.asarray(image).astype(np.int16) + colour_shift
        image = Image.fromarray(np.clip(shifted, 0, 255).astype(np.uint8))
    return image


def _ring_median(pixels: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The median colour just outside `box`: what a plain background behind a person looks like."""
    height, width = pixels.shape[:2]
    margin = max(2, (box[2] - box[0]) // 10)
    outer = (
        max(0, box[0] - margin),
        max(0, box[1] - margin),
        min(width, box[2] + margin),
        min(height, box[3] + margin),
    )
    ring = np.ones((outer[3] - outer[1], outer[2] - outer[0]), bool)
    ring[box[1] - outer[1] : box[3] - outer[1], box[0] - outer[0] : box[2] - outer[0]] = False
    region = pixels[outer[1] : outer[3], outer[0] : outer[2]]
    return np.median(region[ring], axis=0).astype(np.uint8) if ring.any() else np.array([128, 128, 128], np.uint8)


def _error(status: int, code: str, message: str, request_id: str) -> Answer:
    payload = {"code": code, "message": message, "request_id": request_id}
    return status, [("Content-Type", "application/json")], json.dumps(payload).encode()


def _oss_error(status: int, code: str, message: str) -> Answer:
    payload = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return status, [("Content-Type", "application/xml")], payload.encode()


# --- photos with people to remove -----------------------------------------------------------------


@dataclass
class Scene:
    """A generated street photo: a subject in the middle and passers-by at known places
    (boxes as fractions of the frame: left, top, right, bottom)."""

    image: Image.Image
    subject: tuple[float, float, float, float]
    passers_by: list[tuple[float, float, float, float]] = field(default_factory=list)

    def pixels(self, box: tuple[float, float, float, float], size: tuple[int, int] | None = None):
        """`box` in pixels of an image of `size` (the scene's own by default)."""
        width, height = size or self.image.size
        return int(box[0] * width), int(box[1] * height), int(np.ceil(box[2] * width)), int(np.ceil(box[3] * height))


def street_scene(width: int, height: int) -> Scene:
    """A sky-to-pavement gradient with a finely striped subject (whose full-resolution detail the
    composite must keep) and two dark passers-by on plain background to either side."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top, bottom = np.array([150, 190, 230], np.float32), np.array([170, 160, 140], np.float32)
    background = (top * (1 - y) + bottom * y) * np.ones((1, width, 1), np.float32)
    image = Image.fromarray(background.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    subject = (0.38, 0.2, 0.62, 1.0)
    left, upper, right, lower = int(subject[0] * width), int(subject[1] * height), int(subject[2] * width), height
    draw.ellipse(
        (left + (right - left) * 0.25, upper, right - (right - left) * 0.25, upper + (lower - upper) * 0.3),
        fill=(224, 172, 140),
    )
    stripe = max(1, width // 400)
    for x in range(left, right, 2 * stripe):  # detail no 2048-px model frame can carry at full size
        draw.rectangle((x, upper + (lower - upper) * 0.32, x + stripe - 1, lower), fill=(30, 60, 120))
        draw.rectangle((x + stripe, upper + (lower - upper) * 0.32, x + 2 * stripe - 1, lower), fill=(235, 235, 235))
    passers_by = [(0.08, 0.45, 0.16, 0.85), (0.78, 0.5, 0.86, 0.9)]
    for box in passers_by:
        draw.rectangle((box[0] * width, box[1] * height, box[2] * width, box[3] * height), fill=(45, 35, 30))
    return Scene(image, subject, passers_by)


def encode(image: Image.Image, kind: str = "JPEG", **options) -> bytes:
    return pixels.encode(image, kind, **({"quality": 92, **options} if kind == "JPEG" else options))


# --- pytest ---------------------------------------------------------------------------------------


@fixture
def dashscope_sleeps(monkeypatch) -> list[float]:
    """The client's backoff waits, recorded instead of slept."""
    from segmentation.providers import dashscope as client

    return recorded_sleeps(monkeypatch, client)


@fixture
def dashscope_fake(settings, dashscope_sleeps) -> Iterator[FakeDashScope]:
    """A running fake with the site's settings pointed at it; backoff waits are not slept."""
    with FakeDashScope() as fake:
        settings.DASHSCOPE_API_URL = fake.base_url
        settings.DASHSCOPE_API_KEY = fake.api_key
        settings.DASHSCOPE_MODEL = "qwen-image-edit-plus"
        yield fake


def erase_people(photo: Photo | None = None) -> Image.Image:
    """One call through the site's DashScope client (pointed at the fake by `dashscope_fake`), closed
    afterwards: the model's edited frame. The photo is a 640×480 street scene unless given."""
    from segmentation.intake import accept_upload
    from segmentation.providers.dashscope import DashScopeClient

    client = DashScopeClient()
    try:
        return client.erase_people(photo if photo is not None else accept_upload(encode(street_scene(640, 480).image)))
    finally:
        client.close()


def main() -> None:
    parser = command_line(__doc__, port=8902, key=DEFAULT_KEY)
    parser.add_argument(
        "--erase",
        action="append",
        default=[],
        metavar="L,T,R,B",
        help="a rectangle to erase, as fractions of the frame (repeatable)",
    )
    arguments = parser.parse_args()
    fake = FakeDashScope(api_key=arguments.key, host=arguments.host, port=arguments.port)
    fake.erase = [tuple(float(v) for v in box.split(",")) for box in arguments.erase]
    fake.serve_until_interrupted()


if __name__ == "__main__":
    main()
