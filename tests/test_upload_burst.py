"""A burst of uploads cannot hold every request thread: gunicorn as deployed (8 request threads,
JOB_WORKERS=2), each upload's intake made slow as a whole-photo decode is on a busy machine. Uploads
that find the decoding slots taken wait briefly, only as many as decode, and the rest hear 503 at
once; meanwhile the home page answers.

No bound on time: the home page must answer before the first slow intake is over, which it cannot
do while every request thread is waiting for a slot (the home page then answers after ~20 s)."""

from __future__ import annotations

import re
import threading
import time

from tests.photos import encode, portrait_scene
from tests.slowclients import multipart, request
from tests.test_scaleout import Gunicorn, site_environment

BURST = 24
INTAKE_SECONDS = 6  # each intake; the two decoding slots are busy this long


def test_a_burst_of_uploads_leaves_the_home_page_answering(tmp_path):
    env = site_environment(
        f"sqlite:///{tmp_path / 'codes.sqlite3'}", "locmemcache://burst", SLOW_INTAKE_SECONDS=str(INTAKE_SECONDS)
    )
    site = Gunicorn(env, workers=1, access_log_format=None, config="tests/slow_intake_gunicorn.py")
    uploads: list[tuple[int, str | None, float]] = []
    home: list[tuple[int, float]] = []
    try:
        site.wait_until_serving()
        body, content_type = multipart(encode(portrait_scene(640, 480), "JPEG", quality=90))

        def send(number: int) -> None:
            status, headers, _, _ = request(
                site.port, "POST", "/jobs/", body, content_type, source=f"127.0.1.{number}", timeout=120
            )
            uploads.append((status, headers.get("Retry-After"), time.monotonic()))

        burst = [threading.Thread(target=send, args=(number,)) for number in range(1, BURST + 1)]
        for sender in burst:
            sender.start()
        time.sleep(1)  # the burst has arrived: two intakes under way, the rest waiting or refused
        for _ in range(5):
            status, _, _, _ = request(site.port, "GET", "/", source="127.0.0.2", timeout=120)
            home.append((status, time.monotonic()))
        for sender in burst:
            sender.join()
    finally:
        site.stop()

    assert [status for status, _ in home] == [200] * 5
    admitted = [done for status, _, done in uploads if status == 303]
    assert admitted, "the first uploads of the burst are admitted"
    assert max(done for _, done in home) < min(admitted), "the home page answered only after the slow intakes"
    assert {status for status, _, _ in uploads} == {303, 503}
    assert all(int(retry) > 0 for status, retry, _ in uploads if status == 503)
    most = max(int(m.group(1)) for line in site.errors if (m := re.search(r"intakes at once: (\d+)", line)))
    assert most <= 2, "no more whole-photo decodes at once than JOB_WORKERS"
    assert not any("Traceback" in line for line in site.errors), "\n".join(site.errors[-40:])
