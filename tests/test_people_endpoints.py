"""Who stays, over HTTP ([T2.2]): the status JSON lists the people once the preview is ready,
`POST /jobs/<token>/people` takes repeated `keep` ids and answers 303, and every refusal has its
own status (400 unknown or nobody, 409 busy, 429 past the bound, 503 full pool with Retry-After),
sets no cookie and changes nothing. Each person's thumbnail is cut from the small "before" picture."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from segmentation import jobs, store
from tests.flow import token_of, upload, wait_ready, wait_until
from tests.photos import encode, portrait_scene
from tests.test_choosing_people import group_photo  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

META = {"media_type": "image/jpeg", "width": 400, "height": 300}
PEOPLE = [
    {"id": 0, "box": [0.1, 0.2, 0.3, 0.7], "kept": True},
    {"id": 1, "box": [0.5, 0.25, 0.3, 0.7], "kept": True},
    {"id": 2, "box": [0.85, 0.3, 0.1, 0.2], "kept": False},
]


def job_in_store(**changes) -> store.Job:
    """A ready job with three people, made directly in the store (no engine runs)."""
    job = store.create("cutout", "local", META, encode(portrait_scene(400, 300)))
    job.state, job.people = store.READY, [dict(person) for person in PEOPLE]
    store.put_image(job, "preview", encode(portrait_scene(200, 150), "WEBP"))
    store.put_image(job, "before", encode(portrait_scene(400, 300), "WEBP"))
    for name, value in changes.items():
        setattr(job, name, value)
    store.save(job)
    return job


def refused(response, status: int, text: str = "") -> None:
    assert response.status_code == status, response.content[:300]
    assert not response.cookies and "no-store" in response["Cache-Control"]
    if text:
        assert text in response.content.decode()


def test_the_status_lists_the_people_once_ready(client):
    job = job_in_store()
    status = client.get(f"/jobs/{job.token}/status").json()
    assert status["people"] == PEOPLE and status["choosing"] is False and status["choice_error"] == ""
    job.state = store.PROCESSING
    store.save(job)
    assert "people" not in client.get(f"/jobs/{job.token}/status").json()


def test_nobody_to_choose_from_when_one_person_or_the_choice_is_off(client, settings):
    assert client.get(f"/jobs/{job_in_store(people=PEOPLE[:1]).token}/status").json()["people"] == []
    settings.CHOICES_PER_JOB = 0
    token = job_in_store().token
    assert client.get(f"/jobs/{token}/status").json()["people"] == []
    refused(client.post(f"/jobs/{token}/people", {"keep": ["0"]}), 400)


def test_a_choice_answers_303_and_the_preview_is_redrawn(client, group_photo):  # noqa: F811
    token = token_of(upload(client, group_photo))
    wait_ready(token)
    people = client.get(f"/jobs/{token}/status").json()["people"]
    assert len(people) == 3
    lone = min(person["id"] for person in people if person["kept"])
    preview = client.get(f"/jobs/{token}/preview").content

    response = client.post(f"/jobs/{token}/people", {"keep": [str(lone)]})

    assert response.status_code == 303 and response["Location"] == f"/jobs/{token}/"
    assert not response.cookies
    wait_until(token, lambda job: not job.choosing)
    status = client.get(f"/jobs/{token}/status").json()
    assert [person["id"] for person in status["people"] if person["kept"]] == [lone]
    assert status["choosing"] is False and status["choice_error"] == ""
    assert client.get(f"/jobs/{token}/preview").content != preview
    # In Chinese too, back to the Chinese page.
    both = [str(person["id"]) for person in people if person["kept"]]
    response = client.post(f"/zh-hans/jobs/{token}/people", {"keep": both})
    assert response.status_code == 303 and response["Location"] == f"/zh-hans/jobs/{token}/"
    wait_until(token, lambda job: not job.choosing)


@pytest.mark.parametrize(
    "keep",
    [[], ["3"], ["0", "9"], ["one"], ["-1"]],
    ids=["nobody", "unknown", "one unknown", "not a number", "negative"],
)
def test_unknown_people_or_nobody_get_400_and_change_nothing(client, keep):
    job = job_in_store()
    refused(client.post(f"/jobs/{job.token}/people", {"keep": keep}), 400)
    job = jobs.get(job.token)
    assert job.people == PEOPLE and job.choices == 0 and not job.choosing


@pytest.mark.parametrize(
    "changes",
    [
        {"state": store.QUEUED},
        {"state": store.PROCESSING, "started_at": 1.0e12},
        {"delivery": store.FINISHING, "delivery_started_at": 1.0e12},
        {"choosing_since": 1.0e12},
    ],
    ids=["queued", "processing", "finishing", "choosing"],
)
def test_a_busy_job_answers_409(client, changes):
    job = job_in_store(**changes)
    refused(client.post(f"/jobs/{job.token}/people", {"keep": ["0"]}), 409, "wait a moment")
    assert jobs.get(job.token).choices == 0


def test_past_the_bound_the_choice_answers_429_with_a_reason(client, settings):
    settings.CHOICES_PER_JOB = 3
    job = job_in_store(choices=3)
    refused(client.post(f"/jobs/{job.token}/people", {"keep": ["0"]}), 429, "the most we allow")
    assert not jobs.get(job.token).choosing


def test_a_full_pool_answers_503_with_retry_after(client, monkeypatch):
    job = job_in_store()
    monkeypatch.setattr(jobs.pool(), "submit", lambda task, *args: False)
    response = client.post(f"/jobs/{job.token}/people", {"keep": ["0"]})
    refused(response, 503)
    assert int(response["Retry-After"]) > 0
    job = jobs.get(job.token)
    assert job.choices == 0 and not job.choosing


def test_an_unknown_job_is_404_and_get_is_405(client):
    for response, status in (
        (client.post("/jobs/no-such-job/people", {"keep": ["0"]}), 404),
        (client.get(f"/jobs/{job_in_store().token}/people"), 405),
    ):
        assert response.status_code == status and not response.cookies


def test_each_person_has_a_small_picture_cut_from_the_before_image(client):
    job = job_in_store()
    response = client.get(f"/jobs/{job.token}/people/0")
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"
    assert "no-store" in response["Cache-Control"] and not response.cookies
    person = Image.open(io.BytesIO(response.content))
    # The box (0.3 × 0.7 of a 4:3 photo) with its margin, fitted into 160 px.
    assert person.height == 160 and person.width == pytest.approx(160 * (0.3 * 1.16 * 4) / (0.7 * 1.16 * 3), abs=3)
    assert client.get(f"/jobs/{job.token}/people/3").status_code == 404
    assert client.get(f"/jobs/{job_in_store(people=PEOPLE[:1]).token}/people/0").status_code == 404


def test_a_cross_site_choice_is_refused_and_changes_nothing(client):
    job = job_in_store()
    for headers in ({"HTTP_SEC_FETCH_SITE": "cross-site"}, {"HTTP_ORIGIN": "https://evil.example"}):
        response = client.post(f"/jobs/{job.token}/people", {"keep": ["2"]}, **headers)
        refused(response, 403, "can only be sent from this website")
    job = jobs.get(job.token)
    assert job.people == PEOPLE and job.choices == 0 and not job.choosing


def test_the_page_offers_the_choice_until_the_bound_is_reached(client, settings):
    settings.CHOICES_PER_JOB = 3
    page = client.get(f"/jobs/{job_in_store(choices=1).token}/").content.decode()
    assert page.count('name="keep"') == 3 and "You can change this 2 more times." in page
    page = client.get(f"/jobs/{job_in_store(choices=3).token}/").content.decode()
    assert 'name="keep"' not in page and 'id="people-overlay"' not in page
    assert "You have changed who stays as often as we allow for this photo." in page
    page = client.get(f"/jobs/{job_in_store(people=PEOPLE[:1]).token}/").content.decode()
    assert 'id="people"' not in page, "one person alone is no choice"
