"""Outbound HTTP shared by the provider clients: one error type, a session factory, one bounded
retry loop and a size-capped body read.

Every client failure is a `ProviderError`: a key into the provider's table of visitor messages, a
detail for the operator, whether trying again later may help, and whether the call may have been
billed. The engines translate it into an `EngineError` (segmentation.engines.base.provider_failure).

`send` applies explicit connect/read timeouts and retries only what is both safe and useful:

* 429: wait as long as `Retry-After` asks when that is within `retry_after_cap`, at most
  `rate_limit_retries` times. A longer wait is not worth holding a worker for, so the 429 goes back
  to the caller at once (it tells the visitor to try again later).
* A status in `retry_statuses` (the provider's transient failures), and a connection that could not
  be opened (refused, unresolvable, connect timeout): up to `attempts` tries in all, with jittered
  exponential backoff ("full jitter", so that many workers hit by the same outage do not retry in
  lockstep).
* A connection lost after the request went out (reset, closed before the answer): only when
  `retry_sent_requests` is set. The provider may have received the request, done the work and
  billed it; a middlebox that cuts every long answer would otherwise bill each job `attempts` times.
* A read timeout: never. The provider was working on our request (and may bill it), and the
  visitor has already waited a whole read timeout.
* Any other status is returned unchanged: repeating a refused request cannot help.

Redirects are never followed (`allow_redirects=False` on every call): requests keeps custom
credential headers such as remove.bg's `X-API-Key` on a 307/308 to another host, and a signed
result link has no business sending us elsewhere. A 3xx is a provider error like any other status.

Callers map the final response or exception to a `ProviderError`; this module knows nothing about
any provider.
"""

from __future__ import annotations

import email.utils
import ipaddress
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError, ReadTimeoutError

logger = logging.getLogger(__name__)


class ProviderError(Exception):
    """A provider call that failed.

    `message` is a key into the provider's table of visitor messages (`MESSAGES` in its module),
    `values` what that message interpolates; `detail` is for the operator's log and never holds a
    key, image bytes or a signed URL's query. `billed` is True when the provider may have done (and
    charged for) the work although we got nothing usable: a read timeout, a connection lost after
    the request went out, a paid answer we could not use. `status` is the HTTP status (None: no
    answer) and `code` the provider's own error code ("" when it gave none).
    """

    def __init__(
        self,
        message: str,
        detail: str,
        *,
        retryable: bool,
        billed: bool = False,
        status: int | None = None,
        code: str = "",
        values: dict[str, object] | None = None,
    ):
        super().__init__(detail)
        self.message = message
        self.detail = detail
        self.retryable = retryable
        self.billed = billed
        self.status = status
        self.code = code
        self.values = values or {}


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0  # a TCP/TLS handshake that takes longer is a provider outage
    read: float = 60.0  # between bytes of the answer, not the whole answer

    def as_requests(self) -> tuple[float, float]:
        return (self.connect, self.read)


# The transient server failures. Not 501/505 and the like: repeating cannot fix those.
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3  # tries in all for retryable statuses and connection failures
    base_delay: float = 0.5  # seconds; the backoff ceiling doubles on each retry ...
    max_delay: float = 4.0  # ... up to this
    rate_limit_retries: int = 2
    retry_after_cap: float = 10.0  # seconds; a longer Retry-After is not waited for
    retry_statuses: frozenset[int] = TRANSIENT_STATUSES
    # False for billed calls: only a connection that never opened is repeated. True where a second
    # request costs nothing (a GET of a stored result).
    retry_sent_requests: bool = False
    # Injectable so tests run without waiting; production sleeps for real.
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    jitter: Callable[[float, float], float] = field(default=random.uniform, compare=False)

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1 for the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return self.jitter(0.0, ceiling)


