"""What counting costs an upload: portraitsite.usage.count on a file-backed SQLite database (the
default deployment), alone and with threads counting the same total at once.

  first    the day's first count of a total: UPDATE (no row), INSERT, and the retention purge;
  update   every later count: one conditional UPDATE;
  threads  N threads counting the same total together (SQLite serialises the writes).

    .venv/bin/python bench/usage.py [--counts 2000] [--threads 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portraitsite.settings")
os.environ.setdefault("DEBUG", "true")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from bench.support import load_average
        from portraitsite import usage
        from portraitsite.models import DailyCount

        call_command("migrate", verbosity=0)
        firsts = []
        for number in range(50):
            started = time.perf_counter()
            usage.count("cutout", f"first-{number}")
            firsts.append(time.perf_counter() - started)
        updates = []
        for _ in range(arguments.counts):
            started = time.perf_counter()
            usage.count("cutout", usage.UPLOADS)
            updates.append(time.perf_counter() - started)

        barrier = threading.Barrier(arguments.threads)
        per_thread = arguments.counts // arguments.threads

        def racer() -> None:
            barrier.wait()
            for _ in range(per_thread):
                usage.count("crowd", usage.UPLOADS)
            connection.close()

        threads = [threading.Thread(target=racer) for _ in range(arguments.threads)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        counted = DailyCount.objects.get(tool="crowd", name=usage.UPLOADS).value

    def ms(values: list[float], q: float) -> str:
        return f"{statistics.quantiles(values, n=100)[int(q) - 1] * 1000:.2f}"

    print(f"load average: {load_average()}")
    print(f"first    median {statistics.median(firsts) * 1000:.2f} ms, p99 {ms(firsts, 99)} ms ({len(firsts)} totals)")
    print(
        f"update   median {statistics.median(updates) * 1000:.2f} ms, p99 {ms(updates, 99)} ms ({len(updates)} counts)"
    )
    total = per_thread * arguments.threads
    print(
        f"threads  {arguments.threads} threads × {per_thread}: {total / elapsed:.0f} counts/s, "
        f"{int(counted)} of {total} counted"
    )


if __name__ == "__main__":
    main()
