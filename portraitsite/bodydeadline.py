"""A total deadline for reading a request body, so a slow client cannot hold a request thread.

gunicorn reads a body only when the application asks for it, from a blocking socket and without
any time limit: a client that trickles an upload a few bytes at a time keeps one of the process's
request threads for as long as it likes, and a handful of them took the whole site down. Behind
nginx (deploy/nginx.conf.template) bodies arrive whole and this never triggers; it is what keeps
gunicorn on its own (development, or a deployment without a proxy) from hanging.

`BodyDeadline` wraps the WSGI application: every body must be read within
REQUEST_BODY_DEADLINE_SECONDS of the request's start. A per-read socket timeout cannot say that
(one read of 64 KiB loops over many small recv()s, each with the full timeout), so one watchdog
thread per process shuts the socket's read side down at the deadline: the blocked recv() returns at
once, the read raises BodyTooSlow, and `SlowBodyMiddleware` answers 408. The connection then ends,
because gunicorn finds nothing more to read on it.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable

from django.http import HttpRequest, HttpResponse, UnreadablePostError

logger = logging.getLogger(__name__)


class BodyTooSlow(OSError):
    """The request body did not arrive within its deadline. An OSError, so that Django's request
    reports it as an UnreadablePostError, as it does a client that went away."""


class _Body:
    """wsgi.input, read against a deadline."""

    def __init__(self, stream, sock: socket.socket | None, deadline: float, length: int):
        self._stream = stream
        self.sock = sock
        self.deadline = deadline
        self.remaining = length
        self.expired = False
        self.retired = False  # the connection moved on to its next request
        self.lock = threading.Lock()

    @property
    def complete(self) -> bool:
        return self.remaining <= 0 or self.retired

    def _check(self) -> None:
        if self.expired or time.monotonic() >= self.deadline:
            self.expired = True
            raise BodyTooSlow("request body too slow")

    def read(self, size: int = -1) -> bytes:
        self._check()
        data = self._stream.read(size)
        self._check()  # a read the watchdog cut short is not a short body
        self.remaining -= len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        self._check()
        data = self._stream.readline(size)
        self._check()
        self.remaining -= len(data)
        return data

    def expire(self) -> None:
        """Called by the watchdog at the deadline: wake a blocked read and refuse the rest."""
        with self.lock:
            if self.complete or self.sock is None:
                return
            self.expired = True
            with contextlib.suppress(OSError):  # closed already: the client went away
                self.sock.shutdown(socket.SHUT_RD)


class _Watchdog:
    """One thread per process that expires the bodies still unread at their deadline."""

    def __init__(self):
        self._due: list[tuple[float, int, _Body]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, body: _Body) -> None:
        with self._wake:
            heapq.heappush(self._due, (body.deadline, next(self._order), body))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="body-deadline", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due:
                    self._wake.wait()
                when, _order, body = self._due[0]
                wait = when - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._due)
            if not body.complete:
                body.expire()


_watchdog = _Watchdog()
# The body last watched on each connection. The next request on the same connection means that
# gunicorn has read whatever the application left of it: its deadline no longer applies.
_last_body: weakref.WeakKeyDictionary[socket.socket, _Body] = weakref.WeakKeyDictionary()
_last_body_lock = threading.Lock()


class BodyDeadline:
    """WSGI middleware: the request body must arrive within `seconds`."""

    def __init__(self, application: Callable, seconds: float):
        self.application = application
        self.seconds = seconds

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if sock is not None:
            with _last_body_lock:
                previous = _last_body.pop(sock, None)
            if previous is not None:
                with previous.lock:
                    previous.retired = True
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length <= 0:
            # No body the application would read (Django reads none without a Content-Length);
            # gunicorn refuses what it cannot frame.
            return self.application(environ, start_response)
        body = _Body(environ["wsgi.input"], sock, time.monotonic() + self.seconds, length)
        environ["wsgi.input"] = body
        if sock is not None:
            # Also armed for a body the application leaves unread: gunicorn reads and discards it
            # before the next request on the connection, and that read must end too.
            with _last_body_lock:
                _last_body[sock] = body
            _watchdog.watch(body)
        return self.application(environ, start_response)


class SlowBodyMiddleware:
    """Django middleware: a body that missed its deadline is a 408, not a server error."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, UnreadablePostError) and isinstance(exception.__cause__, BodyTooSlow):
            from portraitsite.errors import error_response

            logger.warning("Request body not received within its deadline; connection dropped.")
            return error_response(request, 408, "too_slow")
        return None
