"""Nothing leaks into logs or error reports: no photo bytes, unlock codes, job tokens, addresses or
browsers — in the console log, in error emails, on the development error page, or in gunicorn's
access and error logs. Each test makes the site fail the way a real bug would, with the secret at
hand, and reads what the operator would read."""

from __future__ import annotations

import datetime
import importlib.util
import io
import logging
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from django.conf import settings
from django.core import mail
from django.test import RequestFactory
from gunicorn.glogging import Logger as GunicornBaseLogger
from gunicorn.glogging import SafeAtoms

from portraitsite import logging as site_logging
from segmentation import store
from tests.flow import token_of, upload, wait_ready, wait_unlocked
from tests.guard import finishes_in_time
from tests.photos import encode, portrait_scene
from tests.test_scaleout import Gunicorn, Visitor, manage, site_environment
from unlock.issuing import issue

pytestmark = pytest.mark.django_db(transaction=True)

VISITOR = {"REMOTE_ADDR": "203.0.113.77", "HTTP_USER_AGENT": "Mozilla/5.0 (Secret-Browser 9.1)"}
FILENAME = "anna-karenina-at-the-station.jpg"


@pytest.fixture
def console():
    """What the configured console handler really prints (with its filters and formatter)."""
    handler = logging.getHandlerByName("console")
    assert handler is not None, "LOGGING defines the console handler"
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


@pytest.fixture
def crashing_client(client):
    client.raise_request_exception = False
    return client


def photo_bytes() -> bytes:
    return encode(portrait_scene(400, 300), "JPEG", quality=90)


