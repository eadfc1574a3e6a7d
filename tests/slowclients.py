"""Clients on raw sockets, for the tests of slow and idle clients: each may come from an address of
its own on the loopback network (all of 127.0.0.0/8 is local on Linux), as different visitors do."""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import time
import uuid


def multipart(photo: bytes, mode: str = "cutout", name: str = "photo.jpg") -> tuple[bytes, str]:
    """The body and Content-Type of the home page's upload form."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="mode"\r\n\r\n{mode}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + photo + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class SlowUpload:
    """An upload whose headers go out at once and whose body then comes a little at a time; or,
    with `head`, any request that stops after its first bytes."""

    def __init__(self, port: int, source: str = "127.0.0.1", length: int = 512 * 1024, head: bytes = b""):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
        boundary = uuid.uuid4().hex
        self.sock.sendall(
            head
            or (
                f"POST /jobs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="slow.jpg"\r\n\r\n'
            ).encode()
        )
        self.dropped = False

    def trickle(self, count: int = 1024) -> bool:
        """Send `count` more bytes of body; False once the server has closed the connection."""
        if not self.dropped:
            try:
                if self.answered(0):
                    return False
                self.sock.sendall(b"\xff" * count)
            except OSError:
                self.dropped = True
        return not self.dropped

    def answered(self, timeout: float) -> bool:
        """Whether the server has answered or closed the connection (within `timeout` seconds)."""
        if self.dropped:
            return True
        readable, _, _ = select.select([self.sock], [], [], timeout)
        if readable:
            self.dropped = True
        return self.dropped

    def answer(self, timeout: float = 5) -> bytes:
        """What the server sent before closing (b"" when it just closed or reset the connection)."""
        received = b""
        self.sock.settimeout(timeout)
        with contextlib.suppress(OSError):
            while chunk := self.sock.recv(65536):
                received += chunk
        return received

    def close(self) -> None:
        self.sock.close()


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str = "",
    source: str = "127.0.0.1",
    timeout: float = 30,
) -> tuple[int, dict[str, str], bytes, float]:
    """One request on a new connection: status, headers, body, and seconds to the whole answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    headers = {"Content-Type": content_type} if content_type else {}
    started = time.perf_counter()
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, dict(response.getheaders()), data, time.perf_counter() - started
    finally:
        connection.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]
