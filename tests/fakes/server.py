"""What every fake provider shares: a real HTTP/1.1 server on 127.0.0.1 in a background thread that
records each request, answers through the fake's `handle`, and can send that answer late, stop
halfway or hang up. Each fake (removebg.py, dashscope.py) adds only its API and its switches.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import socket
import threading
import urllib.parse
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any, Self

try:
    from pytest import fixture
except ImportError:  # a fake run on its own needs no pytest: its fixtures are then plain functions

    def fixture(function):
        return function


# status, headers, body; status 0 hangs up without answering (after reading the request).
Answer = tuple[int, list[tuple[str, str]], bytes]


@dataclass
class ReceivedRequest:
    """One request as the fake saw it. `status` is what the fake answered (0: hung up)."""

    method: str
    path: str
    query: dict[str, str]
    headers: list[tuple[str, str]]
    body: bytes = dataclasses.field(default=b"", repr=False)
    status: int = 0

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Pacing:
    """How an answer goes out: after `before` seconds; with `pause`, the headers and half of the
    body, then `pause` seconds of silence, then the rest, or with `hang_up` nothing more."""

    before: float = 0.0
    pause: float | None = None
    hang_up: bool = False


AT_ONCE = Pacing()


class FakeServer:
    """Subclasses set `name`, `base_path` and `settings_prefix` and implement `handle`; `pacing`
    decides how each answer is sent. Use as a context manager, or `start()` and `stop()`."""

    name = "fake"
    base_path = ""
    settings_prefix = ""  # REMOVEBG → REMOVEBG_API_URL and REMOVEBG_API_KEY
    request_type: type[ReceivedRequest] = ReceivedRequest

    def __init__(self, api_key: str, host: str = "127.0.0.1", port: int = 0):
        self.api_key = api_key
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        # stop() must not wait for a handler that a client keeps on an idle keep-alive connection.
        self._server.block_on_close = False
        self._thread: threading.Thread | None = None

    # --- what a fake implements ---------------------------------------------------------------------

    def handle(self, request: ReceivedRequest) -> Answer:
        raise NotImplementedError

    def pacing(self, request: ReceivedRequest) -> Pacing:
        """Asked once per answer (not for a hang-up), after `handle`."""
        return AT_ONCE

    # --- lifecycle ------------------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.origin + self.base_path

    def start(self) -> Self:
        # A short poll interval: shutdown() waits for the loop to notice, once per test.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes answers that are being held back
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def serve_until_interrupted(self) -> None:
        """Serve in the foreground (`python -m tests.fakes.…`), after printing the settings that
        point the site at this fake."""
        print(
            f"{self.settings_prefix}_API_URL={self.base_url}\n{self.settings_prefix}_API_KEY={self.api_key}", flush=True
        )
        try:
            self._server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self._server.server_close()

    # --- what happened --------------------------------------------------------------------------------

    @property
    def requests(self) -> list:
        with self._lock:
            return list(self._requests)

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    # --- switches: queues of what the next requests get, shared with the handler threads ---------------

    def _push(self, queue: deque, items: Iterable) -> None:
        with self._lock:
            queue.extend(items)

    def _pop(self, queue: deque, default=None):
        with self._lock:
            return queue.popleft() if queue else default


def _handler_for(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs behind their load balancers
        server_version = fake.name

        def do_POST(self) -> None:
            self._serve()

        def do_GET(self) -> None:
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            split = urllib.parse.urlsplit(self.path)
            request = fake.request_type(
                method=self.command,
                path=split.path,
                query=dict(urllib.parse.parse_qsl(split.query)),
                headers=list(self.headers.items()),
                body=self.rfile.read(length) if length else b"",
            )
            fake._record(request)
            status, headers, payload = fake.handle(request)
            request.status = status
            if status == 0:  # the request arrived, the answer never leaves (a crashed load balancer)
                self.close_connection = True
                return
            pacing = fake.pacing(request)
            if pacing.before and fake._stopping.wait(pacing.before):
                return
            try:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                if any(name.lower() == "transfer-encoding" for name, _value in headers):
                    # A body of undeclared length, as streaming servers send: chunks, then an empty one.
                    self.end_headers()
                    for start in range(0, len(payload), 64 * 1024):
                        chunk = payload[start : start + 64 * 1024]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if pacing.pause is None:
                    self.wfile.write(payload)
                    return
                half = len(payload) // 2
                self.wfile.write(payload[:half])
                self.wfile.flush()
                if fake._stopping.wait(pacing.pause) or pacing.hang_up:
                    self.close_connection = True
                    return
                self.wfile.write(payload[half:])
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test): nothing to answer

        def log_message(self, format: str, *args) -> None:
            pass  # the record of requests is the log

    return Handler


def command_line(doc: str, *, port: int, key: str) -> argparse.ArgumentParser:
    """The options every fake takes when run on its own; `doc` is its module docstring."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--key", default=key, help="the API key it accepts")
    return parser


# --- for the tests ---------------------------------------------------------------------------------------


def recorded_sleeps(monkeypatch, client: ModuleType) -> list[float]:
    """A provider client's backoff waits (its RETRY_POLICY's sleep), recorded instead of slept."""
    sleeps: list[float] = []
    monkeypatch.setattr(client, "RETRY_POLICY", dataclasses.replace(client.RETRY_POLICY, sleep=sleeps.append))
    return sleeps


def unused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: a provider that cannot be reached."""
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        return placeholder.getsockname()[1]
