"""Slow clients cannot starve the site: behind the shipped nginx configuration (Debian's nginx in
front of gunicorn, both started here on free loopback ports), and with gunicorn on its own.

Behaviour tests with generous margins: the load is bounded in count and in time, and the one
figure compared with a bound, the issue's own (the home page's 99th percentile under attack,
< 200 ms), is about five times what it is here with this suite alone on 2 cores (~40 ms). Other
heavy work on the same cores (another test suite, a benchmark) starves every process of CPU and
can push it over; the failure then says so with the load average.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.nginx import nginx_in_front
from tests.photos import encode, portrait_scene
from tests.slowclients import SlowUpload, multipart, percentile, request
from tests.test_scaleout import Gunicorn, site_environment

SLOW_UPLOADERS = 50
VISITORS = 8
VISITOR_SECONDS = 10
# A visitor reads a page before loading the next: the visitors' own requests (~130 a second) leave
# the cores room, so the figure is the site's answer time, not a queue the measurement makes.
VISITOR_PAUSE = 0.05
# The home page's p99 under attack must stay under 200 ms (the bar). Without nginx's
# buffering the slow uploaders hold every request thread and it does not answer for seconds.
BAR = 0.2
TRICKLE_EVERY = 2  # seconds between two pieces of a slow body: under nginx's 10 s, so they stay


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory) -> Iterator[Gunicorn]:
    """The site as deployed on one host: gunicorn with its 8 request threads, the in-memory store."""
    directory = tmp_path_factory.mktemp("site")
    env = site_environment(f"sqlite:///{directory / 'codes.sqlite3'}", "locmemcache://slow-clients")
    site = Gunicorn(env, workers=1)
    try:
        site.wait_until_serving()
        yield site
    finally:
        site.stop()


def _trickle(uploads: list[SlowUpload], stop: threading.Event) -> None:
    while not stop.wait(TRICKLE_EVERY):
        for upload in uploads:
            upload.trickle()


def _wait_ready(port: int, location: str, source: str) -> str:
    token = location.rstrip("/").rsplit("/", 1)[-1]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, _, body, _ = request(port, "GET", f"/jobs/{token}/status", source=source)
        assert status == 200, body[:300]
        if b'"ready"' in body or b'"failed"' in body:
            return body.decode()
        time.sleep(0.2)
    raise AssertionError("the job never finished")


def _visit_home(port: int, seconds: float, visitors: int = VISITORS) -> tuple[list[float], list[int]]:
    """Visitors, each from an address of its own, load the home page for `seconds`, each pausing
    VISITOR_PAUSE between two pages."""
    latencies: list[float] = []
    statuses: list[int] = []

    def visit(source: str) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            started = time.perf_counter()
            try:
                status, _, _, took = request(port, "GET", "/", source=source, timeout=15)
            except OSError:  # no answer at all: a failure the test must see, not a lost thread
                status, took = 0, time.perf_counter() - started
            statuses.append(status)
            latencies.append(took)
            time.sleep(VISITOR_PAUSE)

    threads = [threading.Thread(target=visit, args=(f"127.0.1.{n}",)) for n in range(1, visitors + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, statuses


def _noise_png(megabytes: int) -> bytes:
    """A PNG that does not compress: about `megabytes` MB, within the pixel limit."""
    side = int((megabytes * 1024**2 / 3) ** 0.5)
    pixels = np.random.default_rng(7).integers(0, 256, (side, side, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), "PNG", compress_level=1)


@pytest.mark.skipif(not Path("/usr/sbin/nginx").exists(), reason="nginx is not installed")
def test_fifty_slow_uploaders_leave_the_home_page_fast_and_uploads_working(gunicorn, tmp_path):
    photo = encode(portrait_scene(1200, 900), "JPEG", quality=90)
    large = _noise_png(18)
    assert 17 * 1024**2 < len(large) < 20 * 1024**2
    with nginx_in_front(f"127.0.0.1:{gunicorn.port}", tmp_path / "nginx") as nginx:
        # A site in service has served its home page before: templates and translations loaded.
        _visit_home(nginx.port, 1, visitors=1)
        # Fifty visitors, each from an address of its own, open an upload and trickle its body.
        slow = [SlowUpload(nginx.port, f"127.0.0.{10 + number}") for number in range(SLOW_UPLOADERS)]
        stop = threading.Event()
        trickler = threading.Thread(target=_trickle, args=(slow, stop), daemon=True)
        trickler.start()
        try:
            time.sleep(TRICKLE_EVERY + 1)  # every slow body is under way
            # Meanwhile, visitors load the home page.
            latencies, statuses = _visit_home(nginx.port, VISITOR_SECONDS)
            body_files_during_uploads = nginx.temp_files()
            still_waiting = sum(not upload.answered(0) for upload in slow)

            # Full uploads, the slow ones still under way: a photo, and one of almost the cap.
            body, content_type = multipart(photo)
            status, headers, _, _ = request(nginx.port, "POST", "/jobs/", body, content_type, source="127.0.0.7")
            assert status == 303, status
            job = _wait_ready(nginx.port, headers["Location"], "127.0.0.7")
            body, content_type = multipart(large, name="large.png")
            status, headers, answer, _ = request(nginx.port, "POST", "/jobs/", body, content_type, source="127.0.0.8")
            assert status == 303, answer[:500]
            assert nginx.temp_files() == [], "nginx wrote a request body to disk"
            assert still_waiting == SLOW_UPLOADERS, "nginx answered or dropped slow uploaders that kept sending"
        finally:
            stop.set()
            trickler.join()
            for upload in slow:
                upload.close()
        log = nginx.access_log()

    assert set(statuses) == {200}
    p99 = percentile(latencies, 0.99)
    assert p99 < BAR, (
        f"home page p99 {p99 * 1000:.0f} ms over {len(latencies)} requests; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (above the core count, other work was "
        "starving this test of CPU: run it alone)"
    )
    assert len(latencies) > 400
    assert '"ready"' in job
    assert body_files_during_uploads == []
    # The access log: path with the token cut out, no address of anybody.
    assert '"POST /jobs/" 303' in log and '"GET /jobs/[token]/status" 200' in log
    assert "127.0.0." not in log and headers["Location"].rstrip("/").rsplit("/", 1)[-1] not in log


@pytest.mark.skipif(not Path("/usr/sbin/nginx").exists(), reason="nginx is not installed")
def test_the_temp_file_check_sees_a_body_nginx_spools(gunicorn, tmp_path):
    """Control for the test above: with nginx's default 16 KB body buffer instead of the shipped
    one, the same kind of upload is on disk while it arrives, and the check sees it."""

    def default_buffer(text: str) -> str:
        assert "client_body_buffer_size 21m;" in text
        return text.replace("client_body_buffer_size 21m;", "client_body_buffer_size 16k;")

    with nginx_in_front(f"127.0.0.1:{gunicorn.port}", tmp_path / "nginx", change=default_buffer) as nginx:
        upload = SlowUpload(nginx.port)
        try:
            upload.trickle(256 * 1024)
            deadline = time.monotonic() + 10
            while not nginx.temp_files() and time.monotonic() < deadline:
                time.sleep(0.05)
            spooled = nginx.temp_files()
        finally:
            upload.close()
    assert spooled and all("client_body" in str(path) for path in spooled)


@pytest.mark.skipif(not Path("/usr/sbin/nginx").exists(), reason="nginx is not installed")
def test_idle_clients_are_dropped_and_connections_per_address_are_limited(gunicorn, tmp_path):
    with nginx_in_front(f"127.0.0.1:{gunicorn.port}", tmp_path / "nginx") as nginx:
        # From one address, 20 uploads at once: 16 are let in, the others refused at once.
        crowd = [SlowUpload(nginx.port, "127.0.0.3") for _ in range(20)]
        # Two clients that stop sending: one inside its headers, one inside its body.
        silent_body = SlowUpload(nginx.port, "127.0.0.4")
        silent_headers = SlowUpload(nginx.port, "127.0.0.5", head=b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        try:
            time.sleep(1)
            refused = [upload.answer(1) for upload in crowd if upload.answered(0)]
            alive_at_five = not silent_body.answered(4) and not silent_headers.answered(0)
            dropped_by_eighteen = silent_body.answered(13) and silent_headers.answered(1)
        finally:
            for upload in [*crowd, silent_body, silent_headers]:
                upload.close()

    assert len(refused) == 4 and all(answer.startswith(b"HTTP/1.1 429") for answer in refused), refused
    assert alive_at_five, "a client is dropped after 10 s of silence, not sooner"
    assert dropped_by_eighteen, "a client silent for 10 s must be dropped"


def test_gunicorn_alone_drops_a_body_slower_than_its_deadline(tmp_path):
    env = site_environment(
        f"sqlite:///{tmp_path / 'codes.sqlite3'}", "locmemcache://slow-body", REQUEST_BODY_DEADLINE_SECONDS="3"
    )
    site = Gunicorn(env, workers=1)
    try:
        site.wait_until_serving()
        # Four slow bodies: half the request threads are held, and the site answers meanwhile.
        slow = [SlowUpload(site.port) for _ in range(4)]
        for upload in slow:
            upload.trickle(100)
        status, _, _, _ = request(site.port, "GET", "/healthz", timeout=20)
        assert status == 200
        assert not any(upload.answered(0) for upload in slow)
        deadline = time.monotonic() + 30
        while not all(upload.answered(0) for upload in slow) and time.monotonic() < deadline:
            for upload in slow:
                upload.trickle(100)
            time.sleep(0.5)
        answers = [upload.answer() for upload in slow]
        # More slow bodies than request threads: the site is back once their deadline has passed.
        crowd = [SlowUpload(site.port) for _ in range(12)]
        for upload in crowd:
            upload.trickle(100)
        status, _, _, _ = request(site.port, "GET", "/healthz", timeout=30)
        for upload in crowd:
            upload.close()
        body, content_type = multipart(encode(portrait_scene(640, 480), "JPEG", quality=90))
        upload_status, _, _, _ = request(site.port, "POST", "/jobs/", body, content_type, timeout=120)
    finally:
        site.stop()
    assert all(answer == b"" or answer.startswith(b"HTTP/1.1 408") for answer in answers), answers
    assert any(answer.startswith(b"HTTP/1.1 408") for answer in answers)
    assert status == 200 and upload_status == 303
    assert not any("Traceback" in line for line in site.errors), "\n".join(site.errors[-40:])
