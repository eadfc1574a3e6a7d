"""The shape of the work, not its speed: what bench/ measures stays cheap because of behaviour these
tests pin down. Intake decodes a JPEG once, in reduced (draft) mode, and encodes nothing; the first
phase of a job works from that decoded copy; a status poll reads no image; previews and downloads
hand out the stored bytes as they are, without decoding or encoding anything.

Decodes and encodes are counted by wrapping Pillow's own entry points (`ImageFile.load`, which
every file-backed decode goes through, and `Image.save`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from django.core.cache import caches
from PIL import Image, ImageFile

from segmentation import intake, jobs, pixels, previews, store
from tests.flow import token_of, upload, wait_ready, wait_unlocked
from tests.photos import encode, portrait_scene
from unlock.issuing import issue

pytestmark = pytest.mark.django_db(transaction=True)

# Long side 3200 px: intake's working copy (1536 px) is reached by JPEG's 1/2 DCT scaling.
WIDTH, HEIGHT = 3200, 2400


@dataclass
class PillowWork:
    decodes: list[tuple[str, tuple[int, int]]] = field(default_factory=list)  # (format, decoded size)
    encodes: list[tuple[str, tuple[int, int]]] = field(default_factory=list)


@contextmanager
def pillow_work(monkeypatch) -> Iterator[PillowWork]:
    work = PillowWork()
    load, save = ImageFile.ImageFile.load, Image.Image.save

    def counting_load(self, *args, **kwargs):
        if getattr(self, "tile", None):  # pixels still to decode (load() on a loaded image is free)
            work.decodes.append((self.format, self.size))
        return load(self, *args, **kwargs)

    def counting_save(self, fp, format=None, *args, **kwargs):
        work.encodes.append(((format or "").upper(), self.size))
        return save(self, fp, format, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(ImageFile.ImageFile, "load", counting_load)
        patch.setattr(Image.Image, "save", counting_save)
        yield work


@pytest.fixture(scope="module")
def camera_jpeg() -> bytes:
    """A 7.7 MP photo with EXIF, as a camera would write it."""
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    exif[0x0112] = 1
    return encode(portrait_scene(WIDTH, HEIGHT), "JPEG", quality=90, exif=exif.tobytes())


def scan_data(jpeg: bytes) -> bytes:
    """The entropy-coded pixel data: everything from the first start-of-scan marker on."""
    return jpeg[jpeg.index(b"\xff\xda") :]


def test_intake_decodes_a_jpeg_once_in_draft_mode_and_encodes_nothing(monkeypatch, camera_jpeg):
    with pillow_work(monkeypatch) as work:
        photo = intake.accept_upload(camera_jpeg)
    assert len(work.decodes) == 1, work.decodes
    decoded_format, decoded_size = work.decodes[0]
    assert decoded_format == "JPEG"
    assert decoded_size[0] <= WIDTH // 2 and decoded_size[1] <= HEIGHT // 2  # DCT-scaled, never full size
    assert work.encodes == []
    # The upload's own pixel stream is what gets stored; only the metadata segments are gone.
    assert (photo.width, photo.height) == (WIDTH, HEIGHT)
    assert scan_data(photo.data) == scan_data(camera_jpeg)
    assert b"Camera maker" not in photo.data and len(photo.data) < len(camera_jpeg)


@pytest.mark.parametrize(
    "scan, end",
    [
        (b"\x12\xff\x00\x34\xff\xd9", 4),  # a stuffed 0xFF, then the end of image
        (b"\xff\xd0\x01\xff\xd7\x02\xff\xd9", 6),  # restart markers belong to the scan
        (b"\x01\xff\xff\xff\xda", 3),  # fill bytes before the next start of scan
        (b"\x01\x02\xff", 3),  # a file cut short: the scan runs to its end
        (b"\xff\x00\xff\x00", 4),
    ],
)
def test_the_scan_ends_at_the_first_real_marker(scan, end):
    assert intake._scan_end(b"HEAD" + scan, 4) == 4 + end


def test_metadata_is_cut_without_touching_a_noisy_scan(camera_jpeg):
    clean = intake.strip_jpeg_metadata(camera_jpeg)
    assert scan_data(clean) == scan_data(camera_jpeg) and clean.endswith(b"\xff\xd9")
    assert Image.open(io.BytesIO(clean)).size == (WIDTH, HEIGHT)


def test_the_first_phase_works_from_intakes_copy_and_encodes_each_preview_once(monkeypatch, camera_jpeg):
    photo = intake.accept_upload(camera_jpeg)
    job = store.create("cutout", "local", photo.meta(), photo.data)
    with pillow_work(monkeypatch) as work:
        jobs.start(job.token, photo)  # in this thread, as the pool would run it
    assert store.get(job.token).state == store.READY
    assert work.decodes == []  # the upload is not decoded a second time
    assert sorted(fmt for fmt, _ in work.encodes) == ["WEBP", "WEBP"]  # the preview and the "before"
    assert all(w * h <= previews.PREVIEW_MAX_PIXELS for _, (w, h) in work.encodes)


def test_previews_of_one_size_share_one_watermark(monkeypatch):
    import numpy as np

    previews._watermark_layer.cache_clear()
    drawn: list[tuple[int, int]] = []
    rotate = Image.Image.rotate

    def counting_rotate(self, *args, **kwargs):
        drawn.append(self.size)
        return rotate(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "rotate", counting_rotate)
    photos = [portrait_scene(800, 600, seed=1), portrait_scene(800, 600, seed=2), portrait_scene(600, 800, seed=1)]
    rendered = [Image.open(io.BytesIO(previews.render_preview(photo))).convert("RGB") for photo in photos]
    assert len(drawn) == 2  # one watermark for each size, not one for each preview
    for photo, preview in zip(photos, rendered, strict=True):
        plain = np.asarray(pixels.fit_pixels(photo, previews.PREVIEW_MAX_PIXELS).convert("RGB"), dtype=np.int16)
        marked = np.abs(np.asarray(preview, dtype=np.int16) - plain).max(axis=2) > 40
        assert marked.mean() > 0.05, "the watermark covers the frame, also when it was drawn before"


def test_a_status_poll_reads_the_job_record_and_no_image(client, monkeypatch, camera_jpeg):
    token = token_of(upload(client, camera_jpeg))
    wait_ready(token)
    backend = caches["jobs"]
    read: list[str] = []
    get = type(backend).get

    def recording_get(self, key, *args, **kwargs):
        read.append(key)
        return get(self, key, *args, **kwargs)

    monkeypatch.setattr(type(backend), "get", recording_get)
    assert client.get(f"/jobs/{token}/status").json()["state"] == "ready"
    assert read == [token]


def test_the_preview_is_served_as_stored(client, monkeypatch, camera_jpeg):
    token = token_of(upload(client, camera_jpeg))
    job = wait_ready(token)
    with pillow_work(monkeypatch) as work:
        response = client.get(f"/jobs/{token}/preview")
    assert response.content == store.get_image(job, "preview")
    assert work.decodes == [] and work.encodes == []


def test_the_stored_result_is_downloaded_byte_identical(client, monkeypatch, camera_jpeg):
    token = token_of(upload(client, camera_jpeg))
    wait_ready(token)
    code = issue(count=1, max_uses=1, expires_at=None, label="test").displayed[0]
    assert client.post(f"/jobs/{token}/unlock", {"code": code}).status_code == 303
    job = wait_unlocked(token)
    assert job.unlocked, job.delivery_error
    stored = store.get_image(job, "result")
    with pillow_work(monkeypatch) as work:
        plain = client.get(f"/jobs/{token}/download")
        transparent = client.get(f"/jobs/{token}/download?background=transparent")
    assert plain.status_code == transparent.status_code == 200
    assert plain.content == stored and transparent.content == stored
    assert work.decodes == [] and work.encodes == []
    # A background is the one case that costs a decode and an encode, and it is done once.
    with pillow_work(monkeypatch) as work:
        white = client.get(f"/jobs/{token}/download?background=white")
    assert Image.open(io.BytesIO(white.content)).size == (WIDTH, HEIGHT)
    assert [fmt for fmt, _ in work.decodes] == ["PNG"] and [fmt for fmt, _ in work.encodes] == ["JPEG"]


# --- memory given back -------------------------------------------------------------------------------

# A worker's life in miniature: a large decode freed, then decode buffers (a little larger each
# time) freed while the results stay. Prints resident growth over the bytes still referenced.
ALLOCATIONS = """
import importlib.util, re, sys
def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
if sys.argv[1:] == ["post_fork"]:
    spec = importlib.util.spec_from_file_location("gunicorn_conf", "gunicorn.conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    conf.post_fork(None, None)
photo = bytearray(24 << 20); del photo
before = rss()
kept = []
for step in range(8):
    decoded = bytearray((4 << 20) + step * (1 << 20))
    kept.append(bytearray(2 << 20))
    del decoded
print((rss() - before) / sum(map(len, kept)))
"""


def resident_over_held(*arguments: str) -> float:
    import os
    import subprocess
    import sys

    from django.conf import settings

    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    env["PYTHONPATH"] = str(settings.BASE_DIR)
    done = subprocess.run(
        [sys.executable, "-c", ALLOCATIONS, *arguments],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


def test_a_gunicorn_worker_gives_freed_photo_memory_back():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("the setting is glibc's")
    # glibc's default keeps the freed buffers (its mmap threshold rose with the first large free)...
    assert resident_over_held() > 1.5
    # ...the worker configured by gunicorn.conf.py's post_fork returns them.
    assert resident_over_held("post_fork") < 1.3
