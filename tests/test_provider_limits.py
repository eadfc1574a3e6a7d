"""Limits that are cheap to evade, and paid calls without a ceiling (security review, finding 5).

* Rate limits key an IPv6 client by its /64: the reviewer was never limited from 38 addresses of
  one /64.
* PROVIDER_CALLS_PER_HOUR caps the billed calls per provider for the whole site; beyond it the
  embedded engine serves the upload, and the job page says so.
* PAID_UPLOADS_PER_MINUTE is the tighter per-client limit when a paid provider serves the upload.
"""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.test import Client, RequestFactory

from portraitsite.ratelimit import client_key, client_network
from segmentation import jobs, store
from tests.fakes.dashscope import street_scene
from tests.flow import token_of, upload, wait_ready
from tests.photos import encode, gradient, portrait_scene

pytestmark = pytest.mark.django_db(transaction=True)

NOTE = "reached its limit for this hour"


@pytest.fixture(autouse=True)
def fresh_counters():
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.mark.parametrize(
    ("address", "client"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("not an address", "not an address"),
    ],
)
def test_a_client_is_an_ipv4_address_or_an_ipv6_64(address, client):
    assert client_network(address) == client


def test_every_address_of_one_ipv6_64_shares_one_limit(settings):
    settings.UPLOADS_PER_MINUTE = 3
    photo = encode(gradient(64, 64))
    statuses = [upload(Client(REMOTE_ADDR=f"2001:db8:1:2::{host:x}"), photo).status_code for host in range(1, 6)]
    assert statuses[3:] == [429, 429], "addresses rotated within one /64 are one client"
    assert upload(Client(REMOTE_ADDR="2001:db8:1:3::1"), photo).status_code != 429, "the next /64 is another"
    assert upload(Client(REMOTE_ADDR="203.0.113.7"), photo).status_code != 429


def test_the_client_key_behind_a_proxy_is_the_64_too(settings):
    settings.TRUSTED_PROXIES = 1
    one, other = (
        RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"2001:db8:5:6::{host}")
        for host in (1, 2)
    )
    assert client_key(one) == client_key(other)


@pytest.fixture
def removebg_cutout(settings, removebg_fake):
    settings.BACKGROUND_ENGINE = "removebg"
    settings.REMOVEBG_FULL_RESULT = "on_unlock"
    return removebg_fake


def test_past_the_hourly_ceiling_the_local_engine_serves_and_the_page_says_so(client, settings, removebg_cutout):
    settings.PROVIDER_CALLS_PER_HOUR = 2
    photo = encode(portrait_scene(800, 600))
    tokens = [token_of(upload(client, photo)) for _ in range(3)]
    served = [wait_ready(token) for token in tokens]
    assert [job.engine for job in served] == ["removebg", "removebg", "local"]
    assert len(removebg_cutout.requests) == 2, "no billed call past the ceiling"
    assert all(job.state == store.READY for job in served), [job.error for job in served]
    assert NOTE in client.get(f"/jobs/{tokens[2]}/").content.decode()
    assert NOTE not in client.get(f"/jobs/{tokens[0]}/").content.decode()
    # In Chinese too: the note is made in the visitor's language.
    from django.core.files.uploadedfile import SimpleUploadedFile

    chinese = token_of(
        client.post("/zh-hans/jobs/", {"mode": "cutout", "image": SimpleUploadedFile("p.jpg", photo, "image/jpeg")})
    )
    wait_ready(chinese)
    assert "本小时" in client.get(f"/zh-hans/jobs/{chinese}/").content.decode()


def test_the_ceiling_holds_for_dashscope_too(client, settings, dashscope_fake):
    settings.CROWD_ENGINE = "dashscope"
    settings.PROVIDER_CALLS_PER_HOUR = 1
    scene = street_scene(1200, 800)
    dashscope_fake.erase = scene.passers_by
    photo = encode(scene.image)
    first, second = (token_of(upload(client, photo, mode="crowd")) for _ in range(2))
    assert (wait_ready(first).engine, wait_ready(second).engine) == ("dashscope", "local")
    assert len(dashscope_fake.generation_calls) == 1


def test_no_ceiling_when_it_is_zero(client, settings, removebg_cutout):
    settings.PROVIDER_CALLS_PER_HOUR = 0
    photo = encode(portrait_scene(400, 300))
    assert [wait_ready(token_of(upload(client, photo))).engine for _ in range(3)] == ["removebg"] * 3


def test_paid_uploads_have_a_tighter_limit_per_client(client, settings, removebg_cutout):
    settings.UPLOADS_PER_MINUTE, settings.PAID_UPLOADS_PER_MINUTE = 10, 2
    photo = encode(portrait_scene(400, 300))
    statuses = [upload(client, photo).status_code for _ in range(3)]
    assert statuses == [303, 303, 429]
    assert len(removebg_cutout.requests) <= 2
    assert upload(Client(REMOTE_ADDR="198.51.100.9"), photo).status_code == 303, "another client is not slowed"


def test_the_paid_limit_does_not_apply_to_the_local_engine(client, settings):
    settings.UPLOADS_PER_MINUTE, settings.PAID_UPLOADS_PER_MINUTE = 10, 1
    photo = encode(portrait_scene(400, 300))
    assert [upload(client, photo).status_code for _ in range(3)] == [303, 303, 303]
    jobs.pool().drain(60)
