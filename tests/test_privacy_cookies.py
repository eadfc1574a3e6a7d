"""Promise: no cookies for visitors. Every public URL × method × outcome, with and without junk
cookies sent along, answers without a Set-Cookie; the admin sets only its session cookie, scoped
to the admin path, HttpOnly, SameSite, and Secure in production."""

from __future__ import annotations

import logging
import re
from http.cookies import SimpleCookie

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory

from portraitsite.middleware import CookieLeak, NoVisitorCookiesMiddleware
from segmentation import jobs, store
from tests.flow import token_of, upload, wait_ready, wait_unlocked
from tests.photos import encode, gradient, portrait_scene
from unlock.issuing import issue

pytestmark = pytest.mark.django_db(transaction=True)

JUNK = {"sessionid": "abc", "csrftoken": "x" * 32, "django_language": "zh-hans", "messages": "junk", "tracking": "1"}
METHODS = ["get", "head", "post", "put", "patch", "delete", "options"]
META = {"media_type": "image/jpeg", "width": 400, "height": 300}


@pytest.fixture(params=[False, True], ids=["no-cookies", "junk-cookies"])
def visitor(request) -> Client:
    client = Client(raise_request_exception=False)
    if request.param:
        for name, value in JUNK.items():
            client.cookies[name] = value
    return client


def assert_no_cookie(response, what: str = "") -> None:
    assert not response.cookies, f"{what} {response.status_code} set {list(response.cookies)}"
    assert "Set-Cookie" not in response.headers, what


def job_in_store(state: str = store.READY, unlocked: bool = False) -> str:
    """A job as the pool would leave it, made directly in the store (this is about cookies)."""
    job = store.create("cutout", "local", META, encode(portrait_scene(400, 300)))
    job.state = state
    if state == store.READY:
        store.put_image(job, "preview", encode(portrait_scene(200, 150), "WEBP"))
        store.put_image(job, "before", encode(portrait_scene(200, 150), "WEBP"))
    if unlocked:
        store.put_image(job, "result", encode(portrait_scene(400, 300).convert("RGBA"), "PNG"))
        job.delivery, job.result = store.UNLOCKED, {"media_type": "image/png", "width": 400, "height": 300}
    store.save(job)
    return job.token


def public_paths(token: str) -> list[str]:
    return [
        "/",
        "/zh-hans/",
        "/privacy/",
        "/terms/",
        "/zh-hans/privacy/",
        "/zh-hans/terms/",
        "/healthz",
        "/jobs/",
        f"/jobs/{token}/",
        f"/jobs/{token}/status",
        f"/jobs/{token}/preview",
        f"/jobs/{token}/before",
        f"/jobs/{token}/people",
        f"/jobs/{token}/people/0",
        f"/jobs/{token}/unlock",
        f"/jobs/{token}/download",
        f"/jobs/{token}/download?background=white",
        f"/zh-hans/jobs/{token}/",
        "/static/css/site.css",
        "/no/such/page",
        "/zh-hans/no/such/page",
    ]


def test_every_public_url_and_method_sets_no_cookie(visitor):
    """The whole grid, for a ready job, an unlocked job and an unknown token. (Deleting comes last:
    it ends the job the other requests are about.)"""
    seen = set()
    for token in (job_in_store(), job_in_store(unlocked=True), "unknown-token"):
        for path in public_paths(token):
            for method in METHODS:
                response = getattr(visitor, method)(path)
                assert_no_cookie(response, f"{method.upper()} {path}")
                # A cookie leak raises CookieLeak in tests (a 500): no request here may fail.
                assert response.status_code < 500, f"{method.upper()} {path}"
                seen.add(response.status_code)
        assert_no_cookie(visitor.post(f"/jobs/{token}/delete"), "delete")
    assert {200, 303, 400, 403, 404, 405} <= seen


