"""Security headers on every kind of response, a CSP the pages (and the admin) really live within,
no caching of anything about a photo, and production settings that pass `check --deploy`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings

from segmentation import store
from tests.flow import upload
from tests.photos import encode, portrait_scene
from unlock.issuing import issue

pytestmark = pytest.mark.django_db(transaction=True)

PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "production-like-secret-key-" + "x" * 40,
    "UNLOCK_CODE_KEY": "production-like-unlock-code-key-" + "y" * 20,
    "ALLOWED_HOSTS": "portraits.example.com",
}


def csp_of(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


class Page(HTMLParser):
    """Tags with their attributes, and the text of inline scripts and styles."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def assert_security_headers(response) -> None:
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Cross-Origin-Resource-Policy"] == "same-origin"
    policy = dict(item.strip().split("=", 1) for item in headers["Permissions-Policy"].split(","))
    for feature in ("camera", "microphone", "geolocation", "payment", "usb", "browsing-topics"):
        assert policy[feature] == "()", feature


def assert_strict_csp(response) -> None:
    csp = csp_of(response)
    assert csp["default-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    for directive, sources in csp.items():
        for source in sources:
            assert source not in ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*", "http:", "https:"), (
                directive,
                source,
            )
            assert not source.startswith(("http://", "https://")), f"{directive} allows another origin: {source}"
    for directive in ("script-src", "style-src"):
        assert set(csp[directive]) <= {"'self'"} | {s for s in csp[directive] if s.startswith("'nonce-")}


def assert_page_lives_within_its_csp(response) -> None:
    """Everything the page loads is ours, inline code carries the response's nonce, and nothing
    the CSP would block (inline handlers, style attributes, javascript: URLs) is in the page."""
    csp = csp_of(response)
    nonces = {s[len("'nonce-") : -1] for s in csp.get("script-src", []) if s.startswith("'nonce-")}
    page = Page(response.content.decode())
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), f"inline handler <{tag} {name}>"
            assert name != "style", f"style attribute on <{tag}>"
            assert not (value or "").strip().lower().startswith("javascript:"), f"javascript: URL on <{tag}>"
        if tag == "script" and "src" not in attrs or tag == "style":
            assert attrs.get("nonce") in nonces, f"inline <{tag}> without the response's nonce"
        loads = [attrs.get("src")] if tag in ("script", "img", "iframe", "source", "audio", "video", "embed") else []
        if tag == "link" and not {"alternate"} & set((attrs.get("rel") or "").split()):
            loads.append(attrs.get("href"))
        for url in filter(None, loads):
            parts = urlsplit(url)
            assert parts.scheme in ("", "data", "blob") and not parts.netloc, f"<{tag}> loads {url} from elsewhere"


def a_ready_job(client, unlocked: bool = False) -> str:
    """A job as the pool leaves it, made in the store directly: these tests are about headers,
    not about engines."""
    photo = encode(portrait_scene(400, 300))
    job = store.create("cutout", "local", {"media_type": "image/jpeg", "width": 400, "height": 300}, photo)
    store.put_image(job, "preview", encode(portrait_scene(200, 150), "WEBP"))
    store.put_image(job, "before", encode(portrait_scene(200, 150), "WEBP"))
    job.state = store.READY
    if unlocked:
        store.put_image(job, "result", encode(portrait_scene(400, 300).convert("RGBA"), "PNG"))
        job.delivery, job.result = store.UNLOCKED, {"media_type": "image/png", "width": 400, "height": 300}
    store.save(job)
    return job.token


def test_every_kind_of_page_carries_the_headers_and_a_strict_csp(client, monkeypatch):
    token = a_ready_job(client)
    responses = {
        "home": client.get("/"),
        "home zh": client.get("/zh-hans/"),
        "privacy": client.get("/privacy/"),
        "terms": client.get("/terms/"),
        "job": client.get(f"/jobs/{token}/"),
        "status": client.get(f"/jobs/{token}/status"),
        "preview": client.get(f"/jobs/{token}/preview"),
        "health": client.get("/healthz"),
        "static": client.get("/static/css/site.css"),
        "400": upload(client, b"not a photo"),
        "403": client.post("/jobs/", {}, HTTP_SEC_FETCH_SITE="cross-site"),
        "404": client.get("/jobs/unknown/"),
        "405": client.get("/jobs/"),
    }
    monkeypatch.setattr("segmentation.views._home", _raise)
    client.raise_request_exception = False
    responses["500"] = client.get("/")
    assert responses["500"].status_code == 500
    for response in responses.values():
        assert_security_headers(response)
        assert_strict_csp(response)
        if response["Content-Type"].startswith("text/html"):
            assert_page_lives_within_its_csp(response)


def _raise(*args, **kwargs):
    raise RuntimeError("boom")


def test_nothing_about_a_photo_may_be_cached(client):
    code = issue(count=1, max_uses=1, expires_at=None, label="h").displayed[0]
    unlock = client.post(f"/jobs/{a_ready_job(client)}/unlock", {"code": code})
    token = a_ready_job(client, unlocked=True)
    responses = [
        client.get(f"/jobs/{token}/"),
        client.get(f"/jobs/{token}/status"),
        client.get(f"/jobs/{token}/preview"),
        client.get(f"/jobs/{token}/before"),
        client.get(f"/jobs/{token}/download"),
        client.get(f"/jobs/{token}/download?background=white"),
        unlock,
        client.get("/jobs/unknown/"),
    ]
    for response in responses:
        assert response.status_code in (200, 303, 404)
        assert "no-store" in response["Cache-Control"], response.request["PATH_INFO"]


