"""Servers the fault-injection tests stop and start again on the same port — a redis-server without
any disk (no RDB, no AOF, its directory a temporary one), a PostgreSQL cluster of the test's own —
and the unlock codes' uses read straight from the database the site uses."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.test_redis_store import free_port


class RedisServer:
    """A redis-server of the test's own that can go away and come back, empty, as after a crash."""

    def __init__(self, directory: Path):
        pytest.importorskip("redis")
        if not shutil.which("redis-server"):
            pytest.skip("redis-server is not installed")
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # as in a crash: nothing is saved, every job is lost
            self.process.wait(timeout=20)
        self.process = None


# (used, delivered redemptions) of every code, in the order issue_codes printed them.
CODE_USES = (
    "SELECT c.used, (SELECT count(*) FROM unlock_redemption r WHERE r.code_id = c.id AND r.delivered) "
    "FROM unlock_unlockcode c ORDER BY c.id"
)


def code_uses(database: Path) -> list[tuple[int, int]]:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return connection.execute(CODE_USES).fetchall()


class PostgresCluster:
    """A PostgreSQL cluster of the test's own (initdb into a temporary directory, a free port), that
    can be stopped as in a crash (pg_ctl -m immediate) and started again with its data."""

    def __init__(self):
        self.psycopg = pytest.importorskip("psycopg")
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not found:
            pytest.skip("PostgreSQL's server programs are not installed (/usr/lib/postgresql/*/bin)")
        self.bin = found[-1].parent
        self.port = free_port()
        # initdb refuses to run as root; then the cluster belongs to the postgres user, in a
        # directory of its own (pytest's temporary directories are private to root).
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.directory = Path(tempfile.mkdtemp(prefix="portraitsite-pg-"))
        if self.as_user:
            shutil.chown(self.directory, "postgres", "postgres")
        self.data = self.directory / "data"
        self._run("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")

    def _run(self, program: str, *arguments) -> None:
        subprocess.run(
            [*self.as_user, self.bin / program, *map(str, arguments)], check=True, capture_output=True, timeout=120
        )

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        self._run("pg_ctl", "-D", self.data, "-l", self.directory / "log", "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def code_uses(self) -> list[tuple[int, int]]:
        with self.psycopg.connect(self.url, connect_timeout=3) as connection:
            return connection.execute(CODE_USES).fetchall()