def test_every_outcome_sets_no_cookie(visitor, settings, monkeypatch):
    code = issue(count=1, max_uses=1, expires_at=None, label="cookies").displayed[0]
    photo = encode(portrait_scene(400, 300))

    def expect(status: int, response) -> None:
        assert response.status_code == status, (status, response.content[:300])
        assert_no_cookie(response, str(status))

    # Success.
    expect(200, visitor.get("/"))
    token = token_of(upload(visitor, photo))
    assert_no_cookie(visitor.get(f"/jobs/{token}/"))
    ready = job_in_store()
    expect(200, visitor.get(f"/jobs/{ready}/preview"))
    expect(303, visitor.post(f"/jobs/{ready}/unlock", {"code": code}))
    expect(200, visitor.get(f"/jobs/{job_in_store(unlocked=True)}/download"))
    expect(303, visitor.post(f"/jobs/{token}/delete"))
    # 400: not a photo, a malformed code, an unknown background.
    expect(400, upload(visitor, b"not a photo at all"))
    expect(400, visitor.post(f"/jobs/{job_in_store()}/unlock", {"code": "short"}))
    expect(400, visitor.get(f"/jobs/{job_in_store(unlocked=True)}/download?background=purple"))
    # 403: cross-site, locked download, an unknown code.
    expect(403, visitor.post("/jobs/", {"mode": "cutout"}, HTTP_SEC_FETCH_SITE="cross-site"))
    expect(403, visitor.get(f"/jobs/{job_in_store()}/download"))
    expect(403, visitor.post(f"/jobs/{job_in_store()}/unlock", {"code": "ABCD-EFGH-JKMN-PQRS"}))
    # 404, 405, 409.
    expect(404, visitor.get("/jobs/no-such-job/"))
    expect(404, visitor.get("/jobs/no-such-job/status"))
    expect(405, visitor.get("/jobs/"))
    expect(409, visitor.post(f"/jobs/{job_in_store(state=store.PROCESSING)}/unlock", {"code": code}))
    # 413: by the declared length, and while streaming.
    settings.MAX_UPLOAD_BYTES = 2048
    expect(413, upload(visitor, photo))
    settings.MAX_UPLOAD_BYTES = 20 * 1024**2
    # 429: uploads, and wrong codes.
    settings.UPLOADS_PER_MINUTE = 1
    upload(visitor, photo, REMOTE_ADDR="198.51.100.1")
    expect(429, upload(visitor, photo, REMOTE_ADDR="198.51.100.1"))
    settings.UPLOADS_PER_MINUTE = 0
    settings.UNLOCK_FAILURES_PER_MINUTE = 1
    locked = job_in_store()
    visitor.post(f"/jobs/{locked}/unlock", {"code": "ABCD-EFGH-JKMN-PQRS"}, REMOTE_ADDR="198.51.100.2")
    expect(429, visitor.post(f"/jobs/{locked}/unlock", {"code": "ABCD-EFGH-JKMN-PQRS"}, REMOTE_ADDR="198.51.100.2"))
    # 503: the store is full, the pool is full.
    used, _ = store.usage()
    settings.IMAGE_STORE_MAX_BYTES = used + 1000
    expect(503, upload(visitor, photo))
    settings.IMAGE_STORE_MAX_BYTES = 2 * 1024**3
    monkeypatch.setattr(jobs.Pool, "submit", lambda self, task, *args: False)
    expect(503, upload(visitor, photo))
    monkeypatch.undo()
    # 500: a view that crashes, on a page, a job URL, and the legal pages.
    monkeypatch.setattr("segmentation.views._home", _raise)
    monkeypatch.setattr("segmentation.views._job_page", _raise)
    monkeypatch.setattr("portraitsite.legal.facts", _raise)
    for path in ("/", f"/jobs/{job_in_store()}/", "/privacy/", "/zh-hans/terms/"):
        expect(500, visitor.get(path))


def test_a_whole_visit_sets_no_cookie(visitor, settings):
    """The real flow through the pool: upload, preview, wrong and right codes, downloads, delete,
    and a photo with nobody in it."""
    visitor.raise_request_exception = True  # a leak raises CookieLeak: it must fail this test
    settings.UPLOADS_PER_MINUTE = 0
    requests = [
        ("get", "/", {}),
        ("get", "/zh-hans/", {}),
        ("get", "/privacy/", {}),
        ("get", "/terms/", {}),
        ("get", "/zh-hans/privacy/", {}),
        ("get", "/healthz", {}),
        ("get", "/no/such/page", {}),
        ("get", "/jobs/unknown-token/", {}),
        ("get", "/jobs/unknown-token/status", {}),
        ("get", "/jobs/unknown-token/preview", {}),
        ("get", "/jobs/unknown-token/download", {}),
        ("post", "/jobs/unknown-token/unlock", {"code": "x"}),
        ("post", "/jobs/unknown-token/delete", {}),
        ("post", "/jobs/", {}),  # 400
        ("post", "/", {}),  # 405
        ("get", "/jobs/", {}),  # 405
    ]
    for method, path, data in requests:
        assert_no_cookie(getattr(visitor, method)(path, data))

    token = token_of(upload(visitor, encode(portrait_scene(400, 300))))
    wait_ready(token)
    for path in ("/jobs/%s/", "/jobs/%s/status", "/jobs/%s/preview", "/jobs/%s/before", "/jobs/%s/download"):
        assert_no_cookie(visitor.get(path % token))
    assert_no_cookie(visitor.post(f"/jobs/{token}/unlock", {"code": "ABCD-EFGH-JKMN-PQRS"}))  # 403
    assert_no_cookie(visitor.post(f"/jobs/{token}/unlock", {"code": "bad"}))  # 400
    code = issue(count=1, max_uses=1, expires_at=None, label="t").displayed[0]
    assert_no_cookie(visitor.post(f"/jobs/{token}/unlock", {"code": code}))  # 303
    wait_unlocked(token)
    for query in ("", "?background=white", "?background=nope"):
        assert_no_cookie(visitor.get(f"/jobs/{token}/download{query}"))
    assert_no_cookie(visitor.post(f"/jobs/{token}/delete"))
    assert_no_cookie(upload(visitor, b"not an image"))
    assert_no_cookie(visitor.post("/jobs/", {"mode": "cutout"}, HTTP_SEC_FETCH_SITE="cross-site"))  # 403

    failed = token_of(upload(visitor, encode(gradient(300, 200))))
    assert wait_ready(failed).state == store.FAILED
    assert_no_cookie(visitor.get(f"/jobs/{failed}/"))


