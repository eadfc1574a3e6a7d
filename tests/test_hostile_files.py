"""Hostile files: a generated corpus of 300+ uploads that are damaged, disguised, booby-trapped or
merely unusual goes through the real POST /jobs/. Each must answer 303 or a 4xx page with a message
— never a 5xx — within bounded memory; each accepted job must end ready or failed (with a message)
without hurting the worker pool; and the site must be healthy afterwards.

Everything is made in memory: Pillow writes the formats it can, the rest (16-bit RGB PNG, HEIC and
PSD headers, decompression bombs, polyglots) is assembled byte by byte, and the random mutations of
valid JPEG/PNG/WebP files come from a fixed seed, so every run sees the same corpus.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import time
import tracemalloc
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image, ImageCms

from segmentation import intake, store
from tests.flow import health_details, upload, wait_for_pool_idle
from tests.guard import finishes_in_time
from tests.photos import encode, portrait_scene

pytestmark = pytest.mark.django_db(transaction=True)

SEED = 20261126
# Intake never decodes more than this many pixels (set low here so the corpus stays quick).
MAX_PIXELS = 4_000_000
# Bounds per case. A full RGBA copy of the largest photo intake admits is 16 MB; intake and an
# engine make a handful of them. Measured worst cases: 4 MB in Python, 60 MB of RSS (the 4 MP
# all-zero PNG). Decoding what a bomb declares would take from 200 MB (64 MP) to 12 GB (65500²).
PYTHON_PEAK_BOUND = 16 * 1024**2  # tracemalloc, plus 4× the upload: bytes and arrays made in Python
RSS_GROWTH_BOUND = 40 * MAX_PIXELS  # the kernel's high-water mark: Pillow's and OpenCV's buffers too

# Crashes found by this corpus whose fix belongs to another module; each is checked every run, and
# the test fails as soon as one of them is fixed, so the entry is removed with the fix.
KNOWN_BUGS: set[str] = set()  # case names with a bug not fixed yet; each must still fail


@dataclass
class Case:
    name: str
    data: bytes
    filename: str = "photo.jpg"


# --- Building blocks -----------------------------------------------------------------------------------


def scene(width: int = 96, height: int = 72, seed: int = 1) -> Image.Image:
    return portrait_scene(width, height, seed=seed)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def raw_png(
    width: int, height: int, bit_depth: int, colour_type: int, rows: bytes, *, extra: bytes = b"", interlace: int = 0
) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, interlace)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + extra
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def png_chunks(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every chunk after the signature."""
    spans, pos = [], 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        end = pos + 12 + length
        if end > len(data):
            break
        spans.append((pos, end))
        pos = end
    return spans


