"""Visitors for the load and soak benchmarks: the whole flow over real HTTP, every answer timed and
counted per page.

A visitor behaves like the site's own pages: it loads the home page, uploads, opens the job page,
polls the status every half second (as the page's script does), looks at the preview, and may
unlock, download and delete. A 503 is answered as a person would: wait (Retry-After, at most a few
seconds here) and try again, a bounded number of times.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict

import requests

from bench.support import percentile

POLL_SECONDS = 0.5
RETRIES_AFTER_503 = 6
# Below gunicorn's keepalive (5 s): a visitor that waits longer finds its kept-alive connection
# closed by the server just as it sends the retry, and requests does not resend a POST.
RETRY_WAIT_CAP = 4


class Recorder:
    """Latencies and statuses per page, shared by every visitor thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self.failures: Counter = Counter()  # connection errors and timeouts, per page

    def record(self, page: str, status: int, seconds: float) -> None:
        with self._lock:
            self.latencies[page].append(seconds)
            self.statuses[page][status] += 1

    def fail(self, page: str, reason: str) -> None:
        with self._lock:
            self.failures[f"{page}: {reason}"] += 1

    @property
    def requests(self) -> int:
        return sum(sum(counts.values()) for counts in self.statuses.values())

    def count(self, status: int) -> int:
        return sum(counts[status] for counts in self.statuses.values())

    def table(self) -> list[str]:
        lines = [f"  {'page':<10} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  statuses"]
        for page, values in sorted(self.latencies.items()):
            codes = " ".join(f"{code}×{n}" for code, n in sorted(self.statuses[page].items()))
            lines.append(
                f"  {page:<10} {len(values):>8} {percentile(values, 0.5) * 1000:>8.0f} "
                f"{percentile(values, 0.95) * 1000:>8.0f} {percentile(values, 0.99) * 1000:>8.0f}  {codes}"
            )
        return lines


class Browser:
    """One visitor: a keep-alive session, no redirects followed, every request recorded."""

    def __init__(self, base_url: str, recorder: Recorder):
        self.base_url = base_url
        self.recorder = recorder
        self.session = requests.Session()

    def call(self, page: str, method: str, path: str, **kwargs) -> requests.Response | None:
        started = time.perf_counter()
        try:
            response = self.session.request(method, self.base_url + path, allow_redirects=False, timeout=60, **kwargs)
        except requests.RequestException as exc:
            self.recorder.fail(page, type(exc).__name__)
            return None
        self.recorder.record(page, response.status_code, time.perf_counter() - started)
        return response

    def patiently(self, page: str, method: str, path: str, **kwargs) -> requests.Response | None:
        """The request, tried again after a 503 as a person would."""
        for _ in range(RETRIES_AFTER_503):
            response = self.call(page, method, path, **kwargs)
            if response is None or response.status_code != 503:
                return response
            time.sleep(min(int(response.headers.get("Retry-After", "1")), RETRY_WAIT_CAP))
        return response

    def status_until(self, token: str, done, patience: float) -> dict | None:
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            response = self.call("status", "GET", f"/jobs/{token}/status")
            if response is not None and response.status_code == 200:
                status = response.json()
                if done(status):
                    return status
            elif response is not None and response.status_code == 404:
                return None
            time.sleep(POLL_SECONDS)
        return None

    def close(self) -> None:
        self.session.close()


def visit(
    browser: Browser, photo: bytes, mode: str, code: str | None, ending: str, patience: float = 300
) -> tuple[str, str | None]:
    """One visitor's whole flow. `ending`: "delete" (the visitor deletes the job), "download" (only
    downloads), "leave" (the job is left to expire). Returns (outcome, token): outcome is one of
    refused, failed, lost, ready, unlocked, unlock_failed."""
    browser.call("home", "GET", "/")
    response = browser.patiently(
        "upload", "POST", "/jobs/", files={"image": ("photo.jpg", photo, "image/jpeg")}, data={"mode": mode}
    )
    if response is None or response.status_code != 303:
        return "refused", None
    token = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    browser.call("job", "GET", f"/jobs/{token}/")
    status = browser.status_until(token, lambda s: s["state"] in ("ready", "failed"), patience)
    if status is None:
        return "lost", token
    if status["state"] != "ready":
        return "failed", token
    browser.call("preview", "GET", f"/jobs/{token}/preview")
    outcome = "ready"
    if code is not None:
        unlocked = browser.patiently("unlock", "POST", f"/jobs/{token}/unlock", data={"code": code})
        if unlocked is not None and unlocked.status_code == 303:
            status = browser.status_until(token, lambda s: s["delivery"] != "finishing", patience)
            if status is not None and status["unlocked"]:
                outcome = "unlocked"
                browser.call("job", "GET", f"/jobs/{token}/")
                browser.call("download", "GET", f"/jobs/{token}/download")
            else:
                outcome = "unlock_failed"
        else:
            outcome = "unlock_failed"
    if ending == "delete":
        browser.call("delete", "POST", f"/jobs/{token}/delete")
    return outcome, token
