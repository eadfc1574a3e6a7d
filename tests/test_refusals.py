"""Smaller findings of the security review (finding 8): refusals that cost the operator an email
each, downloads that keep the decoders busy, and a proxy the settings do not declare."""

from __future__ import annotations

import logging

import pytest
from django.core import mail
from django.core.cache import caches

from portraitsite import errors, ratelimit
from segmentation import jobs
from tests.flow import health_details, token_of, upload, wait_ready, wait_unlocked
from tests.photos import encode, portrait_scene
from unlock.issuing import issue

pytestmark = pytest.mark.django_db(transaction=True)


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logged():
    """Every record of the loggers a refusal can reach (django.request does not propagate)."""
    handler = Records()
    names = ("django.request", "django", "")  # the others propagate to the root
    for name in names:
        logging.getLogger(name).addHandler(handler)
    yield handler.records
    for name in names:
        logging.getLogger(name).removeHandler(handler)


def test_a_flood_of_503s_sends_no_error_email_and_logs_one_warning(client, settings, monkeypatch, logged):
    settings.ADMINS = [("Operator", "operator@example.com")]
    monkeypatch.setattr(errors, "_refusals", {"count": 0, "noted_at": 0.0})
    monkeypatch.setattr(jobs.Pool, "submit", lambda self, task, *args: False)  # the pool is full
    photo = encode(portrait_scene(300, 200))
    statuses = [upload(client, photo).status_code for _ in range(20)]
    assert statuses == [503] * 20
    assert mail.outbox == [], "no email per refusal"
    assert [r for r in logged if r.levelno >= logging.ERROR] == []
    notes = [r for r in logged if "Answered 503" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.WARNING


def test_the_job_page_refusing_a_code_for_want_of_credits_logs_no_error(client, monkeypatch, logged, removebg_fake):
    """remove.bg cannot pay for the full result: the job page answers 503 and says so; that is a
    refusal like the others, not an error that emails the operator."""
    monkeypatch.setattr(errors, "_refusals", {"count": 0, "noted_at": 0.0})
    removebg_fake.balance = 0.0
    token = token_of(upload(client, encode(portrait_scene(400, 300))))
    assert wait_ready(token).engine == "removebg"
    refused = client.post(
        f"/jobs/{token}/unlock", {"code": issue(1, max_uses=1, expires_at=None, label="t").displayed[0]}
    )
    assert refused.status_code == 503 and 'id="hd-unavailable"' in refused.content.decode()
    assert [r for r in logged if r.levelno >= logging.ERROR] == []
    assert [r.levelno for r in logged if "Answered 503 (hd_unavailable)" in r.getMessage()] == [logging.WARNING]


@pytest.fixture
def unlocked(client) -> str:
    token = token_of(upload(client, encode(portrait_scene(400, 300))))
    wait_ready(token)
    client.post(f"/jobs/{token}/unlock", {"code": issue(1, max_uses=1, expires_at=None, label="t").displayed[0]})
    assert wait_unlocked(token).unlocked
    return token


def test_coloured_downloads_are_limited_per_job(client, settings, unlocked):
    settings.BACKGROUND_DOWNLOADS_PER_MINUTE = 2
    caches["default"].clear()
    statuses = [client.get(f"/jobs/{unlocked}/download?background=white").status_code for _ in range(2)]
    assert statuses == [200, 200]
    refused = client.get(f"/jobs/{unlocked}/download?background=438EDB")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "downloaded on a coloured background several times" in refused.content.decode()
    assert client.get(f"/jobs/{unlocked}/download").status_code == 200, "the PNG as stored decodes nothing"
    caches["default"].clear()


def test_a_proxy_that_trusted_proxies_does_not_declare_is_warned_about_once(client, settings, monkeypatch, caplog):
    monkeypatch.setattr(ratelimit, "_forwarding_seen", __import__("threading").Event())
    settings.TRUSTED_PROXIES = 1
    client.get("/", HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert not ratelimit.untrusted_forwarding_seen()

    settings.TRUSTED_PROXIES = 0
    client.get("/")
    assert not ratelimit.untrusted_forwarding_seen(), "no header, no proxy"
    with caplog.at_level(logging.WARNING, logger="portraitsite.ratelimit"):
        for _ in range(3):
            client.get("/", HTTP_X_FORWARDED_FOR="198.51.100.1")
    warnings = [r for r in caplog.records if "TRUSTED_PROXIES=0" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "198.51.100.1" not in caplog.text, "no address in the log"
    assert ratelimit.untrusted_forwarding_seen()
    assert health_details(client)["forwarded_for_ignored"] is True
    settings.TRUSTED_PROXIES = 1
    assert "forwarded_for_ignored" not in health_details(client)
