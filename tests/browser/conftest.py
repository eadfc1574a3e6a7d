"""Real-browser fixtures: Playwright driving Debian's Chromium against the live WSGI app.

One browser for all the browser tests (starting Chromium is the slow part); a fresh context, so a
fresh profile with no cookies or storage, for every visitor. pytest-django's `live_server` runs the
site in a thread of this process, so the job pool, the store and the settings are the ones the
tests see and change.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.visitor import CHROMIUM, CHROMIUM_ARGS, Visitor


class BrowserSession:
    """Chromium for the browser tests: started by the first one, stopped right after the last.

    Playwright's synchronous API keeps its asyncio loop marked as running on the test's thread
    between calls, so Django takes the test's own ORM calls (creating the test database, issuing a
    code, flushing after a test) for calls from async code and refuses them. They are not: nothing
    async runs on this thread. DJANGO_ALLOW_ASYNC_UNSAFE says so for exactly as long as Playwright
    is alive, and stopping Playwright after the last browser test gives the other tests their
    ordinary, loop-free thread back.
    """

    def __init__(self):
        self.playwright = None
        self.browser = None

    def get(self):
        if self.browser is None:
            from playwright.sync_api import sync_playwright

            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
            self.playwright = sync_playwright().start()
            self.browser = self.playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        return self.browser

    def stop(self) -> None:
        if self.playwright is not None:
            self.browser.close()
            self.playwright.stop()
            self.playwright = self.browser = None
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


_session = BrowserSession()
_HERE = Path(__file__).resolve().parent


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    return _session.get()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield  # the test's own fixtures (its browser contexts, its database flush) are finished
    if nextitem is None or _HERE not in Path(str(nextitem.path)).resolve().parents:
        _session.stop()


def pytest_sessionfinish(session, exitstatus):
    _session.stop()


@pytest.fixture
def site(live_server, settings) -> str:
    """The site on its embedded defaults (local engines), with the upload limit out of the way."""
    settings.BACKGROUND_ENGINE = "local"
    settings.CROWD_ENGINE = "local"
    settings.UPLOADS_PER_MINUTE = 0
    return live_server.url


@pytest.fixture
def visit(browser, site) -> Iterator:
    """A factory of visitors; every context it opened is closed after the test."""
    opened: list[Visitor] = []

    def open_visitor(**options) -> Visitor:
        visitor = Visitor.open(browser, site, **options)
        opened.append(visitor)
        return visitor

    yield open_visitor
    for visitor in opened:
        visitor.close()


class HeldEngine:
    """Keeps every job in `processing` until released, so the page's busy state can be seen."""

    def __init__(self):
        self.release = threading.Event()
        self.started = threading.Event()

    def wrap(self, engine):
        start = engine.start

        def held_start(photo):
            self.started.set()
            # Bounded, so a failing test cannot leave a worker thread stuck for good.
            self.release.wait(timeout=60)
            return start(photo)

        engine.start = held_start
        return engine


@pytest.fixture
def held_engine(monkeypatch) -> Iterator[HeldEngine]:
    from segmentation import jobs

    held = HeldEngine()
    real = jobs.engine_named
    monkeypatch.setattr(jobs, "engine_named", lambda mode, name, spec="": held.wrap(real(mode, name, spec)))
    yield held
    held.release.set()