def test_each_response_gets_its_own_nonce(admin_client, settings):
    first, second = (csp_of(admin_client.get(f"/{settings.ADMIN_URL}")) for _ in range(2))
    assert first["script-src"] != second["script-src"]
    assert any(source.startswith("'nonce-") for source in first["script-src"])


def test_the_admin_works_within_the_csp(client, admin_client, settings):
    login = client.get(f"/{settings.ADMIN_URL}login/")
    assert login.status_code == 200 and 'name="password"' in login.content.decode()
    pages = [
        login,
        admin_client.get(f"/{settings.ADMIN_URL}"),
        admin_client.get(f"/{settings.ADMIN_URL}unlock/unlockcode/"),
        admin_client.get(f"/{settings.ADMIN_URL}unlock/unlockcode/generate/"),
        admin_client.get(f"/{settings.ADMIN_URL}auth/user/add/"),
    ]
    for page in pages:
        assert page.status_code == 200
        assert_strict_csp(page)
        assert_page_lives_within_its_csp(page)
    # Its scripts and stylesheets come from 'self' and are really there.
    assets = {
        attrs.get("src") or attrs.get("href")
        for tag, attrs in Page(login.content.decode()).tags
        if tag == "script" and attrs.get("src") or tag == "link" and "stylesheet" in (attrs.get("rel") or "")
    }
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        assert asset.startswith(settings.STATIC_URL)
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert_security_headers(response)


# --- Production ------------------------------------------------------------------------------------


def run_in_production(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DEBUG", "CACHE_URL", "DATABASE_URL"))}
    env.update(PRODUCTION_ENV, DJANGO_SETTINGS_MODULE="portraitsite.settings")
    return subprocess.run(
        [sys.executable, *args], cwd=django_settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def test_secrets_can_come_from_files(tmp_path):
    """NAME_FILE holds the path of a file with the value (Docker and systemd secrets)."""
    (tmp_path / "secret_key").write_text("secret-key-from-a-file-" + "z" * 40)
    (tmp_path / "code_key").write_text("unlock-code-key-from-a-file")
    script = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.SECRET_KEY, settings.UNLOCK_CODE_KEY)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DEBUG", "CACHE_URL", "DATABASE_URL"))}
    env.update(PRODUCTION_ENV, DJANGO_SETTINGS_MODULE="portraitsite.settings")
    del env["SECRET_KEY"], env["UNLOCK_CODE_KEY"]
    env.update(SECRET_KEY_FILE=str(tmp_path / "secret_key"), UNLOCK_CODE_KEY_FILE=str(tmp_path / "code_key"))
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["secret-key-from-a-file-" + "z" * 40, "unlock-code-key-from-a-file"]


def production_settings() -> dict:
    names = [
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_SECURE",
        "SESSION_COOKIE_HTTPONLY",
        "SESSION_COOKIE_SAMESITE",
        "SESSION_COOKIE_PATH",
        "DEBUG",
    ]
    script = (
        "import json; from django.conf import settings; import django; django.setup(); "
        f"print(json.dumps({{n: getattr(settings, n) for n in {names!r}}}))"
    )
    result = run_in_production("-c", script)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_check_deploy_is_clean_with_production_settings():
    result = run_in_production("manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout + result.stderr


def test_every_silenced_check_says_why():
    source = (Path(django_settings.BASE_DIR) / "portraitsite" / "settings.py").read_text()
    block = re.search(r"SILENCED_SYSTEM_CHECKS = \[(.*?)\n\]", source, re.S).group(1)
    lines = [line.strip() for line in block.strip().splitlines()]
    for index, line in enumerate(lines):
        if line.startswith('"'):
            assert index > 0 and lines[index - 1].startswith("#"), f"{line} is silenced without a comment"


def test_production_sends_hsts_and_secure_admin_cookies(client, settings):
    production = production_settings()
    assert production["DEBUG"] is False
    assert production["SECURE_HSTS_SECONDS"] >= 31536000 and production["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert production["SECURE_SSL_REDIRECT"] is True
    assert production["SESSION_COOKIE_SECURE"] and production["SESSION_COOKIE_HTTPONLY"]
    assert (
        production["SESSION_COOKIE_SAMESITE"] == "Strict"
        and production["SESSION_COOKIE_PATH"] == "/" + settings.ADMIN_URL
    )
    for name in ("SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_SSL_REDIRECT"):
        setattr(settings, name, production[name])
    response = client.get("/", secure=True)
    assert response["Strict-Transport-Security"].startswith(f"max-age={production['SECURE_HSTS_SECONDS']}")
    assert "includeSubDomains" in response["Strict-Transport-Security"]
    assert client.get("/").status_code == 301, "plain http is redirected to https"
    assert client.get("/healthz").status_code == 200, "load balancers probe /healthz over plain http"


def test_when_the_error_page_itself_breaks_a_plain_500_still_carries_the_headers(client, monkeypatch):
    monkeypatch.setattr("segmentation.views._home", _raise)
    monkeypatch.setattr("portraitsite.errors.render_to_string", _raise)
    client.raise_request_exception = False
    response = client.get("/")
    assert response.status_code == 500 and "Something went wrong on our side" in response.content.decode()
    assert response["Cache-Control"] == "no-store" and not response.cookies
    assert_security_headers(response)
    assert_strict_csp(response)
    assert_page_lives_within_its_csp(response)
