"""SITE_NAME is the name visitors see on every kind of page, in both languages, and the admin's
title; SITE_LOGO_URL may only name one of the site's own static files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from portraitsite import operator_checks
from tests.flow import token_of, wait_ready
from tests.photos import encode, portrait_scene

ROOT = Path(__file__).resolve().parent.parent
NAME = "Studio Lumen 光影"


@pytest.fixture
def named(settings):
    settings.SITE_NAME = NAME
    settings.OPERATOR_NAME = "Lumen Imaging Ltd"
    return NAME


def assert_named(html: str, where: str) -> None:
    title = re.search(r"<title>([^<]*)</title>", html)
    assert title and title.group(1).strip().endswith(f"· {NAME}"), (where, title and title.group(1))
    brand = re.search(r'<a class="brand"[^>]*>(.*?)</a>', html, re.S)
    assert brand and brand.group(1).strip().endswith(NAME), where
    assert "portraitsite" not in html.replace("/static/", ""), f"{where} still says portraitsite"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("prefix", ["/en", "/zh-hans"])
def test_the_name_is_on_every_kind_of_page(client, named, prefix):
    pages = {
        "home": client.get(f"{prefix}/"),
        "privacy": client.get(f"{prefix}/privacy/"),
        "terms": client.get(f"{prefix}/terms/"),
        "404": client.get(f"{prefix}/jobs/unknown/"),
        "refused upload": client.post(f"{prefix}/jobs/", {"mode": "cutout"}),
        "cross-site refusal": client.post(f"{prefix}/jobs/", {}, HTTP_SEC_FETCH_SITE="cross-site"),
    }
    created = client.post(
        f"{prefix}/jobs/",
        {"mode": "cutout", "image": _photo()},
    )
    token = token_of(created)
    wait_ready(token)
    pages["job"] = client.get(f"{prefix}/jobs/{token}/")
    pages["wrong code"] = client.post(f"{prefix}/jobs/{token}/unlock", {"code": "ABCD-EFGH-JKMN-PQRS"})
    for where, response in pages.items():
        assert_named(response.content.decode(), f"{prefix} {where}")
    for where in ("privacy", "terms"):
        html = pages[where].content.decode()
        assert NAME in html.split("<main", 1)[1] and "Lumen Imaging Ltd" in html, where


def _photo():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("p.jpg", encode(portrait_scene(400, 300), "JPEG"), "image/jpeg")


@pytest.mark.django_db
def test_the_admin_is_titled_with_the_name(client, named):
    login = client.get("/admin/login/").content.decode()
    assert f"<title>Log in | {NAME} · staff</title>" in login
    client.force_login(User.objects.create_superuser("staff", "staff@example.com", "a long admin password"))
    index = client.get("/admin/").content.decode()
    assert f"{NAME} · staff" in index and f"{NAME}: unlock codes and usage" in index
    assert f"{NAME} · staff" in client.get("/admin/portraitsite/dailycount/").content.decode()


def test_the_default_name_and_the_error_emails_follow_the_setting():
    def settings_with(**environment: str) -> list[str]:
        code = (
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.SITE_NAME); print(settings.EMAIL_SUBJECT_PREFIX)"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SITE_"))}
        env.update(DJANGO_SETTINGS_MODULE="portraitsite.settings", DEBUG="true", **environment)
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.splitlines()

    assert settings_with() == ["portraitsite", "[portraitsite] "]
    assert settings_with(SITE_NAME="Studio Lumen") == ["Studio Lumen", "[Studio Lumen] "]


def test_a_logo_among_the_static_files_is_shown(client, settings):
    settings.SITE_LOGO_URL = "img/favicon.svg"
    assert operator_checks.check_site_logo(None) == []
    html = client.get("/en/").content.decode()
    assert re.search(r'<a class="brand"[^>]*><img src="/static/img/favicon\.svg"', html)


@pytest.mark.parametrize(
    ("logo", "error"),
    [
        ("https://cdn.example.com/logo.svg", "portraitsite.E101"),
        ("//cdn.example.com/logo.svg", "portraitsite.E101"),
        ("data:image/svg+xml,<svg/>", "portraitsite.E101"),
        ("/etc/passwd", "portraitsite.E101"),
        ("img/../../settings.py", "portraitsite.E101"),
        ("img/missing-logo.svg", "portraitsite.E102"),
    ],
)
def test_a_logo_from_elsewhere_stops_the_site(settings, logo, error):
    settings.SITE_LOGO_URL = logo
    assert [problem.id for problem in operator_checks.check_site_logo(None)] == [error]


def test_a_short_healthz_token_is_a_deploy_warning(settings):
    settings.HEALTHZ_TOKEN = "short"
    assert [w.id for w in operator_checks.check_healthz_token(None)] == ["portraitsite.W101"]
    settings.HEALTHZ_TOKEN = "x" * 43
    assert operator_checks.check_healthz_token(None) == []