# --- The guard itself ------------------------------------------------------------------------------


def test_a_leaking_view_is_caught_and_stripped(settings, caplog):
    def leaky(request):
        response = HttpResponse("hi")
        response.set_cookie("oops", "1")
        return response

    request = RequestFactory().get("/")
    settings.TESTING = False
    settings.DEBUG = False
    with caplog.at_level(logging.ERROR):
        response = NoVisitorCookiesMiddleware(leaky)(request)
    assert not response.cookies and "oops" in caplog.text
    settings.TESTING = True
    with pytest.raises(CookieLeak):
        NoVisitorCookiesMiddleware(leaky)(request)


def test_the_admin_may_keep_its_session_cookie_on_its_own_path(admin_client, settings):
    response = admin_client.get("/" + settings.ADMIN_URL)
    assert response.status_code == 200
    assert settings.SESSION_COOKIE_PATH == "/" + settings.ADMIN_URL


def _raise(*args, **kwargs):
    raise RuntimeError("boom")


# --- The admin: its session cookie only, on its own path ---------------------------------------------


def admin_login(settings, *, secure: bool = False) -> tuple[Client, list]:
    """Log in through the admin's login page as a browser would, CSRF checks on; return the client
    and every Set-Cookie header the admin sent."""
    from django.contrib.auth.models import User

    User.objects.create_superuser("staff", "staff@example.com", "correct horse battery staple")
    browser = Client(enforce_csrf_checks=True)
    scheme = "https" if secure else "http"
    login_url = f"/{settings.ADMIN_URL}login/?next=/{settings.ADMIN_URL}"
    page = browser.get(login_url, secure=secure)
    assert page.status_code == 200
    set_cookies = [*page.cookies.values()]
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    response = browser.post(
        login_url,
        {"username": "staff", "password": "correct horse battery staple", "csrfmiddlewaretoken": csrf},
        secure=secure,
        HTTP_REFERER=f"{scheme}://testserver{login_url}",
        HTTP_ORIGIN=f"{scheme}://testserver",
    )
    assert response.status_code == 302 and response["Location"] == f"/{settings.ADMIN_URL}"
    set_cookies += [*response.cookies.values()]
    index = browser.get(f"/{settings.ADMIN_URL}", secure=secure)
    assert index.status_code == 200 and "Log out" in index.content.decode()
    set_cookies += [*index.cookies.values()]
    return browser, set_cookies


def test_the_admin_sets_only_its_session_cookie_on_its_own_path(settings):
    browser, set_cookies = admin_login(settings)
    assert set_cookies, "logging in sets the session cookie"
    for morsel in set_cookies:
        assert morsel.key == settings.SESSION_COOKIE_NAME
        assert morsel["path"] == "/" + settings.ADMIN_URL
        assert morsel["httponly"] is True
        assert morsel["samesite"] in ("Lax", "Strict")
        assert not morsel["domain"], "no Domain attribute: this host only"
    # Even a browser that sent the admin's cookie everywhere gets none back from public pages.
    for path in ("/", "/privacy/", "/jobs/unknown/", "/healthz"):
        assert_no_cookie(browser.get(path), path)


def test_in_production_the_admin_cookie_is_secure_and_strict(settings):
    from tests.test_headers import production_settings

    production = production_settings()
    settings.SESSION_COOKIE_SECURE = production["SESSION_COOKIE_SECURE"]
    settings.SESSION_COOKIE_SAMESITE = production["SESSION_COOKIE_SAMESITE"]
    _, set_cookies = admin_login(settings, secure=True)
    raw = "\n".join(morsel.OutputString() for morsel in set_cookies)
    for morsel in set_cookies:
        assert morsel["secure"] is True and morsel["samesite"] == "Strict", raw
        assert morsel["path"] == "/" + settings.ADMIN_URL


def test_a_junk_session_cookie_does_not_open_a_session_outside_the_admin(settings):
    client = Client()
    client.cookies = SimpleCookie({settings.SESSION_COOKIE_NAME: "a" * 32})
    response = client.get("/")
    assert response.status_code == 200 and not hasattr(response.wsgi_request, "session")
    assert not hasattr(response.wsgi_request, "user")
