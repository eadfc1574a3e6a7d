"""Hours in minutes: 3,000 jobs over 15 minutes through gunicorn and real HTTP, with the expiry
shortened to 60 s, and what must stay flat checked at the end.

gunicorn as deployed (one process, 8 request threads, the in-memory store; JOB_WORKERS=8 and
JOB_QUEUE=16, since provider calls wait on the network), remove.bg and DashScope replaced by their
fakes (tests/fakes/, processes of their own, answering after --provider-delay s) unless --engines
local. Job i starts at i × 15 min / 3,000 (later when the site is behind: visitors are a bounded
set of threads), with a camera JPEG of 0.3 MP (five jobs in seven), 0.8 or 2 MP, background
removal and passer-by removal in turn: mostly small photos, so that 3.3 jobs a second fit on 2
cores (a 2 MP job costs the site and the fakes about 2.5 times the CPU of a 0.3 MP one). Of every
ten jobs: three are unlocked, downloaded and deleted, two unlocked, downloaded and left to expire,
two deleted unseen, three left to expire unseen. Bounded:
at most --visitors jobs at once, and no job starts after --minutes (the figures say how many did).

Checks, printed with their figures:
- the worker's resident memory after warm-up (the first fifth of the jobs' time) grows < 10 %:
  its floor (the 10th percentile) in the last fifth against the second. Resident memory rises and
  falls by a few hundred MB with the jobs in flight (each holds its photo, decodes and results,
  more when the machine's other work slows them); a leak raises the floor it falls back to;
- its thread count stays flat;
- the store's bytes (/healthz) are back to zero once the last job has expired;
- every code's uses are accounted for exactly: `used` equals the unlocks the visitors saw succeed,
  each one a delivered redemption, and no reservation is left over;
- 0 responses with status 500.

    .venv/bin/python bench/soak.py [--jobs 3000] [--minutes 15] [--ttl 60] [--visitors 48]
"""

from __future__ import annotations

import argparse
import os
import queue
import sqlite3
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import (  # noqa: E402
    Site,
    camera_jpeg,
    load_average,
    mb,
    rss_bytes,
    start_fake_providers,
    stop_fakes,
)
from bench.traffic import Browser, Recorder, visit  # noqa: E402

CODES = 300
USES_PER_CODE = 5  # 1,500 unlocks of 3,000 jobs
SAMPLE_SECONDS = 5
SWEEP_SECONDS = 20  # segmentation.cache.SWEEP_SECONDS: expired entries go within this
SIZES = (0.3, 0.3, 0.3, 0.3, 0.3, 0.8, 2)  # megapixels; seven, so every size meets every plan


def plan(number: int) -> tuple[bool, str]:
    """(unlock?, ending) of job `number`: 50 % unlocked, 50 % deleted, the rest left to expire."""
    return {
        0: (True, "delete"),
        1: (True, "delete"),
        2: (True, "delete"),
        3: (True, "leave"),
        4: (True, "leave"),
        5: (False, "delete"),
        6: (False, "delete"),
    }.get(number % 10, (False, "leave"))


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise RuntimeError("no thread count")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def store_bytes(browser: Browser) -> int | None:
    response = browser.call("healthz", "GET", "/healthz")
    if response is None or response.status_code != 200:
        return None
    return response.json().get("store", {}).get("bytes_used")