def traces_of(photo: bytes) -> list[str]:
    """How photo bytes would look in text: raw, as Python prints them, in hex."""
    middle = photo[len(photo) // 2 : len(photo) // 2 + 24]
    return [repr(middle)[2:-1], middle.hex(), repr(photo[:12])[2:-1]]


def one_code() -> str:
    return issue(count=1, max_uses=1, expires_at=None, label="logs").displayed[0]


def secrets_in(text: str, *, token: str = "", code: str = "", photo: bytes = b"") -> list[str]:
    found = []
    if token and token in text:
        found.append("job token")
    if code:
        for form in (code, code.replace("-", ""), code.lower(), code.lower().replace("-", " ")):
            if form in text:
                found.append(f"unlock code as {form!r}")
    if photo:
        found += [f"photo bytes {trace!r}" for trace in traces_of(photo) if trace in text]
    for detail in (VISITOR["REMOTE_ADDR"], "Secret-Browser", FILENAME):
        if detail in text:
            found.append(detail)
    return found


def ready_job(client) -> str:
    token = token_of(upload(client, photo_bytes(), name=FILENAME, **VISITOR))
    assert wait_ready(token).state == store.READY
    return token


# --- The console log ------------------------------------------------------------------------------


def test_a_whole_visit_leaves_no_token_code_or_address_in_the_log(client, console):
    photo = photo_bytes()
    token = token_of(upload(client, photo, name=FILENAME, **VISITOR))
    wait_ready(token)
    code = one_code()
    for path in ("/jobs/%s/", "/jobs/%s/status", "/jobs/%s/preview", "/jobs/%s/download"):
        client.get(path % token, **VISITOR)
    client.post(f"/jobs/{token}/unlock", {"code": "ABCD-EFGH-JKMN-PQRS"}, **VISITOR)
    client.post(f"/jobs/{token}/unlock", {"code": code}, **VISITOR)
    wait_unlocked(token)
    client.get(f"/jobs/{token}/download?background=white", **VISITOR)
    client.post(f"/jobs/{token}/delete", **VISITOR)
    client.get(f"/jobs/{token}/", **VISITOR)
    assert secrets_in(console.getvalue(), token=token, code=code, photo=photo) == []


def test_a_crash_in_a_job_page_is_logged_without_its_token_or_code(crashing_client, console, monkeypatch):
    token = ready_job(crashing_client)
    code = one_code()

    def broken_page(request, job, **kwargs):
        raise RuntimeError(f"cannot render /jobs/{job.token}/ (job {job.token}, last code {code})")

    monkeypatch.setattr("segmentation.views._job_page", broken_page)
    assert crashing_client.get(f"/jobs/{token}/", **VISITOR).status_code == 500
    logged = console.getvalue()
    assert "Internal Server Error" in logged and "RuntimeError: cannot render" in logged
    assert secrets_in(logged, token=token, code=code) == []


def test_an_engine_crash_is_logged_without_the_photo_bytes(client, console, monkeypatch):
    from segmentation import jobs

    class BrokenEngine:
        def start(self, photo):
            raise ValueError(f"cannot segment {photo.data[:400]!r}")

    monkeypatch.setattr(jobs, "engine_named", lambda mode, name, spec="": BrokenEngine())
    photo = photo_bytes()
    token = token_of(upload(client, photo))
    assert wait_ready(token).state == store.FAILED
    logged = console.getvalue()
    assert "Job crashed" in logged and "ValueError: cannot segment" in logged
    original = store.get_image(store.get(token), "original")  # what the engine was given
    assert secrets_in(logged, token=token, photo=original) == []


# --- Error emails -----------------------------------------------------------------------------------


def test_no_error_email_is_sent_unless_error_emails_are_configured(crashing_client, settings, monkeypatch):
    settings.ADMINS = []
    monkeypatch.setattr("segmentation.store.create", _raise_runtime_error)
    assert upload(crashing_client, photo_bytes()).status_code == 500
    assert mail.outbox == []


def test_an_error_email_about_a_crash_holding_a_photo_carries_none_of_it(crashing_client, settings, monkeypatch):
    settings.ADMINS = ["operator@example.com"]
    monkeypatch.setattr("segmentation.store.create", _raise_runtime_error)
    crashing_client.cookies["tracking"] = "cookie-value-of-the-visitor"
    photo = photo_bytes()
    response = upload(crashing_client, photo, name=FILENAME, **VISITOR)
    assert response.status_code == 500
    assert len(mail.outbox) == 1
    report = mail.outbox[0]
    text = report.subject + report.body + "".join(str(content) for content, _ in report.alternatives)
    assert "RuntimeError" in text and "store is on fire" in text, "the report still says what broke"
    assert secrets_in(text, photo=photo) == []
    assert "cookie-value-of-the-visitor" not in text


def test_an_error_email_about_a_crash_during_unlock_has_no_code_or_token(crashing_client, settings, monkeypatch):
    token = ready_job(crashing_client)
    settings.ADMINS = ["operator@example.com"]
    code = one_code()

    def broken_redeem(typed, tool):
        raise RuntimeError(f"database gone while redeeming {typed}")

    monkeypatch.setattr("segmentation.jobs.redeem", broken_redeem)
    typed = code.lower().replace("-", " ")
    response = crashing_client.post(
        f"/jobs/{token}/unlock?from=/jobs/{token}/",
        {"code": typed},
        HTTP_REFERER=f"https://portraits.example.com/jobs/{token}/",
        **VISITOR,
    )
    assert response.status_code == 500
    assert len(mail.outbox) == 1
    report = mail.outbox[0]
    assert "RuntimeError" in report.body
    assert secrets_in(report.subject + report.body, token=token, code=code) == []


def test_the_development_error_page_hides_locals_and_request_data(settings):
    photo = photo_bytes()
    token = store.new_token()
    request = RequestFactory().post(f"/jobs/{token}/unlock?t={token}", {"code": "ABCD-EFGH-JKMN-PQRS"}, **VISITOR)
    try:
        held_photo, held_token = photo, token  # noqa: F841  (what a crashing view holds)
        raise RuntimeError("boom")
    except RuntimeError:
        reporter = site_logging.PrivateExceptionReporter(request, *sys.exc_info())
        html, text = reporter.get_traceback_html(), reporter.get_traceback_text()
    for report in (html, text):
        assert "boom" in report
        assert secrets_in(report, token=token, code="ABCD-EFGH-JKMN-PQRS", photo=photo) == []


def _raise_runtime_error(*args, **kwargs):
    raise RuntimeError("the store is on fire")


# --- The scrubbing itself -----------------------------------------------------------------------------


def test_redact_removes_tokens_codes_photo_bytes_and_signed_links_but_keeps_the_rest():
    token = store.new_token()
    text = site_logging.redact(
        f"GET /jobs/{token}/preview 404; cache key job:1:{token}:original; code ABCD-EFGH-JKMN-PQRS; "
        f"data {bytes(range(200))!r}; https://result.example.com/x.png?Expires=1&Signature=abc; "
        "sent 1200x900 (48213 bytes) in 1764128400000000 µs by check_one_process_for_a_local_store"
    )
    assert token not in text and "ABCD-EFGH" not in text and "\\x10\\x11" not in text and "Signature" not in text
    assert "1200x900 (48213 bytes)" in text and "1764128400000000" in text
    assert "check_one_process_for_a_local_store" in text and "https://result.example.com/x.png" in text


@pytest.mark.parametrize(
    "token",
    [
        "pQzXvTrLmNbKjHgFdSaWeRtYuIoPlKjHgFdSaZxCvBn",  # no digit: about one token in 1,500
        "Kx_qW-erTyuIopAsDfGhJkLzXcVbNm-_QwErTyUiOpA",
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ",
        store.new_token(),
    ],
)
def test_a_bare_token_is_hidden_with_or_without_digits(token):
    assert len(token) == 43
    assert site_logging.redact(f"KeyError: 'job:1:{token}' not found") == "KeyError: 'job:1:…' not found"
    assert site_logging.redact(f"token {token}") == "token …"


def test_long_lower_case_words_and_digests_are_not_taken_for_tokens():
    kept = (
        "test_a_request_that_cannot_be_sent_is_not_called_charged_nor_repeated "
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 "
        "CHECK_ONE_PROCESS_FOR_A_LOCAL_STORE_AND_NOTHING_ELSE"
    )
    assert site_logging.redact(kept) == kept


def test_the_filter_scrubs_records_with_arguments():
    token = store.new_token()
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "Not Found: %s", (f"/jobs/{token}/",), None)
    site_logging.RedactTokensFilter().filter(record)
    assert record.getMessage() == "Not Found: /jobs/…/"


