"""Public POSTs carry no CSRF token, so another site must not be able to make a visitor's browser
send them: what the browser marks as cross-site (Sec-Fetch-Site, Origin) is refused with a 403
page and changes nothing; same-origin requests and clients that send neither header work."""

from __future__ import annotations

import pytest
from django.core.cache import caches

from segmentation import store
from tests.flow import token_of, upload, wait_for_pool_idle
from tests.photos import encode, portrait_scene
from unlock.issuing import issue
from unlock.models import UnlockCode

pytestmark = pytest.mark.django_db

META = {"media_type": "image/jpeg", "width": 10, "height": 10}
SAME_ORIGIN = {"HTTP_SEC_FETCH_SITE": "same-origin", "HTTP_ORIGIN": "http://testserver"}

REFUSED = {
    "sec-fetch-site cross-site": {"HTTP_SEC_FETCH_SITE": "cross-site"},
    "sec-fetch-site same-site": {"HTTP_SEC_FETCH_SITE": "same-site"},
    "sec-fetch-site cross-site with our origin": {
        "HTTP_SEC_FETCH_SITE": "cross-site",
        "HTTP_ORIGIN": "http://testserver",
    },
    "origin of another site": {"HTTP_ORIGIN": "https://evil.example"},
    "origin of a look-alike host": {"HTTP_ORIGIN": "http://testserver.evil.example"},
    "origin with another port": {"HTTP_ORIGIN": "http://testserver:8080"},
    "null origin (sandboxed frame)": {"HTTP_ORIGIN": "null"},
    "malformed origin": {"HTTP_ORIGIN": "http://[::1"},
    "same-origin claim with a foreign origin": {
        "HTTP_SEC_FETCH_SITE": "same-origin",
        "HTTP_ORIGIN": "https://evil.example",
    },
}
ALLOWED = {
    "same origin": SAME_ORIGIN,
    "sec-fetch-site none (the visitor's own action)": {"HTTP_SEC_FETCH_SITE": "none"},
    "origin only": {"HTTP_ORIGIN": "http://testserver"},
    "neither header (curl)": {},
}


def a_job() -> store.Job:
    return store.create("cutout", "local", META, b"o" * 100)


def assert_refused(response) -> None:
    assert response.status_code == 403
    assert "can only be sent from this website" in response.content.decode()
    assert not response.cookies and response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("headers", REFUSED.values(), ids=REFUSED.keys())
def test_a_cross_site_upload_is_refused_and_creates_no_job(client, headers):
    wait_for_pool_idle()  # jobs of earlier tests still writing would look like ours
    before = set(caches["jobs"]._cache)
    response = upload(client, encode(portrait_scene(200, 150)), **headers)
    assert_refused(response)
    assert set(caches["jobs"]._cache) == before


@pytest.mark.parametrize("headers", REFUSED.values(), ids=REFUSED.keys())
def test_a_cross_site_delete_is_refused_and_the_job_survives(client, headers):
    job = a_job()
    assert_refused(client.post(f"/jobs/{job.token}/delete", **headers))
    assert store.get(job.token) is not None


@pytest.mark.parametrize("headers", REFUSED.values(), ids=REFUSED.keys())
def test_a_cross_site_unlock_is_refused_and_spends_no_code(client, headers):
    job = a_job()
    code = issue(count=1, max_uses=1, expires_at=None, label="x").displayed[0]
    assert_refused(client.post(f"/jobs/{job.token}/unlock", {"code": code}, **headers))
    assert UnlockCode.objects.get().used == 0


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_other_unsafe_methods_from_another_site_are_refused_too(client, method):
    job = a_job()
    assert_refused(getattr(client, method)(f"/jobs/{job.token}/delete", HTTP_SEC_FETCH_SITE="cross-site"))
    assert store.get(job.token) is not None


@pytest.mark.parametrize("headers", ALLOWED.values(), ids=ALLOWED.keys())
def test_same_origin_and_headerless_posts_work(client, headers):
    token = token_of(upload(client, encode(portrait_scene(200, 150)), **headers))
    assert store.get(token) is not None
    response = client.post(f"/jobs/{token}/delete", **headers)
    assert response.status_code == 303 and store.get(token) is None


def test_reading_is_never_refused(client):
    job = a_job()
    for path in ("/", f"/jobs/{job.token}/", f"/jobs/{job.token}/status", "/privacy/"):
        assert client.get(path, HTTP_SEC_FETCH_SITE="cross-site", HTTP_ORIGIN="https://evil.example").status_code == 200


def test_the_admin_keeps_django_csrf_instead(settings):
    from django.test import Client

    # Not our refusal page: the admin's own CSRF protection answers (no token was sent).
    admin = Client(enforce_csrf_checks=True)
    response = admin.post(
        f"/{settings.ADMIN_URL}login/", {"username": "a", "password": "b"}, HTTP_SEC_FETCH_SITE="cross-site"
    )
    assert response.status_code == 403
    assert "can only be sent from this website" not in response.content.decode()
