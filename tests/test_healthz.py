"""/healthz: a bare {"ok": true} for anyone; the details only with the operator's token (or in development
with no token set); a wrong token is refused; a fact that fails does not take the others down."""

from __future__ import annotations

import pytest

from portraitsite import health

# /healthz asks the database whether it answers (portraitsite.outages).
pytestmark = pytest.mark.django_db

TOKEN = "a-long-random-healthz-token-for-tests-0123456789"
DETAILS = {"store", "jobs_in_flight", "job_capacity", "engines"}


@pytest.fixture
def token(settings):
    settings.HEALTHZ_TOKEN = TOKEN
    return TOKEN


def test_the_public_answer_is_a_bare_ok(client, token):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_the_token_shows_the_details(client, token):
    response = client.get("/healthz", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and set(body) >= DETAILS
    assert body["store"]["bytes_budget"] > 0 and body["engines"] == {
        "cutout": "local",
        "crowd": "local",
        "idphoto": "local",
    }
    assert TOKEN not in response.content.decode()


@pytest.mark.parametrize(
    "header",
    [f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}", TOKEN, f"Token {TOKEN}"],
)
def test_a_wrong_token_is_refused_without_details(client, token, header):
    response = client.get("/healthz", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"store" not in response.content and b"engines" not in response.content


def test_without_a_token_set_details_only_in_development(client, settings):
    settings.HEALTHZ_TOKEN = ""
    settings.DEBUG = False
    assert client.get("/healthz").json() == {"ok": True}
    assert client.get("/healthz", HTTP_AUTHORIZATION="Bearer anything").status_code == 401
    assert client.get("/healthz", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    settings.DEBUG = True
    assert set(client.get("/healthz").json()) >= DETAILS


def test_the_token_is_compared_in_constant_time(client, token, monkeypatch):
    compared = []
    real = health.secrets.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(health.secrets, "compare_digest", spy)
    assert client.get("/healthz", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert compared == [(TOKEN.encode(), TOKEN.encode())]


def test_another_part_of_the_site_adds_a_fact(client, token, monkeypatch):
    monkeypatch.setattr(health, "_facts", dict(health._facts))

    @health.fact("answer")
    def answer() -> int:
        return 42

    @health.fact("not_in_use")
    def not_in_use() -> None:
        return None

    @health.fact("broken")
    def broken() -> dict:
        raise ConnectionError("secret-looking detail https://user:pass@host/")

    body = client.get("/healthz", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert body["answer"] == 42 and "not_in_use" not in body
    assert body["broken"] == {"error": "ConnectionError"}
    assert set(body) >= DETAILS, "a broken fact does not hide the others"
    assert client.get("/healthz").json() == {"ok": True}, "nor does it change the public answer"
    with pytest.raises(ValueError):
        health.fact("answer")(lambda: 0)