def jpeg_segments(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every marker segment before the entropy-coded data."""
    spans, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        spans.append((pos, pos + 2 + length))
        if marker == 0xDA:
            break
        pos += 2 + length
    return spans


def riff_chunks(data: bytes) -> list[tuple[int, int]]:
    spans, pos = [], 12
    while pos + 8 <= len(data):
        (length,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        end = pos + 8 + length + (length & 1)
        if end > len(data):
            break
        spans.append((pos, end))
        pos = end
    return spans


def zip_of(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, content)
    return buffer.getvalue()


def with_exif(image: Image.Image, orientation, format: str = "JPEG") -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, format, exif=exif.tobytes())


def jpeg_with_sof_size(data: bytes, width: int, height: int) -> bytes:
    """The same JPEG with a start-of-frame that declares another size."""
    for start, end in jpeg_segments(data):
        if data[start + 1] in (0xC0, 0xC1, 0xC2):
            header = bytearray(data[start:end])
            header[5:9] = struct.pack(">HH", height, width)
            return data[:start] + bytes(header) + data[end:]
    raise AssertionError("no SOF")


# --- The corpus --------------------------------------------------------------------------------------


@functools.cache
def corpus() -> list[Case]:
    rng = random.Random(SEED)
    base = scene()
    jpeg = encode(base, "JPEG", quality=85)
    progressive = encode(base, "JPEG", quality=85, progressive=True)
    png = encode(base, "PNG")
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(base.size))
    png_alpha = encode(rgba, "PNG")
    webp = encode(base, "WEBP", quality=80)
    webp_lossless = encode(rgba, "WEBP", lossless=True)
    cases: list[Case] = []
    add = lambda name, data, filename="photo.jpg": cases.append(Case(name, data, filename))  # noqa: E731

    # Empty, tiny and nothing-but-a-signature files.
    for name, data in [
        ("empty", b""),
        ("one zero byte", b"\x00"),
        ("one ff byte", b"\xff"),
        ("soi only", b"\xff\xd8"),
        ("soi and marker", b"\xff\xd8\xff"),
        ("soi eoi", b"\xff\xd8\xff\xd9"),
        ("png signature", png[:8]),
        ("png signature and ihdr", png[:33]),
        ("riff header", b"RIFF\x00\x00\x00\x00WEBP"),
        ("kilobyte of zeros", bytes(1024)),
        ("kilobyte of noise", rng.randbytes(1024)),
        ("text", b"just some text, honestly a photo"),
        ("spaces", b" " * 500),
    ]:
        add(name, data)

    # Truncations of valid files, at fractions and right after the headers.
    for label, data in [
        ("jpeg", jpeg),
        ("progressive jpeg", progressive),
        ("png", png),
        ("png alpha", png_alpha),
        ("webp", webp),
        ("webp lossless", webp_lossless),
    ]:
        for fraction in (0.05, 0.2, 0.5, 0.8, 0.95, 0.99):
            add(f"{label} truncated at {fraction:.0%}", data[: int(len(data) * fraction)])
        add(f"{label} missing its last byte", data[:-1])

    # Wrong or strange names: the content decides, never the name.
    for filename in (
        "photo.png",
        "photo.gif",
        "photo.txt",
        "photo.exe",
        "photo",
        ".jpg",
        "photo.jpg.html",
        "../../../etc/passwd.jpg",
        "a" * 250 + ".jpg",
        "фото 照片 📷.jpg",
        "photo\r\nX-Evil: 1.jpg",
    ):
        add(f"jpeg named {filename[:30]!r}", jpeg, filename)
    add("png named .jpg", png)
    add("webp named .png", webp, "photo.png")

    # Polyglots.
    html = b"<html><body><script>alert(document.domain)</script></body></html>"
    add("jpeg + zip", jpeg + zip_of("evil.html", html))
    add("png + html after IEND", png + html)
    add("png with html in a text chunk", png[:33] + png_chunk(b"tEXt", b"Comment\x00" + html) + png[33:])
    add("jpeg with html in a comment", jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(html) + 2) + html + jpeg[2:])
    gif = encode(base.convert("P"), "GIF")
    add("gifar (gif + jar)", gif + zip_of("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n"))
    add("zip containing a jpeg", zip_of("photo.jpg", jpeg))
    add("html with a jpeg after it", html + jpeg)
    add("pdf header then jpeg", b"%PDF-1.7\n" + jpeg)
    add(
        "svg with a jpeg inside",
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script>'
        b'<image href="data:image/jpeg;base64,AAAA"/></svg>',
        "photo.svg",
    )
    add("xml prolog svg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>')
    add("jpeg with php appended", jpeg + b"<?php system($_GET['c']); ?>")
    add("jpeg with a megabyte of trailing garbage", jpeg + rng.randbytes(1024 * 1024))
    add("webp + zip", webp + zip_of("x.txt", b"x"))

    # Other formats, under a .jpg name.
    small = base.resize((48, 36))
    for format, params in [
        ("TIFF", {}),
        ("BMP", {}),
        ("GIF", {}),
        ("ICO", {}),
        ("PCX", {}),
        ("PPM", {}),
        ("TGA", {}),
        ("SGI", {}),
        ("QOI", {}),
        ("DDS", {}),
        ("MSP", {}),
        ("XBM", {}),
        ("EPS", {}),
        ("PDF", {}),
        ("JPEG2000", {}),
        ("AVIF", {}),
        ("ICNS", {}),
        ("BLP", {}),
        ("PALM", {}),
    ]:
        image = small.convert({"MSP": "1", "XBM": "1", "PALM": "1", "BLP": "P"}.get(format, "RGB"))
        try:
            add(f"{format} renamed .jpg", encode(image, format, **params))
        except (OSError, ValueError, KeyError) as exc:
            raise AssertionError(f"Pillow could not write {format}: {exc}") from exc
    add("tiff 32-bit float", encode(Image.fromarray(np.random.default_rng(1).random((20, 20), np.float32)), "TIFF"))
    add("heic header", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + rng.randbytes(2000))
    add("heif mif1 header", b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic" + rng.randbytes(2000))
    add("avif header", b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + rng.randbytes(2000))
    add("psd header", b"8BPS\x00\x01" + bytes(6) + struct.pack(">HIIHH", 3, 100, 100, 8, 3) + rng.randbytes(2000))
    add("mp4 header", b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + rng.randbytes(2000))
    add("elf executable", b"\x7fELF\x02\x01\x01" + bytes(9) + rng.randbytes(500))
    add("gzip", zlib.compress(jpeg))

    # Decompression bombs: huge declared sizes in tiny files.
    add("png declaring 100000x100000", raw_png(100_000, 100_000, 8, 2, b"\x00" * 64))
    add("png declaring 2^31-1 wide", raw_png(2**31 - 1, 1, 8, 0, b"\x00" * 16))
    add("png declaring 0x0", raw_png(0, 0, 8, 2, b""))
    add("jpeg declaring 65500x65500", jpeg_with_sof_size(jpeg, 65500, 65500))
    add("jpeg declaring 0x0", jpeg_with_sof_size(jpeg, 0, 0))
    add("jpeg declaring 1x65500", jpeg_with_sof_size(jpeg, 1, 65500))
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (16383 - 1).to_bytes(3, "little") * 2
    add(
        "webp canvas 16383x16383",
        b"RIFF" + struct.pack("<I", 4 + len(vp8x) + 8) + b"WEBP" + vp8x + b"VP8 \x00\x00\x00\x00",
    )
    add("png zeros just over the pixel limit", encode(Image.new("L", (2100, 2000)), "PNG", optimize=True))
    add("png zeros at 16 times the pixel limit", encode(Image.new("L", (8000, 8000)), "PNG", optimize=True))
    add("png zeros at the pixel limit", encode(Image.new("L", (2000, 2000)), "PNG", optimize=True))
    add(
        "png with a zTXt bomb",
        png[:33] + png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * 50_000_000, 9)) + png[33:],
    )
    add(
        "png with an iCCP bomb",
        png[:33] + png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(bytes(30_000_000), 9)) + png[33:],
    )
    add("png with an IDAT bomb", raw_png(1000, 1000, 8, 2, bytes(50_000_000)))

    # Animated images and multi-frame files.
    # (Fresh frames for every file: Pillow leaves encoder settings on the frames it saved.)
    for format, label in [
        ("PNG", "animated png"),
        ("WEBP", "animated webp"),
        ("GIF", "animated gif"),
        ("MPO", "mpo (stereo jpeg)"),
        ("TIFF", "multi-page tiff"),
    ]:
        frames = [scene(seed=i) for i in range(2 if format == "MPO" else 3)]
        add(label, encode(frames[0], format, save_all=True, append_images=frames[1:]))

    # Unusual but legitimate pixels.
    grey16 = np.linspace(0, 65535, 96 * 72, dtype=np.uint16).reshape(72, 96)
    add("16-bit grey png", encode(Image.fromarray(grey16), "PNG"))
    rows = b"".join(b"\x00" + np.full((96, 3), [65535, 1000, 30000], ">u2").tobytes() for _ in range(72))
    add("16-bit rgb png", raw_png(96, 72, 16, 2, rows))
    rows = b"".join(b"\x00" + np.full((96, 4), [65535, 1000, 30000, 40000], ">u2").tobytes() for _ in range(72))
    add("16-bit rgba png", raw_png(96, 72, 16, 6, rows))
    add("cmyk jpeg", encode(base.convert("CMYK"), "JPEG"))
    add("progressive jpeg with 200 scans", with_scans(progressive, 200))
    add("grey jpeg", encode(base.convert("L"), "JPEG"))
    palette = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    add("palette png with transparency", encode(palette, "PNG", transparency=0))
    add("palette png", encode(palette, "PNG"))
    add("grey+alpha png", encode(base.convert("LA"), "PNG"))
    add("1-bit png", encode(base.convert("1"), "PNG"))
    add("fully transparent png", encode(Image.new("RGBA", (96, 72), (0, 0, 0, 0)), "PNG"))
    add("rgba png", png_alpha)
    add("rgba webp", encode(rgba, "WEBP"))
    add("lossless webp", webp_lossless)
    add(
        "interlaced png",
        raw_png(96, 72, 8, 2, b"".join(b"\x00" + bytes(np.asarray(base)[y]) for y in range(72)), interlace=1),
    )
    add("progressive jpeg", progressive)
    add("jpeg 4:4:4", encode(base, "JPEG", subsampling=0))
    add("jpeg with restart markers", encode(base, "JPEG", restart_marker_blocks=1))
    add(
        "jpeg with an adobe rgb-like profile",
        encode(base, "JPEG", icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()),
    )
    add("jpeg with a broken icc profile", encode(base, "JPEG", icc_profile=b"not a profile at all" * 10))
    add("png with gamma and chromaticity", png[:33] + png_chunk(b"gAMA", struct.pack(">I", 45455)) + png[33:])

    # Extreme sizes and shapes.
    for width, height, format in [
        (1, 1, "JPEG"),
        (1, 1, "PNG"),
        (1, 1, "WEBP"),
        (2, 2, "JPEG"),
        (1, 10000, "PNG"),
        (10000, 1, "JPEG"),
        (2, 5000, "JPEG"),
        (5000, 3, "WEBP"),
        (16383, 2, "WEBP"),
        (3, 3, "PNG"),
    ]:
        add(f"{width}x{height} {format}", encode(Image.new("RGB", (width, height), (120, 80, 60)), format))

    # EXIF orientations, valid and not.
    for orientation in range(1, 9):
        add(f"jpeg exif orientation {orientation}", with_exif(scene(96, 64), orientation))
    for orientation in (0, 9, 65535):
        add(f"jpeg exif orientation {orientation}", with_exif(base, orientation))
    add("png exif orientation 6", with_exif(base, 6, "PNG"))
    add("webp exif orientation 8", with_exif(base, 8, "WEBP"))
    exif_start = jpeg.find(b"\xff\xd9")  # after the image: nobody reads it
    add(
        "jpeg exif with an endless ifd",
        jpeg[:2]
        + b"\xff\xe1"
        + struct.pack(">H", 2 + 6 + 8 + 2)
        + b"Exif\x00\x00"
        + b"II*\x00\x08\x00\x00\x00"
        + b"\xff\xff"
        + jpeg[2:],
    )
    add(
        "jpeg exif pointing outside",
        jpeg[:2]
        + b"\xff\xe1"
        + struct.pack(">H", 2 + 6 + 8)
        + b"Exif\x00\x00"
        + b"II*\x00\xff\xff\xff\x7f"
        + jpeg[2 : exif_start + 2],
    )

    # Seeded random mutations of valid JPEG, PNG and WebP files.
    bases = [("jpeg", jpeg, jpeg_segments), ("png", png, png_chunks), ("webp", webp, riff_chunks)]
    for label, data, spans in bases:
        structure = spans(data)
        for index in range(60):
            mutated = bytearray(data)
            kind = index % 6
            if kind == 0:  # bit flips
                for _ in range(rng.choice((1, 4, 32))):
                    position = rng.randrange(len(mutated))
                    mutated[position] ^= 1 << rng.randrange(8)
                name = "bit flips"
            elif kind == 1:  # truncation anywhere
                mutated = mutated[: rng.randrange(1, len(mutated))]
                name = "truncation"
            elif kind == 2:  # a chunk or segment duplicated
                start, end = rng.choice(structure)
                mutated[end:end] = data[start:end]
                name = "duplicated chunk"
            elif kind == 3:  # a chunk or segment deleted
                start, end = rng.choice(structure)
                del mutated[start:end]
                name = "deleted chunk"
            elif kind == 4:  # random bytes overwritten, mostly in the headers
                position = rng.randrange(min(len(mutated), 400))
                mutated[position : position + 8] = rng.randbytes(8)
                name = "overwritten header bytes"
            else:  # random bytes inserted
                position = rng.randrange(len(mutated))
                mutated[position:position] = rng.randbytes(rng.randrange(1, 64))
                name = "inserted bytes"
            add(f"{label} mutation {index}: {name}", bytes(mutated))
    return cases


# --- The test -----------------------------------------------------------------------------------------


def rss_high_water_reset() -> int:
    """Reset the kernel's peak-RSS counter for this process; return the current RSS."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    return _status("VmRSS")


def _status(field: str) -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def test_the_corpus_is_large_and_varied():
    cases = corpus()
    assert len(cases) >= 300
    assert len({case.name for case in cases}) == len(cases), "case names are unique"


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_every_hostile_file_gets_a_clean_answer_in_bounded_memory(client, settings):
    settings.BACKGROUND_ENGINE = "local"
    settings.CROWD_ENGINE = "local"
    settings.UPLOADS_PER_MINUTE = 0
    settings.MAX_IMAGE_PIXELS = MAX_PIXELS
    client.raise_request_exception = False  # a crash is a finding to list, not the end of the run
    problems, accepted, statuses = [], [], {}
    for number, case in enumerate(corpus()):
        mode = "crowd" if number % 5 == 0 else "cutout"
        wait_for_pool_idle()
        rss_before = rss_high_water_reset()
        tracemalloc.start()
        try:
            response = upload(client, case.data, mode=mode, name=case.filename)
            python_peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        status = response.status_code
        statuses[status] = statuses.get(status, 0) + 1
        if status == 303:
            token = response["Location"].rstrip("/").rsplit("/", 1)[-1]
            accepted.append((case.name, token))
            job = _wait_done(token)
            if (
                job is None
                or job.state not in (store.READY, store.FAILED)
                or (job.state == store.FAILED and not job.error)
            ):
                problems.append(f"{case.name}: job ended as {job and (job.state, job.error)}")
        elif 400 <= status < 500:
            page = response.content.decode(errors="replace")
            if 'role="alert"' not in page and "status-code" not in page:
                problems.append(f"{case.name}: {status} without a message")
        else:
            problems.append(f"{case.name}: answered {status}")
        rss_growth = _status("VmHWM") - rss_before
        if python_peak > PYTHON_PEAK_BOUND + 4 * len(case.data):
            problems.append(f"{case.name}: Python peak {python_peak / 1e6:.0f} MB")
        if rss_growth > RSS_GROWTH_BOUND:
            problems.append(f"{case.name}: RSS grew {rss_growth / 1e6:.0f} MB")
    known = [problem for problem in problems if problem.split(":")[0] in KNOWN_BUGS]
    assert [problem for problem in problems if problem not in known] == [], "\n".join(problems)
    assert statuses.get(303, 0) >= 60 and sum(n for s, n in statuses.items() if 400 <= s < 500) >= 150, statuses

    # Healthy afterwards: the pool drained and alive, /healthz ok, a normal photo goes through.
    wait_for_pool_idle()
    health = health_details(client)
    assert health["ok"] is True and health["jobs_in_flight"] == 0
    response = upload(client, encode(portrait_scene(800, 600), "JPEG", quality=90))
    assert response.status_code == 303
    job = _wait_done(response["Location"].rstrip("/").rsplit("/", 1)[-1])
    assert job is not None and job.state == store.READY, job and job.error

    fixed = KNOWN_BUGS - {problem.split(":")[0] for problem in known}
    assert not fixed, f"fixed now, remove from KNOWN_BUGS: {sorted(fixed)}"
    if known:
        pytest.xfail("known bugs still there:\n" + "\n".join(known))


def _wait_done(token: str, timeout: float = 60) -> store.Job | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = store.get(token)
        if job is None or job.state in (store.READY, store.FAILED):
            return job
        time.sleep(0.01)
    return store.get(token)


# --- Progressive JPEGs with thousands of scans ---------------------------------------------------------
# Each scan makes the decoder walk every block of the image again, for a few dozen bytes of file:
# a 12 MP JPEG of one colour with 4,000 scans is a 175 kB file that took over 100 s of CPU to decode
# (on a loaded machine), the normal one 0.06 s.


def with_scans(data: bytes, total: int, junk: bytes = b"") -> bytes:
    """The same JPEG with its first image's last scan repeated until it has `total` scans, and
    `junk` between them (a decoder skips such bytes to the next marker, with a warning)."""
    end = data.index(b"\xff\xd9")  # the first image's EOI: no FF D9 occurs inside a scan (stuffing)
    last = data.rindex(b"\xff\xda", 0, end)
    scans = data.count(b"\xff\xda", 0, end)
    return data[:end] + (junk + data[last:end]) * (total - scans) + data[end:]


def flat_photo(mode: str = "RGB", size: tuple[int, int] = (4000, 3000)) -> Image.Image:
    return Image.new("RGB", size, (120, 140, 160)).convert(mode)


def scan_flood(kind: str) -> bytes:
    if kind == "jpeg kept as is":
        return with_scans(encode(flat_photo(), "JPEG", progressive=True), 4000)
    if kind == "jpeg rebuilt (cmyk)":
        return with_scans(encode(flat_photo("CMYK"), "JPEG", progressive=True), 4000)
    if kind == "mpo":
        stereo = encode(flat_photo(), "MPO", save_all=True, append_images=[flat_photo()], progressive=True)
        return with_scans(stereo, 4000)
    if kind == "junk between the scans":
        return with_scans(encode(flat_photo(), "JPEG", progressive=True), 4000, junk=b"\x00junk")
    raise AssertionError(kind)


def _refused_for_its_scans(data: bytes) -> None:
    with pytest.raises(intake.ImageRejected) as refused:
        intake.accept_upload(data)
    assert "progressive scans" in refused.value.message and refused.value.status == 400


def _decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (im.width // 4, im.height // 4))
        im.load()


SCAN_FLOODS = ["jpeg kept as is", "jpeg rebuilt (cmyk)", "mpo", "junk between the scans"]


@pytest.mark.parametrize("kind", SCAN_FLOODS)
def test_a_jpeg_with_thousands_of_scans_is_refused_before_anything_decodes_it(kind):
    data = scan_flood(kind)
    with Image.open(io.BytesIO(data)) as im:  # a valid file as far as its header goes
        assert im.format in ("JPEG", "MPO") and im.size == (4000, 3000)
    assert finishes_in_time(_refused_for_its_scans, data)


def test_the_scan_flood_is_what_takes_the_decoder_so_long():
    """Without the count, this file would be decoded: it costs more than the guard allows."""
    assert not finishes_in_time(_decode, scan_flood("jpeg kept as is"))


def test_the_refusal_says_what_to_do_in_the_visitors_language(client, settings):
    settings.UPLOADS_PER_MINUTE = 0
    data = scan_flood("jpeg kept as is")
    english = upload(client, data)
    assert english.status_code == 400
    assert "save or export it again" in english.content.decode()
    chinese = upload_to(client, "/zh-hans/jobs/", data)
    assert chinese.status_code == 400
    assert "渐进式" in chinese.content.decode() and "save or export" not in chinese.content.decode()


def upload_to(client, path: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(path, {"mode": "cutout", "image": SimpleUploadedFile("photo.jpg", data, "image/jpeg")})


def test_a_million_empty_segments_are_refused_without_walking_them_all():
    photo = encode(scene(), "JPEG", quality=85)
    comments = photo[:2] + b"\xff\xfe\x00\x02" * 1_000_000 + photo[2:]
    assert finishes_in_time(_refused_as_damaged, comments)


def _refused_as_damaged(data: bytes) -> None:
    with pytest.raises(intake.ImageRejected) as refused:
        intake.accept_upload(data)
    assert "damaged" in refused.value.message


@pytest.mark.parametrize(
    "kind, scans",
    [("RGB", 10), ("L", 6), ("CMYK", 18)],
)
def test_normal_progressive_jpegs_are_still_accepted(client, settings, kind, scans):
    """libjpeg's progressive scripts: 10 scans for colour, 6 for grey, 18 for CMYK."""
    settings.UPLOADS_PER_MINUTE = 0
    data = encode(portrait_scene(1200, 900).convert(kind), "JPEG", quality=90, progressive=True)
    assert data.count(b"\xff\xda") == scans
    photo = intake.accept_upload(data)
    assert (photo.width, photo.height) == (1200, 900)
    response = upload(client, data)
    assert response.status_code == 303
    assert _wait_done(response["Location"].rstrip("/").rsplit("/", 1)[-1]).state == store.READY


def test_a_stereo_photo_of_two_progressive_frames_counts_only_the_first():
    frames = [portrait_scene(800, 600, seed=seed) for seed in (1, 2)]
    data = encode(frames[0], "MPO", save_all=True, append_images=frames[1:], progressive=True)
    assert data.count(b"\xff\xda") == 20
    data = with_scans(data, 30)  # 40 in the file, 30 in the image that is decoded
    assert intake.accept_upload(data).width == 800
