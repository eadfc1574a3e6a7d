"""Log and error-report hygiene: no job token, unlock code, photo byte or visitor detail ever
reaches a log line or an error email, whatever logged it.

Four layers, because each catches what the others cannot see:

* `redact()` scrubs text: job tokens (in /jobs/ paths and bare), unlock codes, long bytes
  literals and data URIs, signed-URL queries, in time linear in the text and on at most
  `MAX_CHARS` of it. The log formatter, the access-log atoms of gunicorn (gunicorn.conf.py) and
  the error emails all pass through it.
* `PrivateExceptionReporterFilter` keeps error reports to the code path: no local variables (a
  view holds photos and codes in them), no POST, FILES, GET or cookie values, and of the request
  headers only a few that say nothing about the visitor.
* `PrivateExceptionReporter` and `RedactingAdminEmailHandler` scrub the finished report and the
  subject line, which carry the request path.
* `GunicornLogger` does the same for gunicorn's access and error logs, and leaves out the
  visitor's address and browser.
"""

from __future__ import annotations

import logging
import os
import re

from django.conf import settings
from django.utils.log import AdminEmailHandler
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter
from gunicorn.glogging import Logger as GunicornBaseLogger

# Every pattern below is linear in the length of the text it scans, whatever the text: log lines
# carry what visitors send (a Host header, a path, header values), and a regular expression that
# backtracks holds the GIL of the whole worker while it does. Each alternative consumes a character
# in only one way, no two quantifiers compete for the same run, and a pattern that can fail late
# starts only where the previous character cannot start it too. tests/test_logs.py feeds each one
# hostile input under a time limit.

# Job URLs carry the token as their only secret; anything after /jobs/ up to the next slash goes.
TOKEN_IN_PATH = re.compile(r"(/jobs/)[A-Za-z0-9_-]{8,}")
# A token outside a path (a cache key in an exception message): secrets.token_urlsafe(32) is 43
# URL-safe characters. A run that long with both upper and lower case is taken for one (about one
# token in 3 billion lacks a case); a digit is not required, since one token in 1,500 has none.
# Words and identifiers of 40+ characters are lower case (test names, hex digests) and stay; the
# rare long CamelCase class name (redis-py has a few) is hidden too, which costs a traceback some
# readability, never a secret. (The look-behind lets only the first character of a run start a
# match, so a long run is walked once.)
BARE_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{40,64}(?![A-Za-z0-9_-])")
# Unlock codes as people see them (XXXX-XXXX-XXXX-XXXX, any case) or normalised (16 characters of
# Crockford base32, at least one of them a letter, so that long numbers survive).
UNLOCK_CODE = re.compile(
    r"(?<![0-9A-Za-z-])(?:[0-9A-Za-z]{4}-){3}[0-9A-Za-z]{4}(?![0-9A-Za-z-])"
    r"|(?<![0-9A-Za-z])(?=[0-9]{0,15}[A-Z])[0-9A-HJKMNP-TV-Z]{16}(?![0-9A-Za-z])"
)
# Photo bytes as Python prints them, and inline images (a data URI sent to a provider). A
# backslash starts an escape and nothing else, so `b'` and a run of backslashes is read once (the
# earlier `(?:\\.|(?!\1).)` matched a backslash both ways: exponential, 6 s for 30 of them). A
# literal the end of the text cuts off (a cut report) counts as closed there.
BYTES_LITERAL = re.compile(r"""b(['"])(?:\\.|(?!\1)[^\\]){64,}?(?:\1|\Z)""", re.S)
# What is left of printed bytes when text before them shifted the quotes (an unclosed `b'` in a
# header value makes the literal's opening quote look like a closing one): runs of \\xNN escapes.
# Each escape starts at a backslash and nothing between two of them may be one, so a run is read
# once.
ESCAPED_BYTES = re.compile(r"(?:\\x[0-9a-f]{2}[^\\]{0,4}){16,}")
DATA_URI = re.compile(r"data:[\w/+.-]{1,127};base64,[A-Za-z0-9+/=\s]{16,}")
# A provider's signed result link: the query is the signature that opens it. A link is taken
# whole, up to the next space or quote, and its query looked at in Python: a pattern that had to
# find the field name inside the query backtracked over it (quadratic: 0.14 s for one 16 KB field).
URL = re.compile(r"https?://[^\s'\"]*")
SIGNATURE_FIELD = re.compile(r"Signature=|signature=|Expires=|OSSAccessKeyId=")
HIDDEN = "…"

