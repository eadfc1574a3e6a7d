"""Page loads while slow providers hold jobs: gunicorn as deployed (one process, 8 threads, LocMem),
remove.bg and DashScope replaced by their fakes (tests/fakes/, each in a process of its own) that
answer only after 10 s, and 8 jobs (4 cutouts, 4 crowd removals) waiting on them. Meanwhile a
threaded client on loopback requests the home page, a job page, its status and its preview over
keep-alive connections, for a bounded time and count, and prints p50/p99 and requests per second.
The jobs wait in the job pool, never in a request thread, so the target is p99 < 50 ms.

JOB_WORKERS=8 so that all 8 jobs are really at the providers at once (the default of 2 would
keep 6 of them queued, which is easier on the site).

    .venv/bin/python bench/responsiveness.py [--clients 4] [--seconds 8] [--max-requests 5000]
"""

from __future__ import annotations

import argparse
import http.client
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import (  # noqa: E402
    Site,
    Visitor,
    camera_jpeg,
    load_average,
    percentile,
    start_fake_providers,
    stop_fakes,
)

SLOW_SECONDS = 10
SLOW_JOBS = 8


def load(port: int, paths: dict[str, str], clients: int, seconds: float, max_requests: int):
    """Each client thread cycles through the paths on one keep-alive connection."""
    latencies: dict[str, list[float]] = {name: [] for name in paths}
    errors: list[str] = []
    lock = threading.Lock()
    issued = [0]
    deadline = time.monotonic() + seconds
    start_line = threading.Barrier(clients)

    def client(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        names = list(paths)
        start_line.wait()
        turn = offset
        while time.monotonic() < deadline:
            with lock:
                if issued[0] >= max_requests:
                    break
                issued[0] += 1
            name = names[turn % len(names)]
            turn += 1
            start = time.perf_counter()
            try:
                connection.request("GET", paths[name])
                response = connection.getresponse()
                response.read()
                elapsed = time.perf_counter() - start
                if response.status != 200:
                    errors.append(f"{name}: {response.status}")
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{name}: {type(exc).__name__}")
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            with lock:
                latencies[name].append(elapsed)
        connection.close()

    threads = [threading.Thread(target=client, args=(number,)) for number in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0, help="at most this long (the jobs last 10 s)")
    parser.add_argument("--max-requests", type=int, default=5000)
    arguments = parser.parse_args()
    print(f"# bench/responsiveness.py — {load_average()}")
    environment, fakes = start_fake_providers(SLOW_SECONDS, SLOW_SECONDS)
    try:
        environment.update(JOB_WORKERS=str(SLOW_JOBS), UPLOADS_PER_MINUTE="0", PAID_UPLOADS_PER_MINUTE="0")
        with Site(workers=1, **environment) as site:
            visitor = Visitor(site)
            photo = camera_jpeg(3)
            token = visitor.token(photo)  # the job whose pages are loaded: ready after one slow answer
            visitor.ready(token)
            first_sent = time.monotonic()
            slow = [visitor.token(photo, "cutout" if number % 2 else "crowd") for number in range(SLOW_JOBS)]
            before = visitor.requests.get(site.url + "/healthz", timeout=10).json()["jobs_in_flight"]
            # Load only while every slow job is still waiting for its answer.
            window = min(arguments.seconds, SLOW_SECONDS - (time.monotonic() - first_sent) - 0.5)
            paths = {
                "home": "/",
                "job page": f"/jobs/{token}/",
                "status": f"/jobs/{token}/status",
                "preview": f"/jobs/{token}/preview",
            }
            latencies, errors, elapsed = load(site.port, paths, arguments.clients, window, arguments.max_requests)
            after = visitor.requests.get(site.url + "/healthz", timeout=10).json()["jobs_in_flight"]
            states = [visitor.status(job)["state"] for job in slow]
    finally:
        stop_fakes(fakes)
    total = sum(len(values) for values in latencies.values())
    print(
        f"slow jobs in flight: {before} before the load, {after} after it (states then: "
        f"{', '.join(sorted(set(states)))}); {arguments.clients} keep-alive clients, {elapsed:.1f} s"
    )
    print(f"{'endpoint':<10} {'requests':>8} {'p50':>8} {'p99':>8} {'max':>8}")
    for name, values in latencies.items():
        print(
            f"{name:<10} {len(values):>8} {percentile(values, 0.5) * 1000:6.1f}ms "
            f"{percentile(values, 0.99) * 1000:6.1f}ms {max(values) * 1000:6.1f}ms"
        )
    every = [value for values in latencies.values() for value in values]
    print(
        f"{'all':<10} {total:>8} {percentile(every, 0.5) * 1000:6.1f}ms {percentile(every, 0.99) * 1000:6.1f}ms "
        f"{max(every) * 1000:6.1f}ms   {total / elapsed:.0f} requests/s, {len(errors)} errors"
    )
    if errors:
        print("errors:", ", ".join(sorted(set(errors))[:10]))
    print(f"# {load_average()}")


if __name__ == "__main__":
    main()
