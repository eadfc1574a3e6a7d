"""The full-resolution download of a ~20 MB result through gunicorn: time to first byte and total,
on the default deployment (one process, LocMem) and scaled out (two processes, Redis).

The result is the local cutout engine's PNG of a camera-like photo (bench/support.py) sized so
that the PNG comes out near 20 MB (a cutout's transparent background compresses well, so that
takes a 37.5 MP photo). The script also checks that, with no background asked for, the
stored result is what is sent: two downloads and `?background=transparent` are byte-identical, and
on Redis they equal the very bytes stored under the job's result key. A download with a colour
behind the cutout (decode, composite, JPEG encode) is timed for comparison.

    .venv/bin/python bench/download.py [--runs 10] [--megapixels 37.5]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import importlib.util
import pickle
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import Site, Visitor, camera_jpeg, load_average, mb, private_redis  # noqa: E402


def timed_get(port: int, path: str) -> tuple[float, float, bytes, dict]:
    """(time to first byte, total time, body, headers) of one GET on a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()  # returns once the status line and headers are in
    first_byte = time.perf_counter() - start
    body = response.read()
    total = time.perf_counter() - start
    headers = dict(response.getheaders())
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"GET answered {response.status}")
    return first_byte, total, body, headers


def stored_result(redis_url: str, token: str) -> bytes:
    """The result exactly as the job store keeps it in Redis (Django pickles cache values)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return pickle.loads(client.get(f"job:1:{token}:result"))
    finally:
        client.close()


def measure(label: str, site: Site, photo: bytes, runs: int, redis_url: str | None = None) -> None:
    visitor = Visitor(site)
    token = visitor.token(photo)
    visitor.ready(token)
    visitor.unlock(token, site.codes(1)[0])
    path = f"/jobs/{token}/download"
    timings = [timed_get(site.port, path) for _ in range(runs)]
    bodies = {hashlib.sha256(body).hexdigest() for _, _, body, _ in timings}
    _, _, transparent, _ = timed_get(site.port, path + "?background=transparent")
    body = timings[0][2]
    identical = len(bodies) == 1 and transparent == body
    if redis_url:
        identical = identical and stored_result(redis_url, token) == body
    white = [timed_get(site.port, path + "?background=white") for _ in range(max(1, runs // 3))]
    first = statistics.median(t[0] for t in timings)
    total = statistics.median(t[1] for t in timings)
    print(
        f"{label:<26} {mb(len(body)):>8} {timings[0][3].get('Content-Type', ''):<10} "
        f"TTFB {first * 1000:5.0f} ms  total {total * 1000:5.0f} ms  "
        f"({len(body) / total / 1e6:5.0f} MB/s)  stored bytes sent as is: {'yes' if identical else 'NO'}",
        flush=True,
    )
    print(
        f"{'  … ?background=white':<26} {mb(len(white[0][2])):>8} {white[0][3].get('Content-Type', ''):<10} "
        f"TTFB {statistics.median(t[0] for t in white) * 1000:5.0f} ms  "
        f"total {statistics.median(t[1] for t in white) * 1000:5.0f} ms",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--megapixels", type=float, default=37.5, help="photo size; 37.5 MP gives a ~20 MB PNG")
    arguments = parser.parse_args()
    print(f"# bench/download.py — {load_average()}; median of {arguments.runs} downloads")
    photo = camera_jpeg(arguments.megapixels)
    with Site(workers=1, UPLOADS_PER_MINUTE="0") as site:
        measure("LocMem, 1 process", site, photo, arguments.runs)
    server, redis_url = private_redis()
    try:
        # redis-py parses replies with hiredis when it is installed; its pure-Python parser is
        # the one without, chosen here through CACHE_URL's options as an operator could.
        parsers = [("", "Redis, 2 processes")]
        if importlib.util.find_spec("hiredis"):
            parsers = [
                ("", "Redis, 2 proc., hiredis"),
                ("?parser_class=redis._parsers._RESP2Parser", "Redis, 2 proc., no hiredis"),
            ]
        for options, label in parsers:
            with Site(workers=2, CACHE_URL=redis_url + options, UPLOADS_PER_MINUTE="0") as site:
                measure(label, site, photo, arguments.runs, redis_url)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"# {load_average()}")


if __name__ == "__main__":
    main()