# --- Hostile text: every pattern reads it in linear time ---------------------------------------------

# Each case below takes milliseconds (about 5 ms for 64 KB), while the backtracking bytes pattern
# it replaces took 6 s for `b'` and 30 backslashes, and about 2.5 times longer for every two more.
KB64 = 64 * 1024

HOSTILE = {
    "b' and backslashes": "b'" + "\\" * 10_000,
    "b' and backslashes, then text": "b'" + "\\" * 10_001 + "x" * 100,
    "b' and 80 backslashes, closed late": "b'" + "\\" * 80 + "x" * 200 + "'",
    'b" and escaped quotes': 'b"' + "\\'" * (KB64 // 2),
    "many unclosed literals": "b'\\" * (KB64 // 3),
    "a Host header as Django logs it": f"Invalid HTTP_HOST header: {"b'" + '\\' * 10_000!r}. You may need to add it.",
    "many signed fields": "https://a.example/x.png?Signature=" * (KB64 // 34),
    "one long query": "https://a.example/x.png?" + "a" * KB64 + "&Signature=x",
    "links without a query": "=https://a" * (KB64 // 10),
    "one long word": "a" * KB64,
    "one long mixed-case run": "aB" * (KB64 // 2),
    "token-length runs": ("aB" * 21 + "-/") * (KB64 // 44),
    "digits": "1" * KB64,
    "code-like groups": "ABCD-" * (KB64 // 5),
    "data URI starts": "data:" * (KB64 // 5),
    "a long media type": "data:" + "a" * KB64,
    "schemes": "a://" * (KB64 // 4),
    "client addresses": "ip=" * (KB64 // 3),
    "job paths": "/jobs/" * (KB64 // 6),
    "escapes": "\\x0" * (KB64 // 4),
    "short runs of escapes": ("\\x00" * 15 + "\\") * (KB64 // 61),
}

PATTERNS = {
    name: getattr(site_logging, name)
    for name in (
        "TOKEN_IN_PATH",
        "BARE_TOKEN",
        "UNLOCK_CODE",
        "BYTES_LITERAL",
        "ESCAPED_BYTES",
        "DATA_URI",
        "URL",
        "SIGNATURE_FIELD",
        "CREDENTIALS_IN_URL",
        "_CLIENT_ADDRESS",
    )
}


def _substitute_in_all(pattern: re.Pattern) -> None:
    for text in HOSTILE.values():
        pattern.sub("", text)


def _redact_all() -> None:
    for text in HOSTILE.values():
        site_logging.redact(text)
        site_logging.redact(text * 20)  # 1.3 MB: cut to MAX_CHARS, after scrubbing


@pytest.mark.parametrize("name", PATTERNS)
def test_each_scrubbing_pattern_reads_hostile_text_in_linear_time(name):
    assert finishes_in_time(_substitute_in_all, PATTERNS[name]), f"{name} backtracks on hostile text"


def test_redact_is_quick_on_hostile_text():
    assert finishes_in_time(_redact_all)


@pytest.mark.parametrize("text", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_text_still_loses_its_secrets(text):
    token = store.new_token()
    redacted = site_logging.redact(f"{text} /jobs/{token}/ {bytes(range(256))!r} {text}")
    assert token not in redacted and "\\x10\\x11" not in redacted


def test_a_long_text_is_scrubbed_before_it_is_cut():
    token = store.new_token()
    photo = bytes(range(256)) * 8
    limit = 3000
    # Literals before the cut shrink the text; a token and a literal cross the cut itself.
    head = f"{photo!r} " * 3
    for offset in range(-70, 300, 7):
        filler = "x " * ((limit - len(head) + offset) // 2)
        for secret in (f"job:1:{token}", repr(photo), f"/jobs/{token}/"):
            text = head + filler + secret + " and more" * 100
            redacted = site_logging.redact(text, limit=limit)
            assert len(redacted) <= limit + 20 and redacted.endswith(f"<{len(text)} characters>")
            assert token[:12] not in redacted and "\\x10\\x11" not in redacted, (offset, secret)


def test_an_error_report_cuts_the_exception_message_after_scrubbing_it():
    """The report keeps 2000 characters of the message: cut first, a photo's bytes printed from
    character 1900 on would be an unclosed literal that nothing recognises."""
    photo = photo_bytes()
    try:
        raise ValueError("x" * 1900 + f" cannot decode {photo!r}")
    except ValueError:
        reporter = site_logging.PrivateExceptionReporter(None, *sys.exc_info())
        value = reporter.get_traceback_data()["exception_value"]
        html, text = reporter.get_traceback_html(), reporter.get_traceback_text()
    assert value.startswith("x" * 1900) and len(value) < 2100 and "characters of bytes hidden" in value
    for report in (value, html, text):
        assert secrets_in(report, photo=photo) == []


# --- gunicorn -------------------------------------------------------------------------------------------


def gunicorn_conf():
    spec = importlib.util.spec_from_file_location(
        "gunicorn_conf_under_test", Path(settings.BASE_DIR) / "gunicorn.conf.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def a_request_for_a_job(token: str):
    """What gunicorn hands its logger after serving the unlock POST: a 303 to the job page."""
    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": f"/jobs/{token}/unlock?from=/jobs/{token}/",
        "PATH_INFO": f"/jobs/{token}/unlock",
        "QUERY_STRING": f"from=/jobs/{token}/",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": VISITOR["REMOTE_ADDR"],
        "REMOTE_PORT": "51234",
        "HTTP_REFERER": f"https://portraits.example.com/jobs/{token}/",
        "HTTP_USER_AGENT": VISITOR["HTTP_USER_AGENT"],
        "HTTP_X_FORWARDED_FOR": "198.51.100.23",
    }
    request = SimpleNamespace(
        headers=[
            ("REFERER", environ["HTTP_REFERER"]),
            ("USER-AGENT", environ["HTTP_USER_AGENT"]),
            ("X-FORWARDED-FOR", "198.51.100.23"),
            ("COOKIE", "tracking=1"),
        ]
    )
    response = SimpleNamespace(status="303 See Other", sent=0, headers=[("Location", f"/jobs/{token}/")])
    return response, request, environ


def gunicorn_logger(logger_class, access_log_format: str | None = None):
    """A logger as gunicorn.conf.py configures it (its access-log format, unless another is given)."""
    from gunicorn.config import Config

    config = Config()
    config.set("accesslog", "-")
    config.set("errorlog", "-")
    config.set("access_log_format", access_log_format or gunicorn_conf().access_log_format)
    return logger_class(config)


def assert_nothing_of_the_visitor(text: str, token: str) -> None:
    for secret in (token, VISITOR["REMOTE_ADDR"], "198.51.100.23", "Secret-Browser", "tracking=1", "51234"):
        assert secret not in text, secret


def test_gunicorn_access_log_atoms_hold_no_token_and_nothing_of_the_visitor():
    token = store.new_token()
    logger = gunicorn_logger(site_logging.GunicornLogger)
    atoms = logger.atoms(*a_request_for_a_job(token), datetime.timedelta(milliseconds=42))
    assert_nothing_of_the_visitor(repr(atoms), token)
    assert atoms["s"] == "303" and atoms["m"] == "POST" and atoms["U"] == "/jobs/…/unlock"
    line = gunicorn_conf().access_log_format % atoms
    assert "/jobs/…/unlock" in line and " 303 " in line


def test_gunicorn_error_log_names_neither_the_uri_nor_the_client():
    token = store.new_token()
    logger = gunicorn_logger(site_logging.GunicornLogger)
    stream = io.StringIO()
    for handler in logger.error_log.handlers:
        if getattr(handler, "_gunicorn", False):  # gunicorn's own, not pytest's capture
            handler.setStream(stream)
    try:
        raise OSError(f"reset while reading /jobs/{token}/preview")
    except OSError:
        logger.exception("Error handling request %s %s", "GET", f"/jobs/{token}/preview")
    logger.warning(
        f"Invalid request from ip={VISITOR['REMOTE_ADDR']}: Invalid HTTP request line: 'GET /jobs/{token}/ HTTP/1.1'"
    )
    logged = stream.getvalue()
    assert "Error handling request GET /jobs/…/preview" in logged and "Invalid request from ip=…" in logged
    assert_nothing_of_the_visitor(logged, token)


def configured_logger_class():
    logger_class = gunicorn_conf().logger_class
    if isinstance(logger_class, str):
        from gunicorn.util import load_class

        logger_class = load_class(logger_class)
    return logger_class


def test_the_access_log_line_as_configured_has_no_token_and_no_address():
    token = store.new_token()
    atoms = gunicorn_logger(configured_logger_class()).atoms(
        *a_request_for_a_job(token), datetime.timedelta(milliseconds=5)
    )
    line = gunicorn_conf().access_log_format % atoms
    assert_nothing_of_the_visitor(line, token)
    assert '"POST /jobs/…/unlock" 303' in line


def test_gunicorn_is_configured_with_the_scrubbing_logger():
    """Every atom, not only those the shipped format uses: an operator may log more."""
    token = store.new_token()
    request = a_request_for_a_job(token)
    every_atom = gunicorn_logger(GunicornBaseLogger).atoms(*request, datetime.timedelta(milliseconds=5))
    operator_format = " ".join(f"%({key})s" for key in every_atom)
    logger = gunicorn_logger(configured_logger_class(), operator_format)
    atoms = logger.atoms(*request, datetime.timedelta(milliseconds=5))
    assert set(atoms) == set(every_atom)
    assert_nothing_of_the_visitor(repr(atoms), token)
    assert_nothing_of_the_visitor(operator_format % SafeAtoms(atoms), token)
    assert atoms["{location}o"] == "/jobs/…/" and atoms["{referer}i"] == "https://portraits.example.com/jobs/…/"


def test_only_the_atoms_the_format_prints_are_read():
    """A header the format does not print is neither scrubbed nor kept, however hostile."""
    token = store.new_token()
    response, request, environ = a_request_for_a_job(token)
    request.headers.append(("X-NOTE", "b'" + "\\" * 10_000))
    environ["HTTP_X_NOTE"] = request.headers[-1][1]
    logger = gunicorn_logger(configured_logger_class())
    atoms = logger.atoms(response, request, environ, datetime.timedelta(milliseconds=5))
    assert set(atoms) == site_logging.used_atoms(gunicorn_conf().access_log_format) == {"t", "m", "U", "s", "B", "M"}
    noted = gunicorn_logger(configured_logger_class(), '%(U)s %({X-Note}i)s "%({http_x_note}e)s"')
    atoms = noted.atoms(response, request, environ, datetime.timedelta(milliseconds=5))
    assert set(atoms) == {"U", "{x-note}i", "{http_x_note}e"}
    assert atoms["{x-note}i"].startswith("b'<10002 characters of bytes hidden>")
    assert finishes_in_time(noted.atoms, response, request, environ, datetime.timedelta(milliseconds=5))


# A healthy worker answers in milliseconds; a frozen one answered nothing until gunicorn's 60 s
# timeout killed it. The margin is for a loaded machine.
ANSWER_SECONDS = 20


def test_hostile_headers_neither_freeze_gunicorn_nor_lose_a_job(tmp_path):
    """The attack of the security review, against gunicorn started as deployed (gunicorn.conf.py,
    one process, jobs in its memory): a Host header that Django logs as disallowed, and header
    values the access-log format does not print. Before, one such request held the worker's GIL
    until gunicorn killed it, and every job in its memory went with it."""
    env = site_environment(f"sqlite:///{tmp_path / 'codes.sqlite3'}", "locmemcache://portraitsite-jobs")
    manage(env, "migrate", "--noinput")
    site = Gunicorn(env, workers=1, access_log_format=None)
    try:
        site.wait_until_serving()
        response = Visitor(site).upload(photo_bytes())
        assert response.status_code == 303, response.text[:500]
        job_page = site.url + response.headers["Location"]
        assert requests.get(job_page, timeout=ANSWER_SECONDS).status_code == 200
        for headers in (
            {"Host": "b'" + "\\" * 24},
            {"Host": "b'" + "\\" * 4000},
            {"X-Note": "\\" * 80},
            {"X-Note": "b'" + "\\" * 80 + "x" * 70},
            {"X-Note": "b'" + "\\" * 8000, "Referer": "b'" + "\\" * 4000},
        ):
            hostile = requests.get(f"{site.url}/?q={'\\' * 500}", headers=headers, timeout=ANSWER_SECONDS)
            assert hostile.status_code in (200, 400), hostile.status_code
            assert requests.get(f"{site.url}/healthz", timeout=ANSWER_SECONDS).status_code == 200, headers
        assert requests.get(job_page, timeout=ANSWER_SECONDS).status_code == 200, "the job is still there"
    finally:
        site.stop()
    assert len(site.worker_pids()) == 1, "the worker was never replaced"
    assert not any("WORKER TIMEOUT" in line for line in site.errors), "\n".join(site.errors[-20:])
    assert any("Invalid HTTP_HOST header" in line for line in site.errors), "Django logged the hostile host"
