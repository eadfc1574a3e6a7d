"""Promise behind "images only in RAM": the RAM is bounded. IMAGE_STORE_MAX_BYTES is enforced at
admission — a full store answers 503 with Retry-After and a readable page, and never makes room by
evicting somebody else's photo — and LocMem's MAX_ENTRIES culling never drops a live job."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core.cache import caches
from django.test import Client

from segmentation import jobs, store
from tests.flow import token_of, upload, wait_ready, wait_unlocked
from tests.photos import encode, portrait_scene
from unlock.issuing import issue

pytestmark = pytest.mark.django_db(transaction=True)

META = {"media_type": "image/jpeg", "width": 10, "height": 10}


@pytest.fixture
def small_store(settings):
    """A jobs cache of its own with room for only a few dozen entries."""
    settings.CACHES = {
        **settings.CACHES,
        "jobs": dict(settings.CACHES["jobs"], LOCATION="memory-test-small", OPTIONS={"MAX_ENTRIES": 40}),
    }
    caches["jobs"].clear()
    yield caches["jobs"]
    caches["jobs"].clear()


def images_of(job: store.Job) -> dict[str, bytes | None]:
    return {name: store.get_image(job, name) for name in ("original", "preview", "before")}


def room_for_one_job(settings, photo_meta: dict, original: bytes) -> int:
    """The smallest budget above today's usage that admits one more job like this, found by asking
    the store itself (so the tests hold whatever rule admission uses)."""
    used, _ = store.usage()
    budget = settings.IMAGE_STORE_MAX_BYTES
    low, high = 0, 1 << 34
    while high - low > 4096:
        settings.IMAGE_STORE_MAX_BYTES = used + (low + high) // 2
        try:
            job = store.create(
                "cutout", "local", photo_meta, original, growth=jobs.phase_one_bytes("local", photo_meta)
            )
        except store.StoreFull:
            low = (low + high) // 2
        else:
            # Gone without a trace (store.delete would leave a tombstone behind).
            caches["jobs"].delete_many([job.token, *store._image_keys(job.token)])
            high = (low + high) // 2
    settings.IMAGE_STORE_MAX_BYTES = budget
    return high


def fill_until_full(client, photo: bytes, attempts: int = 20) -> tuple[list[str], object]:
    """Upload until the store refuses; the admitted tokens and the refusal. Each job is waited for,
    so that the refusal comes from the store, not from a full worker pool."""
    admitted = []
    for _ in range(attempts):
        response = upload(client, photo)
        if response.status_code != 303:
            return admitted, response
        admitted.append(token_of(response))
        wait_ready(admitted[-1])
    raise AssertionError(f"{attempts} uploads admitted: the budget was never reached")


def test_a_full_store_answers_503_with_retry_after_and_a_page_and_evicts_nobody(client, settings):
    photo = encode(portrait_scene(600, 450), "JPEG", quality=90)
    need = room_for_one_job(settings, {**META, "width": 600, "height": 450}, photo)
    used, _ = store.usage()
    settings.IMAGE_STORE_MAX_BYTES = used + int(need * 2.5)
    admitted, refused = fill_until_full(client, photo)
    assert admitted, "some uploads fit"
    before = {token: images_of(store.get(token)) for token in admitted}
    used_before = caches["jobs"].bytes_used()

    refused = upload(client, photo)
    assert refused.status_code == 503
    assert int(refused["Retry-After"]) >= 1
    page = refused.content.decode()
    assert "We are busy right now" in page and "Please try again in" in page
    assert caches["jobs"].bytes_used() == used_before, "a refused upload stores nothing"
    for token in admitted:
        assert images_of(store.get(token)) == before[token], "nobody's photo was evicted to make room"


def test_admission_is_decided_before_anything_is_stored(settings):
    used, _ = store.usage()
    entries = len(caches["jobs"]._cache)  # LocMem's own dict of entries
    settings.IMAGE_STORE_MAX_BYTES = used + 1000
    with pytest.raises(store.StoreFull) as full:
        store.create("cutout", "local", META, b"\xff" * 10_000)
    assert full.value.retry_after > 0
    assert len(caches["jobs"]._cache) == entries and caches["jobs"].bytes_used() == used
    settings.IMAGE_STORE_MAX_BYTES = used + 1024**3
    assert store.get(store.create("cutout", "local", META, b"\xff" * 10_000).token) is not None


def test_room_comes_back_when_jobs_expire(settings):
    original = b"\xff" * 50_000
    need = room_for_one_job(settings, META, original)
    used, _ = store.usage()
    settings.IMAGE_STORE_MAX_BYTES = used + need * 3
    admitted = []
    with pytest.raises(store.StoreFull):
        for _ in range(1000):
            admitted.append(store.create("cutout", "local", META, original))
    assert admitted
    with mock.patch("time.time", return_value=admitted[-1].expires_at + 1):
        caches["jobs"].sweep()
        assert store.get(store.create("cutout", "local", META, original).token) is not None


def test_the_store_stays_within_its_budget_after_admitted_jobs_have_grown(client, settings):
    photo = encode(portrait_scene(800, 600), "JPEG", quality=90)
    need = room_for_one_job(settings, {**META, "width": 800, "height": 600}, photo)
    used, _ = store.usage()
    settings.IMAGE_STORE_MAX_BYTES = used + int(need * 2.5)
    admitted = []  # admitted as fast as visitors arrive: before any of them has grown
    for _ in range(8):  # fewer than the worker pool takes, so only the store can refuse
        response = upload(client, photo)
        if response.status_code != 303:
            break
        admitted.append(token_of(response))
    unlocked = 0
    for token, code in zip(
        admitted, issue(count=len(admitted), max_uses=1, expires_at=None, label="m").displayed, strict=True
    ):
        assert wait_ready(token).state == store.READY
        # Room for the result is reserved when the code is spent: without it the unlock is "busy".
        response = client.post(f"/jobs/{token}/unlock", {"code": code})
        assert response.status_code in (303, 503)
        if response.status_code == 303:
            assert wait_unlocked(token).unlocked
            unlocked += 1
        used_now, budget = store.usage()
        assert used_now <= budget, f"{len(admitted)} jobs admitted, now holding {used_now} bytes of a {budget} budget"
    assert unlocked, "some results fit"


def test_deleting_unknown_jobs_never_makes_culling_drop_a_live_one(small_store):
    live = store.create("cutout", "local", META, b"\xff" * 100)
    stranger = Client()
    for _ in range(60):
        stranger.post(f"/jobs/{store.new_token()}/delete")
    assert store.get(live.token) is not None and store.get_image(live, "original") is not None


def test_a_flood_of_tiny_jobs_is_refused_before_culling_could_drop_a_live_one(small_store):
    admitted = []
    for _ in range(40):
        try:
            admitted.append(store.create("cutout", "local", META, b"\xff" * 100))
        except store.StoreFull:
            break
    assert admitted, "some jobs fit"
    alive = [job for job in admitted if store.get(job.token) is not None and store.get_image(job, "original")]
    assert len(alive) == len(admitted), f"{len(admitted) - len(alive)} of {len(admitted)} live jobs were culled"
