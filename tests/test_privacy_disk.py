"""Promise: photos are never written to disk.

A visitor's whole visit — an 18 MB upload, processing, previews, unlock, full-resolution
downloads, delete — runs in a fresh Python process while two witnesses watch:

* an audit hook (sys.addaudithook) that records every attempt to create, write, rename or delete
  a file, make a temporary file or directory, map a file writably, open an on-disk SQLite
  database or start another process (whose writes the next witness could not see);
* the kernel's own count of bytes this process sent to storage (`write_bytes` in /proc/self/io),
  which also sees what C libraries (Pillow, OpenCV, SQLite) write past Python.

The child process uses an in-memory test database (the unlock codes' SQLite file is the one
thing on disk by design), writes no bytecode, and logs to a pipe — so any byte it writes to disk
during the visit is a broken promise. It is a separate process so that pytest's own output capture
(temporary files) does not count against the site.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UPLOAD_MIN_BYTES = 15 * 1024 * 1024

# --- The child process -------------------------------------------------------------------------------

_recording = False
_events: list[str] = []
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_FILE_CHANGES = {
    "os.rename",
    "os.remove",
    "os.rmdir",
    "os.mkdir",
    "os.truncate",
    "os.link",
    "os.symlink",
    "os.chmod",
    "os.chown",
    "os.utime",
    "os.mkfifo",
    "os.mknod",
    "shutil.copyfile",
    "shutil.copymode",
    "shutil.copystat",
    "shutil.copytree",
    "shutil.move",
    "shutil.rmtree",
    "tempfile.mkstemp",
    "tempfile.mkdtemp",
}
_NEW_PROCESSES = {
    "subprocess.Popen",
    "os.system",
    "os.posix_spawn",
    "os.spawn",
    "os.exec",
    "os.fork",
    "os.forkpty",
    "pty.spawn",
}


def _audit(event: str, args: tuple) -> None:
    if not _recording:
        return
    if event == "open":
        path, mode, flags = args
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS
        )
        if writes:
            _events.append(f"open({path!r}, mode={mode!r}, flags={flags!r}) in {threading.current_thread().name}")
    elif event in _FILE_CHANGES or event in _NEW_PROCESSES:
        _events.append(f"{event}{args!r:.200} in {threading.current_thread().name}")
    elif event == "mmap.__new__" and args[0] != -1:
        _events.append(f"mmap of file descriptor {args[0]}")
    elif event == "sqlite3.connect" and "memory" not in str(args[0]):
        _events.append(f"sqlite3.connect({args[0]!r})")


def _bytes_written_to_storage() -> int:
    with open("/proc/self/io") as io_stats:
        return int(next(line for line in io_stats if line.startswith("write_bytes:")).split()[1])


def large_noisy_portrait() -> bytes:
    """A real person (skimage's astronaut) on a 5000×4000 scene with sensor-like noise, saved at
    quality 99: about 18 MB, the size of a phone's full-resolution photo."""
    import numpy as np
    from PIL import Image

    from tests.photos import astronaut, encode

    width, height = 5000, 4000
    scene = np.empty((height, width, 3), np.uint8)
    scene[:] = np.linspace(60, 200, width, dtype=np.float32).astype(np.uint8)[None, :, None]
    image = Image.fromarray(scene)
    image.paste(astronaut().resize((height, height)), ((width - height) // 2, 0))
    noise = np.random.default_rng(7).integers(0, 40, (height, width, 3), dtype=np.uint8)
    noisy = np.clip(np.asarray(image).astype(np.int16) + noise - 20, 0, 255).astype(np.uint8)
    return encode(Image.fromarray(noisy), "JPEG", quality=99)


def _visit(client, photo: bytes, mode: str, code: str) -> dict:
    """One visitor, start to end, through the site's real views; returns what they got."""
    from tests.flow import token_of, upload, wait_ready, wait_unlocked

    statuses = {}
    token = token_of(upload(client, photo, mode=mode))
    statuses["job page"] = client.get(f"/jobs/{token}/").status_code
    job = wait_ready(token)
    statuses["state"] = job.state
    for name in ("status", "preview", "before"):
        statuses[name] = client.get(f"/jobs/{token}/{name}").status_code
    statuses["unlock"] = client.post(f"/jobs/{token}/unlock", {"code": code}).status_code
    statuses["unlocked"] = wait_unlocked(token).unlocked
    downloads = [client.get(f"/jobs/{token}/download"), client.get(f"/jobs/{token}/download?background=white")]
    statuses["downloads"] = [(d.status_code, d["Content-Type"], len(d.content)) for d in downloads]
    statuses["delete"] = client.post(f"/jobs/{token}/delete").status_code
    statuses["gone"] = client.get(f"/jobs/{token}/").status_code
    return statuses


def child_main() -> None:
    """Run in the child: warm up, then one watched visit per tool; print the findings as JSON."""
    global _recording
    sys.addaudithook(_audit)
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    from tests.photos import encode, portrait_scene
    from unlock.issuing import issue

    setup_test_environment()
    connection.creation.create_test_db(verbosity=0, serialize=False)
    client = Client()
    codes = issue(count=3, max_uses=1, expires_at=None, label="disk").displayed
    small = encode(portrait_scene(640, 480), "JPEG", quality=90)
    # Warm-up: lazy imports, the segmentation model, thread pools, the caches' sweepers.
    warm = [_visit(client, small, "cutout", codes[0]), _visit(client, small, "crowd", codes[1])]
    large = large_noisy_portrait()
    crowd = encode(portrait_scene(1600, 1200), "JPEG", quality=92)

    before = _bytes_written_to_storage()
    _recording = True
    visits = {"cutout": _visit(client, large, "cutout", codes[2])}
    third_code = issue(count=1, max_uses=1, expires_at=None, label="disk").displayed[0]
    visits["crowd"] = _visit(client, crowd, "crowd", third_code)
    time.sleep(0.5)  # let any straggling worker write finish before the count is read
    _recording = False
    written = _bytes_written_to_storage() - before
    print(
        json.dumps({"upload_bytes": len(large), "written": written, "events": _events, "visits": visits, "warm": warm})
    )


# --- The test ----------------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux's /proc/self/io")
def test_a_whole_visit_with_an_18_mb_photo_writes_nothing_to_disk():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DEBUG="true",
        DATABASE_URL="sqlite://:memory:",
        BACKGROUND_ENGINE="local",
        CROWD_ENGINE="local",
        UPLOADS_PER_MINUTE="0",
        PYTHONDONTWRITEBYTECODE="1",
    )
    child = subprocess.run(
        [sys.executable, "-c", "from tests.test_privacy_disk import child_main; child_main()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    for visit in (*report["warm"], *report["visits"].values()):
        assert visit["state"] == "ready" and visit["unlocked"] is True, visit
        assert [status for status, _, _ in visit["downloads"]] == [200, 200] and visit["gone"] == 404, visit
    assert report["upload_bytes"] >= UPLOAD_MIN_BYTES
    full = report["visits"]["cutout"]["downloads"][0]
    assert full[1] == "image/png" and full[2] > 1_000_000, "the full-resolution result really was made"
    assert report["events"] == [], "file writes during the visit:\n" + "\n".join(report["events"])
    assert report["written"] == 0, f"{report['written']} bytes written to disk during the visit"