def new_session(user_agent: str) -> requests.Session:
    """A session with connection pooling and no hidden retries (urllib3's own are off, so that
    `send` alone decides what is repeated). Sessions are not shared between threads."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=0, pool_connections=2, pool_maxsize=4)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = user_agent
    return session


def retry_after_seconds(response: requests.Response) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date (RFC 9110); None when absent or junk."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    timeouts: Timeouts,
    policy: RetryPolicy,
    **kwargs,
) -> requests.Response:
    """Send one request with the retries described above; return the last response.

    Raises `requests.RequestException` when the last attempt got no response at all. `kwargs` go
    to `session.request` unchanged and must be replayable (bytes, not open files or generators).
    Redirects are returned, never followed (see above).
    """
    kwargs["allow_redirects"] = False
    failures = 0  # retryable statuses and connection failures so far
    rate_limited = 0
    while True:
        try:
            response = session.request(method, url, timeout=timeouts.as_requests(), **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            if not (never_sent(exc) or (policy.retry_sent_requests and not is_read_timeout(exc))):
                raise
            failures += 1
            if failures >= policy.attempts:
                raise
            _wait(policy, policy.backoff(failures), f"{type(exc).__name__} from {without_query(url)}")
            continue

        if response.status_code == 429:
            delay = retry_after_seconds(response)
            if delay is None:
                delay = policy.backoff(rate_limited + 1)
            if rate_limited >= policy.rate_limit_retries or delay > policy.retry_after_cap:
                return response
            rate_limited += 1
            response.close()
            _wait(policy, delay, f"429 from {without_query(url)}")
            continue

        if response.status_code in policy.retry_statuses:
            failures += 1
            if failures >= policy.attempts:
                return response
            response.close()
            _wait(policy, policy.backoff(failures), f"{response.status_code} from {without_query(url)}")
            continue

        return response


class ResponseTooLarge(Exception):
    """An answer longer than the caller's limit (declared or as it arrived)."""

    def __init__(self, limit: int):
        super().__init__(f"the answer exceeds {limit} bytes")
        self.limit = limit


def read_body(response: requests.Response, limit: int) -> bytes:
    """The body of a response sent with `stream=True`, read into memory but never beyond `limit`
    bytes: a declared Content-Length above it is refused before reading, and a body that keeps
    coming is cut off as soon as it passes it (an endless or hostile answer costs at most `limit`).

    Raises `ResponseTooLarge`, or `requests.RequestException` when the connection fails midway.
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ResponseTooLarge(limit)
    chunks, total = [], 0
    for chunk in response.iter_content(chunk_size=256 * 1024):
        total += len(chunk)
        if total > limit:
            raise ResponseTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def never_sent(exc: requests.RequestException) -> bool:
    """True when the connection could not be opened, so the server cannot have seen the request.

    requests reports a refused connection and a connection reset while awaiting the answer with the
    same ConnectionError; only urllib3's cause tells them apart. With urllib3's own retries off, a
    failure to connect arrives wrapped in MaxRetryError, a failure after sending does not.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    cause = exc.args[0] if exc.args else None
    if isinstance(cause, MaxRetryError):
        cause = cause.reason
    # NewConnectionError covers refusals and DNS failures (NameResolutionError); a TLS handshake
    # that times out is reported by urllib3 as a read timeout, and so counts as sent.
    return isinstance(cause, (NewConnectionError, ConnectTimeoutError))


# Raised before anything reached the server: a request that could not be prepared (a header value
# with a newline, a malformed URL) or a TLS handshake that failed.
_NOT_SENT = (
    requests.exceptions.InvalidHeader,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.SSLError,
)


def not_sent(exc: requests.RequestException) -> bool:
    """True when the server cannot have seen (nor billed) the request: `never_sent`, or one of the
    failures above. Unlike `never_sent`, not a reason to retry: those fail the same way each time."""
    return never_sent(exc) or isinstance(exc, _NOT_SENT)


def is_read_timeout(exc: requests.RequestException) -> bool:
    # requests reports a timeout while reading the body as a ConnectionError wrapping urllib3's
    # ReadTimeoutError; it means the same as ReadTimeout: the server was working on our request.
    cause = exc.args[0] if exc.args else None
    return isinstance(exc, requests.ReadTimeout) or isinstance(cause, ReadTimeoutError)


def _wait(policy: RetryPolicy, seconds: float, reason: str) -> None:
    logger.warning("Retrying after %s in %.1f s", reason, seconds)
    policy.sleep(seconds)


def without_query(url: str) -> str:
    """The URL without its query, for logs and details: signed result links carry credentials there."""
    return url.split("?", 1)[0]


def is_loopback(host: str) -> bool:
    """True for this machine (localhost, 127.0.0.0/8, ::1): the only place plain http may go, since
    no third party sees it (the tests' fakes run there)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
