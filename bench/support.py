"""What the benchmarks share: realistic photos made in memory, the site started as deployed on
127.0.0.1, and a few measuring helpers. Nothing here writes to the repository: the unlock-code
database of a benchmark run lives in a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from segmentation.pixels import encode

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


# --- photos ---------------------------------------------------------------------------------------


def scene(megapixels: float, seed: int = 0) -> Image.Image:
    """A 4:3 photo of a person: scikit-image's astronaut (a real portrait) standing in front of its
    coffee photo, both scaled up to the size, with sensor-like grain so that the JPEG is as large
    as a camera's: about 3.3 MB at 12 MP (a smooth upscale alone would compress to a third)."""
    from skimage import data

    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5 / 16)) * 16
    height = width * 3 // 4
    canvas = Image.fromarray(data.coffee()).resize((width, height), Image.Resampling.BICUBIC)
    person = Image.fromarray(data.astronaut())
    side = height * 9 // 10
    canvas.paste(person.resize((side, side), Image.Resampling.BICUBIC), ((width - side) // 2, height - side))
    pixels = np.asarray(canvas).copy()
    rng = np.random.default_rng(seed)
    for top in range(0, height, 512):  # grain in bands: a 48 MP float array would need 1 GB
        band = pixels[top : top + 512]
        noise = rng.normal(0, 8, band.shape).astype(np.int16)
        pixels[top : top + 512] = np.clip(band.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def camera_jpeg(megapixels: float, seed: int = 0, quality: int = 90) -> bytes:
    """`scene()` as a camera writes it: JPEG at `quality` with an EXIF block."""
    exif = Image.Exif()
    exif[0x010F] = "Benchmark Camera"
    exif[0x0112] = 1
    return encode(scene(megapixels, seed), "JPEG", quality=quality, exif=exif.tobytes())


# --- measuring ----------------------------------------------------------------------------------------


def median_time(function: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """A process's resident memory (VmRSS) or its high-water mark (VmHWM), in bytes."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024


def mb(count: float) -> str:
    return f"{count / 1e6:.1f} MB"


# --- the site, as deployed ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Site:
    """`gunicorn -c gunicorn.conf.py portraitsite.wsgi` on a free port of 127.0.0.1, configured only
    by environment variables, with its unlock codes in a temporary SQLite file. Stop it with stop()
    or use it as a context manager; it is stopped by its own pid."""

    def __init__(self, workers: int = 1, **environment: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._directory = tempfile.mkdtemp(prefix="portraitsite-bench-")
        self.env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "GUNICORN_"))}
        self.env.update(
            DEBUG="true",  # production mode would need collectstatic into the repository
            DATABASE_URL=f"sqlite:///{self._directory}/codes.sqlite3",
            BIND=f"127.0.0.1:{self.port}",
            WEB_CONCURRENCY=str(workers),
            BACKGROUND_ENGINE="local",
            CROWD_ENGINE="local",
            # A benchmark is one client holding many jobs: the per-client share would refuse it.
            CLIENT_LIVE_JOBS="0",
            CLIENT_STORE_PERCENT="0",
            PYTHONPATH=str(ROOT),
        )
        self.env.update(environment)
        self.workers = workers
        self.log: list[str] = []
        self.process: subprocess.Popen | None = None

    def manage(self, *arguments: str) -> str:
        done = subprocess.run(
            [PYTHON, "manage.py", *arguments], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300
        )
        if done.returncode:
            raise RuntimeError(done.stderr[-2000:])
        return done.stdout

    def codes(self, count: int) -> list[str]:
        return self.manage("issue_codes", "--count", str(count), "--label", "benchmark").split()

    def start(self) -> Site:
        self.manage("migrate", "--noinput")
        self.process = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py", "portraitsite.wsgi"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read_log, daemon=True).start()
        try:
            return self._wait_until_serving()
        except BaseException:
            self.stop()  # never leave a gunicorn behind
            raise

    def _wait_until_serving(self) -> Site:
        import requests

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("gunicorn exited:\n" + "\n".join(self.log[-20:]))
            if len(self.worker_pids()) >= self.workers:
                try:
                    if requests.get(self.url + "/healthz", timeout=5).ok:
                        return self
                except (requests.ConnectionError, requests.Timeout):  # still starting, on a busy machine
                    pass
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not start:\n" + "\n".join(self.log[-20:]))

    def _read_log(self) -> None:
        for line in self.process.stderr:
            self.log.append(line.rstrip("\n"))

    def worker_pids(self) -> list[int]:
        return [int(m.group(1)) for line in list(self.log) if (m := re.search(r"Booting worker with pid: (\d+)", line))]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> Site:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class Visitor:
    """The visitor's steps over HTTP, each on a new connection (no redirects followed)."""

    def __init__(self, site: Site):
        import requests

        self.requests = requests
        self.site = site

    def upload(self, photo: bytes, mode: str = "cutout"):
        return self.requests.post(
            self.site.url + "/jobs/",
            files={"image": ("photo.jpg", photo, "image/jpeg")},
            data={"mode": mode},
            allow_redirects=False,
            timeout=120,
        )

    def token(self, photo: bytes, mode: str = "cutout") -> str:
        response = self.upload(photo, mode)
        if response.status_code != 303:
            raise RuntimeError(f"upload answered {response.status_code}")
        return response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]

    def status(self, token: str) -> dict:
        return self.requests.get(f"{self.site.url}/jobs/{token}/status", timeout=30).json()

    def wait(self, token: str, done: Callable[[dict], bool], timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status(token)
            if done(status):
                return status
            time.sleep(0.1)
        raise RuntimeError(f"job still {status} after {timeout}s")

    def ready(self, token: str) -> dict:
        status = self.wait(token, lambda s: s["state"] in ("ready", "failed"))
        if status["state"] != "ready":
            raise RuntimeError(f"job failed: {status['error']}")
        return status

    def unlock(self, token: str, code: str) -> dict:
        response = self.requests.post(
            f"{self.site.url}/jobs/{token}/unlock", data={"code": code}, allow_redirects=False, timeout=30
        )
        if response.status_code != 303:
            raise RuntimeError(f"unlock answered {response.status_code}")
        status = self.wait(token, lambda s: s["delivery"] != "finishing")
        if not status["unlocked"]:
            raise RuntimeError(f"unlock failed: {status['delivery_error']}")
        return status

    def get(self, path: str) -> bytes:
        response = self.requests.get(self.site.url + path, timeout=120)
        response.raise_for_status()
        return response.content


# --- remove.bg and DashScope, faked -------------------------------------------------------------------

# A fake provider in a process of its own, every answer delayed: the fakes' own slow switch.
FAKE = """
from tests.fakes.{module} import {cls} as Fake
fake = Fake(port=0)
fake.slow_next({seconds}, times=100_000)
if hasattr(fake, "balance"):
    fake.balance = 1_000_000.0  # remove.bg's account: a long run must not spend it down to the fallback
print(fake.base_url, fake.api_key, flush=True)
fake._server.serve_forever()
"""


def start_fake(module: str, cls: str, seconds: float) -> tuple[subprocess.Popen, str, str]:
    """One fake (tests/fakes/) answering after `seconds`: its process, base URL and API key."""
    process = subprocess.Popen(
        [PYTHON, "-c", FAKE.format(module=module, cls=cls, seconds=seconds)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.PIPE,
        text=True,
    )
    base_url, key = process.stdout.readline().split()
    return process, base_url, key


def start_fake_providers(
    removebg_delay: float, dashscope_delay: float
) -> tuple[dict[str, str], list[subprocess.Popen]]:
    """remove.bg and DashScope replaced by their fakes: the site's environment that sends uploads
    to them, and their processes, for stop_fakes."""
    removebg, removebg_url, removebg_key = start_fake("removebg", "FakeRemoveBg", removebg_delay)
    dashscope, dashscope_url, dashscope_key = start_fake("dashscope", "FakeDashScope", dashscope_delay)
    environment = {
        "BACKGROUND_ENGINE": "removebg",
        "REMOVEBG_API_URL": removebg_url,
        "REMOVEBG_API_KEY": removebg_key,
        "CROWD_ENGINE": "dashscope",
        "DASHSCOPE_API_URL": dashscope_url,
        "DASHSCOPE_API_KEY": dashscope_key,
    }
    return environment, [removebg, dashscope]


def stop_fakes(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def private_redis(max_memory: str = "2gb") -> tuple[subprocess.Popen, str]:
    """A redis-server of the benchmark's own on a free port: no persistence, noeviction, as
    docs/scaling.md asks. The caller terminates it (by its pid)."""
    import redis

    if not shutil.which("redis-server"):
        raise RuntimeError("redis-server is not installed")
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tempfile.gettempdir(),
            "--maxmemory",
            max_memory,
            "--maxmemory-policy",
            "noeviction",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url, socket_connect_timeout=0.2).ping()
            return server, url
        except redis.ConnectionError:
            time.sleep(0.05)
    server.terminate()
    raise RuntimeError("redis-server did not start")
