"""Memory: what a job costs the server beyond its images, and the peak while uploads pour in.

1. Bytes held per job against the sum of its stored images (target ≤ 1.3×). Eight 12 MP photos
   go through the whole flow (upload, preview, unlock, full result) on gunicorn as deployed; a
   finished job holds its original, the two previews and the result. Measured three ways: the
   store's own count (/healthz), the worker's resident memory (VmRSS) grown per job, and on
   Redis (two processes) MEMORY USAGE of the job's keys and the server's used_memory.
2. Peak RSS while 20 uploads of 12 MP arrive at once (VmHWM, the kernel's high-water mark of the
   worker), next to what bounds it: gunicorn's threads × the upload cap for requests being read,
   the job pool's capacity for photos waiting, and IMAGE_STORE_MAX_BYTES for the store.

    .venv/bin/python bench/memory.py [--jobs 8] [--burst 20] [--megapixels 12]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import Site, Visitor, camera_jpeg, load_average, mb, private_redis, rss_bytes  # noqa: E402


def finished_job(visitor: Visitor, photo: bytes, code: str) -> tuple[str, int]:
    """Run one job to its full result; its token and the bytes of the images it now holds."""
    token = visitor.token(photo)
    visitor.ready(token)
    visitor.unlock(token, code)
    images = [
        len(photo),  # the original, kept as uploaded minus metadata (a few hundred bytes)
        len(visitor.get(f"/jobs/{token}/preview")),
        len(visitor.get(f"/jobs/{token}/before")),
        len(visitor.get(f"/jobs/{token}/download")),
    ]
    return token, sum(images)


def settle(site: Site, visitor: Visitor) -> None:
    """Wait until the pool is idle, so no transient decode buffers are counted."""
    while visitor.requests.get(site.url + "/healthz", timeout=10).json()["jobs_in_flight"]:
        time.sleep(0.1)
    time.sleep(1)


def store_bytes(site: Site, visitor: Visitor) -> int:
    return visitor.requests.get(site.url + "/healthz", timeout=10).json()["store"]["bytes_used"]


def per_job_locmem(photo: bytes, jobs: int) -> None:
    with Site(workers=1, UPLOADS_PER_MINUTE="0") as site:
        visitor = Visitor(site)
        codes = site.codes(jobs + 1)
        worker = site.worker_pids()[0]
        finished_job(visitor, photo, codes.pop())  # warm-up: model loaded, buffers grown once
        settle(site, visitor)
        rss_before, store_before = rss_bytes(worker), store_bytes(site, visitor)
        images = [finished_job(visitor, photo, code)[1] for code in codes]
        settle(site, visitor)
        rss_after, store_after = rss_bytes(worker), store_bytes(site, visitor)
    image_bytes = sum(images) / jobs
    store_per_job = (store_after - store_before) / jobs
    rss_per_job = (rss_after - rss_before) / jobs
    print(f"LocMem, 1 process: {jobs} finished jobs of {mb(len(photo))} photos; images {mb(image_bytes)} a job")
    print(f"  store's count   {mb(store_per_job):>9} a job  {store_per_job / image_bytes:5.2f}×")
    print(f"  worker VmRSS    {mb(rss_per_job):>9} a job  {rss_per_job / image_bytes:5.2f}×", flush=True)


def per_job_redis(photo: bytes, jobs: int) -> None:
    import redis

    server, url = private_redis()
    try:
        client = redis.Redis.from_url(url)
        with Site(workers=2, CACHE_URL=url, UPLOADS_PER_MINUTE="0") as site:
            visitor = Visitor(site)
            codes = site.codes(jobs + 1)
            finished_job(visitor, photo, codes.pop())
            settle(site, visitor)
            used_before = int(client.info("memory")["used_memory"])
            finished = [finished_job(visitor, photo, code) for code in codes]
            settle(site, visitor)
            used_after = int(client.info("memory")["used_memory"])
            key_bytes = [
                sum(client.memory_usage(key) or 0 for key in client.scan_iter(match=f"job:1:{token}*"))
                for token, _ in finished
            ]
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    image_bytes = sum(images for _, images in finished) / jobs
    print(f"Redis, 2 processes: {jobs} finished jobs; images {mb(image_bytes)} a job")
    print(f"  MEMORY USAGE    {mb(sum(key_bytes) / jobs):>9} a job  {sum(key_bytes) / jobs / image_bytes:5.2f}×")
    print(
        f"  used_memory     {mb((used_after - used_before) / jobs):>9} a job  "
        f"{(used_after - used_before) / jobs / image_bytes:5.2f}×",
        flush=True,
    )


def burst(photo: bytes, megapixels: float, uploads: int) -> None:
    with Site(workers=1, UPLOADS_PER_MINUTE="0") as site:
        visitor = Visitor(site)
        worker = site.worker_pids()[0]
        visitor.ready(visitor.token(camera_jpeg(1)))  # warm-up with a small photo
        settle(site, visitor)
        baseline = rss_bytes(worker, "VmHWM")
        health = visitor.requests.get(site.url + "/healthz", timeout=10).json()
        start_line = threading.Barrier(uploads)
        statuses: list[int] = []
        tokens: list[str] = []

        def upload() -> None:
            start_line.wait()
            response = visitor.upload(photo)
            statuses.append(response.status_code)
            if response.status_code == 303:
                tokens.append(response.headers["Location"].rstrip("/").rsplit("/", 1)[-1])

        threads = [threading.Thread(target=upload) for _ in range(uploads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for token in tokens:
            visitor.ready(token)
        settle(site, visitor)
        peak = rss_bytes(worker, "VmHWM")
        held = store_bytes(site, visitor)
        threads_per_worker = int(site.env.get("GUNICORN_THREADS", "8"))
    concurrent = min(threads_per_worker, uploads)
    print(
        f"Burst: {uploads} uploads of {mb(len(photo))} ({megapixels:g} MP) at once, 1 process × "
        f"{threads_per_worker} threads, job pool capacity {health['job_capacity']}"
    )
    print(
        f"  answers: {statuses.count(303)} accepted, {statuses.count(503)} refused (503, pool full), "
        f"{len(statuses) - statuses.count(303) - statuses.count(503)} other"
    )
    print(
        f"  VmHWM {mb(baseline)} before, {mb(peak)} peak: +{mb(peak - baseline)}, of which the store holds "
        f"{mb(held)} (budget {mb(health['store']['bytes_budget'])}); the rest is "
        f"{mb((peak - baseline - held) / concurrent)} for each of {concurrent} requests in intake at once",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--skip-redis", action="store_true")
    arguments = parser.parse_args()
    print(f"# bench/memory.py — {load_average()}")
    photo = camera_jpeg(arguments.megapixels)
    per_job_locmem(photo, arguments.jobs)
    if not arguments.skip_redis:
        per_job_redis(photo, arguments.jobs)
    burst(photo, arguments.megapixels, arguments.burst)
    print(f"# {load_average()}")


if __name__ == "__main__":
    main()
