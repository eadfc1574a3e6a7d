"""A PostgreSQL database of a test's own on the local server, for tests that run the site in
subprocesses configured only by DATABASE_URL (the way it is deployed)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

SERVER = "postgres://postgres@127.0.0.1:5432"


@contextlib.contextmanager
def scratch_database(purpose: str) -> Iterator[str]:
    """A new, empty database test_portraitsite_<purpose>_<pid>, dropped afterwards; its URL.
    Skips the test when psycopg is missing or the server does not answer. The `test` database
    is only used to connect from."""
    psycopg = pytest.importorskip("psycopg")
    name = f"test_portraitsite_{purpose}_{os.getpid()}"
    try:
        admin = psycopg.connect(f"{SERVER}/test", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable ({exc.__class__.__name__}: {exc})")
    with admin:
        # FORCE: connections that a stopped subprocess left open must not keep a database alive.
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{SERVER}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