# At most this much of one text is scrubbed and kept (an error report with its traceback is
# 20-60 kB; a photo's bytes printed in an exception message can be megabytes). The patterns are
# linear, so this bounds the time too: see test_redact_is_quick_on_hostile_text.
MAX_CHARS = 256 * 1024
# A longer text is scrubbed this far past the cut, so that a secret crossing the cut is
# recognised whole. A secret the window's own end cuts short (a token, code or data URI is under
# 160 characters; a bytes literal counts as closed at the end) is left as it was, at the very end
# of the scrubbed window: the part of the window's end that scrubbing left alone (up to this many
# characters) is dropped.
_BEYOND_CUT = 256


def _bare_token(match: re.Match) -> str:
    text = match.group(0)
    mixed_case = any(c.isupper() for c in text) and any(c.islower() for c in text)
    return HIDDEN if mixed_case else text


def _signed_link(match: re.Match) -> str:
    link, question, query = match.group(0).partition("?")
    return link + "?" + HIDDEN if question and SIGNATURE_FIELD.search(query) else match.group(0)


def _bytes_literal(match: re.Match) -> str:
    quote = match.group(1)
    return f"b{quote}<{len(match.group(0))} characters of bytes hidden>{quote}"


def _scrub(text: str) -> str:
    text = TOKEN_IN_PATH.sub(r"\1" + HIDDEN, text)
    text = URL.sub(_signed_link, text)
    text = DATA_URI.sub("data:" + HIDDEN, text)
    text = BYTES_LITERAL.sub(_bytes_literal, text)
    text = ESCAPED_BYTES.sub("<escaped bytes hidden>", text)
    text = BARE_TOKEN.sub(_bare_token, text)
    return UNLOCK_CODE.sub("[unlock code]", text)


def redact(text: str, limit: int = MAX_CHARS) -> str:
    """`text` without job tokens, unlock codes, photo bytes or signed URLs, and at most `limit`
    characters of it: a longer text is scrubbed first, then cut, with a note of its length."""
    if len(text) <= limit:
        return _scrub(text)
    window = text[: limit + _BEYOND_CUT]
    scrubbed = _scrub(window)
    if len(window) < len(text):
        unchanged = os.path.commonprefix([window[-_BEYOND_CUT:][::-1], scrubbed[-_BEYOND_CUT:][::-1]])
        scrubbed = scrubbed[: len(scrubbed) - len(unchanged)]
    return scrubbed[:limit] + f"{HIDDEN} <{len(text)} characters>"


class RedactTokensFilter(logging.Filter):
    """Scrubs the message of every record a handler receives (before any handler formats it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class RedactingFormatter(logging.Formatter):
    """Scrubs the whole formatted line, tracebacks included: an exception's message can carry what
    the record's message does not."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


# --- Error reports (emails, and the technical 500 page in development) -------------------------

# Request headers that tell the operator what kind of request failed and nothing about who sent
# it (no address, browser, referrer or path).
REPORTED_META = ("REQUEST_METHOD", "CONTENT_TYPE", "CONTENT_LENGTH", "SERVER_PROTOCOL", "wsgi.url_scheme")
# (A scheme starts only at the start of a word: otherwise every letter of a long word started a
# scan to its end, quadratic.)
CREDENTIALS_IN_URL = re.compile(r"(?<!\w)(\w+://)[^/@\s]*@")


class PrivateExceptionReporterFilter(SafeExceptionReporterFilter):
    """Active in development too: a technical 500 page is an error report like any other."""

    def is_active(self, request) -> bool:
        return True

    def get_traceback_frame_variables(self, request, tb_frame):
        return []  # views hold photos, codes and tokens in their locals

    def get_post_parameters(self, request):
        if request is None:
            return {}
        return dict.fromkeys(request.POST, self.cleansed_substitute)

    def get_safe_cookies(self, request):
        return dict.fromkeys(getattr(request, "COOKIES", {}), self.cleansed_substitute)

    def get_safe_request_meta(self, request):
        meta = getattr(request, "META", {})
        return {key: meta[key] for key in REPORTED_META if key in meta}

    def cleanse_setting(self, key, value):
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return CREDENTIALS_IN_URL.sub(r"\1" + self.cleansed_substitute + "@", cleansed)
        return cleansed


