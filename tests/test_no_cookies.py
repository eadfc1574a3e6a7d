"""No cookie ever reaches a visitor: every public URL and error path, with and without junk cookies."""

import logging

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from portraitsite.middleware import CookieLeak, NoVisitorCookiesMiddleware
from segmentation import store
from tests.flow import token_of, upload, wait_ready, wait_unlocked
from tests.photos import encode, gradient, portrait_scene
from unlock.issuing import issue

pytestmark = pytest.mark.django_db(transaction=True)

JUNK = {"sessionid": "abc", "csrftoken": "x" * 32, "django_language": "zh-hans", "tracking": "1"}


@pytest.fixture(params=[False, True], ids=["no-cookies", "junk-cookies"])
def visitor(request, client):
    if request.param:
        for name, value in JUNK.items():
            client.cookies[name] = value
    return client


def assert_no_cookie(response) -> None:
    assert not response.cookies, f"{response.status_code} set {list(response.cookies)}"
    assert "Set-Cookie" not in response.headers


def test_every_public_page_and_outcome_sets_no_cookie(visitor, settings):
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
