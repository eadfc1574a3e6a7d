"""100 visitors at once through the whole flow, on loopback: gunicorn as deployed (one process, 8
request threads, the in-memory store, JOB_WORKERS=2 and JOB_QUEUE=8 as by default).

Each visitor arrives at the same moment and goes through the flow of bench/traffic.py once: home
page, upload (a camera JPEG of 1, 2 or 3 MP; half background removal, half passer-by removal), job
page, status polls, preview, unlock with a code of its own, download, delete. A 503 is waited out
and tried again, as a person would. Bounded: one flow per visitor, and --seconds for the whole run.

Two runs: the local engines, then remove.bg and DashScope replaced by their fakes (tests/fakes/, in
processes of their own) answering after realistic delays (--removebg-delay, --dashscope-delay).
Prints throughput, p50/p95/p99 per page, the share of 503 answers, and the load average (the
machine may be shared).

    .venv/bin/python bench/load.py [--visitors 100] [--seconds 420] [--engines local,fakes]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import Site, camera_jpeg, load_average, start_fake_providers, stop_fakes  # noqa: E402
from bench.traffic import Browser, Recorder, visit  # noqa: E402


def run(engines: str, visitors: int, seconds: float, delays: tuple[float, float]) -> None:
    # The visitors all come from 127.0.0.1: no per-client limits.
    environment = {"UPLOADS_PER_MINUTE": "0", "PAID_UPLOADS_PER_MINUTE": "0", "UNLOCK_FAILURES_PER_MINUTE": "0"}
    fakes = []
    if engines == "fakes":
        providers, fakes = start_fake_providers(*delays)
        environment.update(providers)
    photos = [camera_jpeg(megapixels, seed=megapixels) for megapixels in (1, 2, 3)]
    recorder = Recorder()
    outcomes: Counter = Counter()
    try:
        with Site(**environment) as site:
            codes = site.codes(visitors)
            start_line = threading.Barrier(visitors)
            deadline = time.monotonic() + seconds

            def visitor(number: int) -> None:
                browser = Browser(site.url, recorder)
                start_line.wait()
                mode = "cutout" if number % 2 else "crowd"
                outcome, _ = visit(
                    browser, photos[number % 3], mode, codes[number], "delete", patience=deadline - time.monotonic()
                )
                outcomes[outcome] += 1
                browser.close()

            threads = [threading.Thread(target=visitor, args=(n,), daemon=True) for n in range(visitors)]
            print(f"{engines}: {visitors} visitors, {load_average()} at the start", flush=True)
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()) + 5)
            elapsed = time.perf_counter() - began
            unfinished = sum(thread.is_alive() for thread in threads)
    finally:
        stop_fakes(fakes)

    total = recorder.requests
    print(f"  finished in {elapsed:.0f} s, {load_average()} at the end")
    print(f"  flows: {dict(outcomes)}, unfinished {unfinished}")
    print(
        f"  throughput: {outcomes['unlocked'] / elapsed * 60:.1f} unlocked flows/min, {total / elapsed:.1f} requests/s"
    )
    print(f"  503 share: {recorder.count(503) / total:.1%} of {total} requests; 500s: {recorder.count(500)}")
    if recorder.failures:
        print(f"  connection failures: {dict(recorder.failures)}")
    print("\n".join(recorder.table()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=420, help="bound on each run")
    parser.add_argument("--engines", default="local,fakes")
    parser.add_argument("--removebg-delay", type=float, default=2.0, help="seconds per remove.bg call")
    parser.add_argument("--dashscope-delay", type=float, default=12.0, help="seconds per DashScope call")
    arguments = parser.parse_args()
    for engines in arguments.engines.split(","):
        run(engines, arguments.visitors, arguments.seconds, (arguments.removebg_delay, arguments.dashscope_delay))


if __name__ == "__main__":
    main()
