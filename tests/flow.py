"""Driving the site like a visitor, through Django's test client."""

from __future__ import annotations

import time

from django.test import Client

from segmentation import jobs, store


def upload(client: Client, data: bytes, mode: str = "cutout", name: str = "photo.jpg", spec: str = "", **extra):
    from django.core.files.uploadedfile import SimpleUploadedFile

    fields = {"mode": mode, "image": SimpleUploadedFile(name, data, "image/jpeg")}
    if spec:
        fields["spec"] = spec
    return client.post("/jobs/", fields, **extra)


def token_of(response) -> str:
    assert response.status_code == 303, response.content[:500]
    return response["Location"].rstrip("/").rsplit("/", 1)[-1]


def health_details(client: Client) -> dict:
    """/healthz with the operator's token: the details, not the public bare {"ok": true}."""
    from django.conf import settings

    response = client.get("/healthz", HTTP_AUTHORIZATION=f"Bearer {settings.HEALTHZ_TOKEN}")
    assert response.status_code == 200, response.content[:200]
    return response.json()


def wait_until(token: str, done, timeout: float = 60.0) -> store.Job:
    """Poll the store until `done(job)`; the pool runs jobs in its own threads."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get(token)
        assert job is not None, "job vanished"
        if done(job):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job still {jobs.get(token)} after {timeout}s")


def wait_ready(token: str) -> store.Job:
    return wait_until(token, lambda job: job.state in (store.READY, store.FAILED))


def wait_unlocked(token: str) -> store.Job:
    return wait_until(token, lambda job: job.delivery != store.FINISHING)


def wait_for_pool_idle(timeout: float = 60) -> None:
    """Until no job of any earlier test is still running in this process's pool."""
    from segmentation import jobs

    assert jobs.pool().drain(timeout), "the worker pool did not drain"
