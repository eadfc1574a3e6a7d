"""Real races on the database, for test_redemption_race and test_usage_race: threads behind a
barrier, each on a connection of its own, and a test module run as a subprocess configured only by
DATABASE_URL, the way the site is deployed, so the test database of the rest of the suite
(in-memory SQLite) is left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def race(attempt: Callable[[], str], racers: int) -> list[str]:
    """`racers` threads, each on a connection of its own, run `attempt` at the same moment; what
    each returned, or "error: …" for what it raised. Runs inside the subprocess."""
    import threading

    from django.db import connection

    barrier = threading.Barrier(racers)
    outcomes: list[str] = []

    def racer() -> None:
        try:
            # Connect first (the race is on the UPDATE, not on connecting). A racer that cannot
            # connect breaks the barrier, so the rest fail fast instead of waiting.
            try:
                connection.ensure_connection()
            except Exception:
                barrier.abort()
                raise
            barrier.wait(timeout=120)
            outcomes.append(attempt())
        except Exception as exc:  # noqa: BLE001 — reported, and fails the test
            outcomes.append(f"error: {type(exc).__name__}: {exc}")
        finally:
            connection.close()

    threads = [threading.Thread(target=racer) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def races_on(script: str, database_url: str) -> dict:
    """Run `script` (a test module whose __main__ prints its races' results as JSON on its last
    line) against `database_url`; its results."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "portraitsite.settings",
        "DEBUG": "true",
        "PYTHONPATH": str(ROOT),
    }
    try:
        done = subprocess.run([sys.executable, script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"the races did not finish within 300 s: {(expired.stderr or b'')[-3000:]!r}")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
