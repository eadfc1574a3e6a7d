"""Intake of photos: everything that decides whether an upload is a photo we take, and turns it
into a `Photo`.

`accept_upload` decides by content and refuses what is not a photo we can handle before any
pixels are decoded (size, signature, pixel count, a JPEG's structure), and produces a `Photo`:
metadata-free bytes plus the orientation to apply on decode. A plain JPEG keeps its compressed
pixel stream untouched (its metadata segments are cut out at the byte level), so the common case
costs one reduced decode, never a re-encode. Anything else — PNG, WebP, CMYK, a non-sRGB colour
profile — is decoded once, turned into sRGB and rebuilt from its pixels.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from PIL import Image, ImageCms, ImageFile

from segmentation.pixels import encode, encode_png

# Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; we refuse at the warning.
# The filter is process-wide and installed at import, before any request thread exists.
warnings.simplefilter("error", Image.DecompressionBombWarning)
ImageFile.LOAD_TRUNCATED_IMAGES = False

ACCEPTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP"}
# Intake decodes a reduced copy at about this long side: enough for every engine's first phase
# and for the previews, cheap thanks to JPEG's DCT scaling (draft mode).
WORKING_LONG_SIDE = 1536

# File signatures of formats people try that we do not take, so the message can name them.
KNOWN_OTHER_FORMATS = [
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"8BPS", "Photoshop (PSD)"),
    (b"%PDF", "PDF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
]


class ImageRejected(Exception):
    """The upload cannot be used; `message` is for the visitor."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Photo:
    """An accepted photo: metadata-free encoded bytes, and how to turn them upright.

    `working` is a reduced decoded copy made at intake and used by the first phase of a job in
    the same process; it is never stored. A Photo rebuilt from the store decodes it again lazily.
    """

    data: bytes
    media_type: str  # image/jpeg or image/png
    width: int  # upright size
    height: int
    orientation: int = 1  # EXIF orientation still to apply to `data` on decode
    has_alpha: bool = False
    working: Image.Image | None = field(default=None, repr=False, compare=False)

    def meta(self) -> dict:
        """What a job keeps of the photo besides its bytes (the store's `Job.photo_meta`)."""
        return {
            "media_type": self.media_type,
            "width": self.width,
            "height": self.height,
            "orientation": self.orientation,
            "has_alpha": self.has_alpha,
        }

    @classmethod
    def from_meta(cls, data: bytes, meta: dict) -> Photo:
        """The photo a job stored: its bytes and `meta()`."""
        return cls(data, **meta)

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def open(self) -> Image.Image:
        """The full-resolution upright image, RGB or RGBA."""
        with Image.open(io.BytesIO(self.data)) as im:
            im.load()
            return _upright_rgb(im, self.orientation)

    def open_reduced(self, long_side: int) -> Image.Image:
        """An upright RGB/RGBA copy whose long side is at most `long_side` (never upscaled).

        JPEGs decode directly at 1/2, 1/4 or 1/8 scale when that still covers `long_side`.
        """
        if self.working is not None and max(self.working.size) >= min(long_side, max(self.width, self.height)):
            return _fit(self.working, long_side)
        with Image.open(io.BytesIO(self.data)) as im:
            if im.format in ("JPEG", "MPO"):
                scale = max(1, max(im.size) // max(long_side, 1))
                im.draft(
                    im.mode if im.mode in ("RGB", "L") else "RGB",
                    (max(1, im.width // scale), max(1, im.height // scale)),
                )
            im.load()
            return _fit(_upright_rgb(im, self.orientation), long_side)

    def upright_bytes(self) -> tuple[bytes, str]:
        """Encoded, upright, metadata-free bytes for a provider: `data` itself unless it still needs
        rotating."""
        if self.orientation == 1:
            return self.data, self.media_type
        image = self.open()
        return encode_original(image), ("image/png" if image.mode == "RGBA" else "image/jpeg")


def accept_upload(data: bytes) -> Photo:
    """Validate an upload and make a Photo of it, or raise ImageRejected with a visitor message."""
    if not data:
        raise ImageRejected(_("The file is empty. Please choose a photo."))
    if len(data) > settings.MAX_UPLOAD_BYTES:
        raise ImageRejected(too_large_message(), status=413)
    _refuse_unsupported_signature(data)
    if data.startswith(b"\xff\xd8"):  # JPEG and MPO: counted before Pillow reads a byte of it
        refuse_slow_jpeg(data)
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format not in ACCEPTED_FORMATS:
                raise ImageRejected(_unsupported_message(im.format or _("this kind of file")))
            width, height = im.size
            if width * height > settings.MAX_IMAGE_PIXELS:
                raise ImageRejected(_too_many_pixels_message(width, height))
            if im.format != "MPO" and getattr(im, "n_frames", 1) > 1:
                raise ImageRejected(_("Animated images are not supported. Please upload a still photo."))
            if width < 1 or height < 1:
                raise ImageRejected(_("This image has no pixels."))
            if _can_keep_jpeg_stream(im):
                return _accept_plain_jpeg(data, im)
            return _accept_by_rebuilding(im)
    except ImageRejected:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageRejected(_("This image declares more pixels than we can process.")) from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError, KeyError) as exc:
        # Pillow reports corrupt and truncated files through these; none of them is our bug.
        raise ImageRejected(
            _(
                "We could not read this file as a photo. It may be damaged or incomplete. "
                "Please try another JPEG, PNG or WebP image."
            )
        ) from exc


def upload_limit() -> str:
    """MAX_UPLOAD_BYTES for people, in their language's units."""
    return filesizeformat(settings.MAX_UPLOAD_BYTES)


# Django's own catalogue leaves these units in English for Chinese; ours translates them (the
# project's catalogue comes first), so filesizeformat says 兆字节 rather than "MB".
FILE_SIZE_UNITS = (gettext_noop("%s KB"), gettext_noop("%s MB"), gettext_noop("%s GB"))


def too_large_message() -> str:
    return _("This file is larger than %(limit)s. Please choose a smaller photo.") % {"limit": upload_limit()}


def _too_many_pixels_message(width: int, height: int) -> str:
    return _(
        "This photo is %(width)s×%(height)s pixels, more than the %(limit)s megapixels we can process. "
        "Please upload a smaller version."
    ) % {"width": width, "height": height, "limit": settings.MAX_IMAGE_PIXELS // 1_000_000}


def _unsupported_message(kind: str) -> str:
    return _("%(kind)s files are not supported. Please upload a JPEG, PNG or WebP photo.") % {"kind": kind}


def _refuse_unsupported_signature(data: bytes) -> None:
    head = data[:32]
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis", b"avif"):
        kind = "AVIF" if head[8:12] == b"avif" else "HEIC"
        raise ImageRejected(
            _unsupported_message(kind)
            + " "
            + _("On an iPhone, choose “Most Compatible” under Settings › Camera › Formats, or share the photo as JPEG.")
        )
    for signature, kind in KNOWN_OTHER_FORMATS:
        if head.startswith(signature):
            raise ImageRejected(_unsupported_message(kind))
    stripped = head.lstrip()
    if stripped.startswith((b"<svg", b"<?xml", b"<!DOCTYPE", b"<html", b"<HTML")):
        raise ImageRejected(_unsupported_message("SVG/HTML"))
    is_jpeg = head.startswith(b"\xff\xd8\xff")
    is_png = head.startswith(b"\x89PNG\r\n\x1a\n")
    is_webp = head.startswith(b"RIFF") and head[8:12] == b"WEBP"
    if not (is_jpeg or is_png or is_webp):
        raise ImageRejected(_("This file is not a photo we can read. Please upload a JPEG, PNG or WebP image."))


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # a malformed EXIF block must not cost the visitor their photo
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _is_srgb(icc: bytes | None) -> bool:
    if not icc:
        return True
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return "srgb" in ImageCms.getProfileDescription(profile).lower().replace(" ", "")
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError):
        return False


def _can_keep_jpeg_stream(im: Image.Image) -> bool:
    return im.format in ("JPEG", "MPO") and im.mode in ("RGB", "L") and _is_srgb(im.info.get("icc_profile"))


def _accept_plain_jpeg(data: bytes, im: Image.Image) -> Photo:
    orientation = _orientation(im)
    clean = strip_jpeg_metadata(data)
    width, height = im.size
    if orientation >= 5:  # the four orientations that swap the sides
        width, height = height, width
    photo = Photo(clean, "image/jpeg", width, height, orientation=orientation)
    # Decoding the reduced copy reads every entropy-coded byte, so truncated or corrupt pixel data
    # is caught here, at upload, rather than in a job.
    photo.working = photo.open_reduced(WORKING_LONG_SIDE)
    return photo


def _accept_by_rebuilding(im: Image.Image) -> Photo:
    im.load()
    image = _upright_rgb(im, _orientation(im))
    alpha = image.mode == "RGBA"
    photo = Photo(encode_original(image), "image/png" if alpha else "image/jpeg", *image.size, has_alpha=alpha)
    photo.working = _fit(image, WORKING_LONG_SIDE)
    return photo


def _upright_rgb(im: Image.Image, orientation: int) -> Image.Image:
    """Normalise any decoded mode to RGB or RGBA, convert to sRGB, apply the orientation, and
    rebuild from pixels so that nothing of the file's metadata survives."""
    icc = im.info.get("icc_profile")
    image = _to_rgb_or_rgba(im)
    if icc and not _is_srgb(icc):
        image = _to_srgb(image, icc)
    if orientation != 1:
        image = image.transpose(_TRANSPOSE[orientation])
    if image.info:
        image.info.clear()
    return image


# EXIF orientation → the transposition that makes the pixels upright.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _to_rgb_or_rgba(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode in ("RGB", "RGBA"):
        image = im  # a throwaway decode: clearing its metadata in place saves a full copy
    elif mode.startswith("I;16") or mode in ("I", "F"):
        # 16-bit and 32-bit greyscale: scale to 8 bits instead of clipping at 255.
        import numpy as np

        array = np.asarray(im.convert("I") if mode.startswith("I;16") else im, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray((np.clip(array / peak, 0, 1) * 255 + 0.5).astype("uint8"), "L").convert("RGB")
    elif (
        mode in ("LA", "PA", "La", "RGBa")
        or (mode == "P" and "transparency" in im.info)
        or (mode in ("L", "RGB") and "transparency" in im.info)
    ):
        image = im.convert("RGBA")
    elif mode == "CMYK":
        image = im.convert("RGB")
    else:  # L, 1, P without transparency, YCbCr, LAB, HSV
        image = im.convert("RGB")
    if image.mode == "RGBA" and image.getextrema()[3][0] == 255:
        image = image.convert("RGB")  # fully opaque: the alpha channel only costs memory
    return image


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        target = ImageCms.createProfile("sRGB")
        if image.mode == "RGBA":
            rgb = ImageCms.profileToProfile(image.convert("RGB"), source, target, outputMode="RGB")
            rgb.putalpha(image.getchannel("A"))
            return rgb
        return ImageCms.profileToProfile(image, source, target, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # a broken profile: the untransformed pixels are the best we have


def _fit(image: Image.Image, long_side: int) -> Image.Image:
    """The working copy's last step, from a JPEG draft only 1.3–2× larger. Hamming, Pillow's filter
    for downscaling: under half the time of Lanczos, which cost intake as much as the reduced
    decode itself (bench/intake.py), at 41 dB PSNR against it; the working copy feeds the engines
    and is shrunk 2.7× again (with Lanczos) for the previews, so no one sees the difference."""
    if max(image.size) <= long_side:
        return image
    scale = long_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.HAMMING, reducing_gap=3.0)


def encode_original(image: Image.Image) -> bytes:
    """A rebuilt original: lossless PNG when it has transparency, else a high-quality JPEG."""
    if image.mode == "RGBA":
        return encode_png(image)
    return encode(image, "JPEG", quality=95, optimize=False)


# --- JPEG metadata, cut at the byte level ----------------------------------------------------------

# Segments a decoder needs. APP14 ("Adobe") carries only the colour transform flag, which decides
# whether three components are YCbCr or RGB; every other APPn segment and COM is metadata.
_START_OF_FRAME = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_KEEP = _START_OF_FRAME | {0xC4, 0xCC, 0xDB, 0xDC, 0xDD, 0xEE}  # DHT, DAC, DQT, DNL, DRI, APP14


# Inside entropy-coded data 0xFF is followed by 0x00 (a stuffed byte), a restart marker RST0–RST7
# or another 0xFF (fill); anything else after it is the next marker.
_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _scan_end(data: bytes, pos: int) -> int:
    """Index of the first marker after entropy-coded data (skipping stuffed bytes and restarts).
    A regular expression, because a noisy 12 MP scan holds some 10 000 0xFF bytes to step over and
    a Python loop over them cost intake 5–25 ms."""
    marker = _MARKER_AFTER_SCAN.search(data, pos)
    return marker.start() if marker else len(data)


# A photo's JPEG is a few dozen segments (a progressive one about 30, an MPO's or XMP's extensions
# a few dozen more); a file of millions of empty ones would keep the walk below busy for seconds.
MAX_JPEG_SEGMENTS = 1000
# Each scan of a progressive JPEG makes the decoder walk every block of the image again, and a scan
# costs about 73 bytes of file: 4,000 scans of a 7000×7000 image (a 496 kB file) took 24.7 s of
# CPU (measured here: about 9 ms of CPU per scan at 12 MP). libjpeg's progressive scripts have 10
# scans for colour, 6 for grey and 18 for CMYK (tests/test_hostile_files.py).
MAX_JPEG_SCANS = 32


def _jpeg_segments(data: bytes) -> Iterator[tuple[int | None, int, int]]:
    """(marker, start, end) of each segment of the first image after its SOI, a scan with its
    entropy-coded data, up to and including the EOI. Bytes where a marker should be are skipped
    to the next marker, as a decoder does, and given as (None, start, end). Linear in the file
    (every step moves on, a scan's end is found by one search) and bounded by MAX_JPEG_SEGMENTS."""
    pos, length, segments = 2, len(data), 0
    while pos < length:
        if data[pos] != 0xFF:
            end = _scan_end(data, pos)
            yield None, pos, end
            pos = end
            continue
        marker = data[pos + 1] if pos + 1 < length else 0xD9
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            yield marker, pos, pos + 2
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise ImageRejected(_("We could not read this file as a photo. It may be damaged."))
        if pos + 4 > length:
            return
        (seg_len,) = struct.unpack_from(">H", data, pos + 2)
        end = pos + 2 + seg_len
        if seg_len < 2 or end > length:
            return
        if marker == 0xDA:  # start of scan: its header and the entropy-coded data after it
            end = _scan_end(data, end)
        yield marker, pos, end
        pos = end


def refuse_slow_jpeg(data: bytes) -> None:
    """Refuse a JPEG (or MPO) whose first image has more than MAX_JPEG_SCANS scans, before anything
    decodes it. Counting stops at the first scan too many."""
    scans = 0
    for marker, _start, _end in _jpeg_segments(data):
        scans += marker == 0xDA
        if scans > MAX_JPEG_SCANS:
            raise ImageRejected(
                _(
                    "This JPEG is saved in more than %(limit)s passes (progressive scans), which takes "
                    "too long to open. Please open the photo in any photo app, save or export it again "
                    "as a JPEG, and upload that copy."
                )
                % {"limit": MAX_JPEG_SCANS}
            )


def strip_jpeg_metadata(data: bytes) -> bytes:
    """Rebuild a JPEG from its decoding segments only: no EXIF, XMP, ICC, IPTC, comments,
    thumbnails, MPO secondary frames or trailing bytes. The pixel stream is copied unchanged."""
    out = bytearray(b"\xff\xd8")
    for marker, start, end in _jpeg_segments(data):
        if marker is None:
            raise ImageRejected(_("We could not read this file as a photo. It may be damaged."))
        if marker == 0xD9:
            return bytes(out + b"\xff\xd9")
        if marker == 0xDA or marker in _KEEP:
            out += data[start:end]
    raise ImageRejected(_("This photo is incomplete (the file ends too early). Please upload it again."))
