"""Debian's nginx running deploy/nginx.conf.template, as shipped, in front of a gunicorn of the test's.

The shipped file is rendered by deploy/render-nginx-conf, the command docs/production.md gives, and
included in a minimal main configuration of the test's own: nginx's pid, logs and every temporary
directory it could write (request bodies, proxied responses) live in a directory of the test, so the
tests can look at them. The only change to the rendered file is where its two logs go.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NGINX = Path("/usr/sbin/nginx")
TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


@dataclass
class Nginx:
    port: int
    directory: Path
    pid: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def temp(self) -> Path:
        return self.directory / "temp"

    def temp_files(self) -> list[str]:
        """Every file nginx holds under its temporary directories (bodies, responses). nginx
        unlinks a temporary file as soon as it has created it, so a directory listing alone sees
        nothing: the files its processes have open count too ("… (deleted)")."""
        listed = [str(path) for path in self.temp.rglob("*") if path.is_file()]
        return listed + [target for target in self._open_files() if target.startswith(str(self.temp))]

    def _open_files(self) -> list[str]:
        processes = [self.pid] + [
            int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat") if _parent_pid(stat) == self.pid
        ]
        targets = []
        for pid in processes:
            for fd in Path(f"/proc/{pid}/fd").glob("*"):
                with contextlib.suppress(OSError):
                    targets.append(os.readlink(fd))
        return targets

    def access_log(self) -> str:
        return (self.directory / "logs" / "portraitsite.access.log").read_text()


def _parent_pid(stat: Path) -> int | None:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def render(listen_port: int, upstream: str, static_root: Path) -> str:
    """deploy/nginx.conf.template through deploy/render-nginx-conf, exactly as documented."""
    env = dict(os.environ, LISTEN_PORT=f"127.0.0.1:{listen_port}", UPSTREAM=upstream, STATIC_ROOT=str(static_root))
    done = subprocess.run(
        [ROOT / "deploy" / "render-nginx-conf"], env=env, capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def nginx_in_front(upstream: str, directory: Path, *, change=lambda text: text) -> Iterator[Nginx]:
    """nginx on a free port proxying to `upstream` (host:port), stopped by its pid afterwards.
    `change` may alter the rendered text (a control experiment); the tests of the shipped file
    pass none. Skips where Debian's nginx is not installed."""
    if not NGINX.exists():
        pytest.skip("nginx is not installed (apt-get install nginx)")
    port = free_port()
    (directory / "logs").mkdir(parents=True)
    (directory / "temp").mkdir()
    site = render(port, upstream, ROOT / "static").replace("/var/log/nginx/", f"{directory}/logs/")
    (directory / "portraitsite.conf").write_text(change(site))
    temp_paths = "\n".join(f"    {kind}_temp_path {directory / 'temp' / kind};" for kind in TEMP_KINDS)
    # As root, nginx's workers would run as "nobody" and could not write to the test's directory at
    # all; then an empty temporary directory would prove nothing. They run as the test's user.
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    (directory / "nginx.conf").write_text(
        f"""{user}
daemon off;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "logs" / "error.log"} info;
events {{ worker_connections 1024; }}
http {{
{temp_paths}
    include {directory / "portraitsite.conf"};
}}
"""
    )
    process = subprocess.Popen(
        [NGINX, "-p", directory, "-c", directory / "nginx.conf", "-e", directory / "logs" / "error.log"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, f"nginx exited: {process.stderr.read()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        yield Nginx(port, directory, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