def code_accounting(database: str, codes: list[str], successes: Counter) -> list[str]:
    """Problems with the codes' uses; empty when each is accounted for exactly."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT c.id, c.used, "
            "(SELECT count(*) FROM unlock_redemption r WHERE r.code_id = c.id AND r.delivered), "
            "(SELECT count(*) FROM unlock_redemption r WHERE r.code_id = c.id AND NOT r.delivered) "
            "FROM unlock_unlockcode c ORDER BY c.id"
        ).fetchall()
    problems = []
    for code, (_, used, delivered, pending) in zip(codes, rows, strict=True):
        if not used == delivered == successes[code] or pending:
            problems.append(f"used {used}, delivered {delivered}, pending {pending}, seen {successes[code]}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--minutes", type=float, default=15)
    parser.add_argument("--ttl", type=int, default=60, help="JOB_TTL_SECONDS for the run")
    parser.add_argument("--visitors", type=int, default=48, help="visitor threads at most")
    parser.add_argument("--engines", choices=("fakes", "local"), default="fakes")
    parser.add_argument("--provider-delay", type=float, default=0.5)
    arguments = parser.parse_args()
    duration = arguments.minutes * 60

    environment = {
        "JOB_TTL_SECONDS": str(arguments.ttl),
        # Provider calls wait on the network, not the CPU: eight of them at once, as in
        # bench/responsiveness.py, so that 3.3 jobs/s can flow at all.
        "JOB_WORKERS": "8",
        "JOB_QUEUE": "16",
        "UPLOADS_PER_MINUTE": "0",  # the visitors share one address
        "PAID_UPLOADS_PER_MINUTE": "0",
        "UNLOCK_FAILURES_PER_MINUTE": "0",
    }
    fakes = []
    if arguments.engines == "fakes":
        providers, fakes = start_fake_providers(arguments.provider_delay, arguments.provider_delay)
        environment.update(providers)
    photos = [camera_jpeg(megapixels, seed=n) for n, megapixels in enumerate(SIZES)]
    recorder = Recorder()
    outcomes: Counter = Counter()
    successes: Counter = Counter()
    samples: list[tuple[float, int, int, int | None]] = []  # (seconds, rss, threads, store bytes)
    try:
        with Site(**environment) as site:
            codes = site.manage("issue_codes", "--count", str(CODES), "--uses", str(USES_PER_CODE)).split()
            database = site.env["DATABASE_URL"].removeprefix("sqlite:///")
            [worker] = site.worker_pids()
            print(
                f"soak: {arguments.jobs} jobs over {arguments.minutes:g} min, TTL {arguments.ttl} s, "
                f"{arguments.engines} engines; {load_average()}",
                flush=True,
            )

            # Bounded: a job waits for a free visitor, and none starts after the run's time is up.
            work: queue.Queue = queue.Queue(maxsize=arguments.visitors)
            began = time.monotonic()
            stop = threading.Event()
            lock = threading.Lock()

            def visitor() -> None:
                browser = Browser(site.url, recorder)
                while (number := work.get()) is not None:
                    unlock, ending = plan(number)
                    # The unlocking jobs are five of every ten: each code serves five of them.
                    code = codes[(number // 10 * 5 + number % 10) % CODES] if unlock else None
                    outcome, _ = visit(
                        browser, photos[number % len(SIZES)], ("cutout", "crowd")[number % 2], code, ending
                    )
                    with lock:
                        outcomes[outcome] += 1
                        if outcome == "unlocked":
                            successes[code] += 1
                browser.close()

            def monitor() -> None:
                browser = Browser(site.url, Recorder())  # its own figures stay out of the visitors'
                while not stop.wait(SAMPLE_SECONDS):
                    now = time.monotonic() - began
                    samples.append((now, rss_bytes(worker), threads_of(worker), store_bytes(browser)))
                    if len(samples) % (60 // SAMPLE_SECONDS) == 0:
                        _, rss, threads, stored = samples[-1]
                        print(
                            f"  {now / 60:5.1f} min: {sum(outcomes.values())} jobs done, RSS {mb(rss)}, "
                            f"{threads} threads, store {mb(stored or 0)}, 500s {recorder.count(500)}; "
                            f"{load_average()}",
                            flush=True,
                        )

            visitors = [threading.Thread(target=visitor, daemon=True) for _ in range(arguments.visitors)]
            for thread in visitors:
                thread.start()
            watcher = threading.Thread(target=monitor, daemon=True)
            watcher.start()
            started = arguments.jobs
            for number in range(arguments.jobs):  # on schedule, or as soon as a visitor is free
                time.sleep(max(0.0, began + number * duration / arguments.jobs - time.monotonic()))
                if time.monotonic() - began > duration:
                    started = number
                    break
                work.put(number)
            for _ in visitors:
                work.put(None)
            for thread in visitors:
                thread.join()
            flows_done = time.monotonic() - began
            # The last jobs expire TTL after their upload, and the sweep takes them within 20 s.
            settle = time.monotonic() + arguments.ttl + 3 * SWEEP_SECONDS
            browser = Browser(site.url, Recorder())
            while (stored := store_bytes(browser)) != 0 and time.monotonic() < settle:
                time.sleep(2)
            settled = time.monotonic() - began - flows_done
            stop.set()
            watcher.join()
            problems = code_accounting(database, codes, successes)
            cpu = {"worker": cpu_seconds(worker), "fakes": sum(cpu_seconds(fake.pid) for fake in fakes)}
            cpu["visitors"] = time.process_time()
    finally:
        stop_fakes(fakes)

    during = [sample for sample in samples if sample[0] <= flows_done]  # not the wait for expiry
    fifth = len(during) // 5
    second, last = during[fifth : 2 * fifth], during[-fifth:]
    floor_after_warmup, floor_at_end = (statistics.quantiles([s[1] for s in part], n=10)[0] for part in (second, last))
    growth = floor_at_end / floor_after_warmup - 1
    median_after_warmup, median_at_end = (statistics.median(s[1] for s in part) for part in (second, last))
    threads_seen = [s[2] for s in samples[fifth:]]
    rss_expired = samples[-1][1]
    total = recorder.requests
    checks = {
        "memory flat (growth < 10 %)": growth < 0.10,
        "thread count flat": max(threads_seen) - min(threads_seen) <= 2,
        "store back to zero": stored == 0,
        "every code's uses accounted for": not problems,
        "no 500": recorder.count(500) == 0,
    }
    print(
        f"\nsoak done: {started} of {arguments.jobs} jobs started within {arguments.minutes:g} min; "
        f"{sum(outcomes.values())} jobs in {flows_done / 60:.1f} min "
        f"({sum(outcomes.values()) / flows_done:.2f} jobs/s), store settled {settled:.0f} s later; {load_average()}"
    )
    print(f"  outcomes: {dict(outcomes)}")
    print(f"  requests: {total}, 503 share {recorder.count(503) / total:.1%}, 500s {recorder.count(500)}")
    print(
        f"  worker RSS floor: {mb(floor_after_warmup)} after warm-up, {mb(floor_at_end)} at the end ({growth:+.1%}); "
        f"median {mb(median_after_warmup)} → {mb(median_at_end)}, peak {mb(max(s[1] for s in samples))}, "
        f"{mb(rss_expired)} once every job had expired"
    )
    print(f"  threads: {min(threads_seen)}–{max(threads_seen)} after warm-up")
    jobs_done = max(1, sum(outcomes.values()))
    print(
        "  CPU: "
        + ", ".join(
            f"{name} {seconds:.0f} s ({seconds / jobs_done * 1000:.0f} ms a job)" for name, seconds in cpu.items()
        )
        + f"; {sum(cpu.values()) / flows_done:.2f} cores on average"
    )
    print(f"  store bytes at the end: {stored}")
    print(f"  codes: {sum(successes.values())} unlocks seen, {len(problems)} codes not accounted for {problems[:3]}")
    print("\n".join(recorder.table()))
    for name, passed in checks.items():
        print(f"  {'PASS' if passed else 'FAIL'}  {name}")
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