class PrivateExceptionReporter(ExceptionReporter):
    """Django's reporter, with query strings and uploaded file names hidden and the finished text
    scrubbed (the request path is printed in several places)."""

    MAX_EXCEPTION_VALUE = 2000

    def get_traceback_data(self) -> dict:
        data = super().get_traceback_data()
        if self.request is not None:
            hidden = self.filter.cleansed_substitute
            data["request_GET_items"] = [(name, hidden) for name in self.request.GET]
            data["request_FILES_items"] = [(name, hidden) for name in self.request.FILES]
            data["request_insecure_uri"] = redact(self.request.path)  # neither host nor query
        value = data.get("exception_value")
        if value is not None:
            # Scrubbed whole, then cut: a cut first could leave half a token or an unclosed
            # bytes literal that no pattern recognises.
            data["exception_value"] = redact(str(value), limit=self.MAX_EXCEPTION_VALUE)
        return data

    def get_traceback_html(self) -> str:
        return redact(super().get_traceback_html())

    def get_traceback_text(self) -> str:
        return redact(super().get_traceback_text())


class RedactingAdminEmailHandler(AdminEmailHandler):
    """Error emails to ERROR_EMAILS (settings.ADMINS), scrubbed; nothing at all when it is empty."""

    def __init__(self, include_html: bool = False, **kwargs):
        kwargs.setdefault("reporter_class", "portraitsite.logging.PrivateExceptionReporter")
        super().__init__(include_html=include_html, **kwargs)

    def emit(self, record: logging.LogRecord) -> None:
        if not settings.ADMINS:
            return
        super().emit(record)

    def send_mail(self, subject, message, *args, **kwargs):
        if kwargs.get("html_message"):
            kwargs["html_message"] = redact(kwargs["html_message"])
        return super().send_mail(redact(subject), redact(message), *args, **kwargs)


# --- gunicorn ----------------------------------------------------------------------------------

# Access-log atoms that would say who the visitor is: the address (also as forwarded by a proxy),
# the port, the browser, cookies.
# (h: address, a: user agent, u: user; U is the path and stays, scrubbed.)
_VISITOR_ATOMS = {"h", "a", "u"}
_VISITOR_ATOM = re.compile(r"addr|forwarded|real-ip|real_ip|agent|cookie|port", re.I)
# gunicorn's warning for a malformed request names the client: "Invalid request from ip=…".
_CLIENT_ADDRESS = re.compile(r"\bip=\S+?(?=:\s|\s|$)")


class _GunicornErrorFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = _CLIENT_ADDRESS.sub("ip=" + HIDDEN, redact(message))
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


class GunicornLogger(GunicornBaseLogger):
    """gunicorn's logger (gunicorn.conf.py: `logger_class`) that records no job token and nothing
    about the visitor, whatever access_log_format asks for: the atoms the format uses are scrubbed
    (the path, the query, the Referer and a 303's Location all carry tokens), the visitor's
    address, port, browser and cookies are blanked, and the atoms it does not use are left out
    (gunicorn prints "-" for a missing one) rather than scrubbed for nothing: every request
    header and environ variable would be, each a visitor's choice. The error log is scrubbed as
    well: gunicorn names the URI of a request that crashed and the address of one that was
    malformed."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        if not any(isinstance(f, _GunicornErrorFilter) for f in self.error_log.filters):
            self.error_log.addFilter(_GunicornErrorFilter())
        for handler in self.error_log.handlers:
            if getattr(handler, "_gunicorn", False):
                handler.setFormatter(RedactingFormatter(self.error_fmt, self.datefmt))

    def atoms(self, resp, req, environ, request_time) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        logged = {}
        for key in used_atoms(self.cfg.access_log_format):
            if key not in atoms:
                continue
            value = atoms[key]
            if key in _VISITOR_ATOMS or _VISITOR_ATOM.search(key):
                value = "-"
            elif isinstance(value, str):
                value = redact(value)
            logged[key] = value
        return logged


_ATOM = re.compile(r"%\(([^)]*)\)")


def used_atoms(access_log_format: str) -> set[str]:
    """The atoms an access-log format prints: `%(U)s` and `%({x-note}i)s` give `U` and
    `{x-note}i` (gunicorn looks headers and environ variables up in lower case)."""
    return {key.lower() if key.startswith("{") else key for key in _ATOM.findall(access_log_format)}
