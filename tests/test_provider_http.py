"""The shared retry loop (segmentation.providers.http.send), against a real local server: what is
repeated, how often, and after how long. Waits are recorded instead of slept.

The fake remove.bg serves as the server: its switches answer a request with any status, hang up
after reading it, or answer late. Requests are counted where they arrive.
"""

import dataclasses
import email.utils
import socket
import time

import pytest
import requests

from segmentation.providers import http
from tests.fakes.removebg import DEFAULT_KEY, FakeRemoveBg, jpeg, portrait
from tests.fakes.server import unused_port

TIMEOUTS = http.Timeouts(connect=2.0, read=5.0)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def policy(sleeps) -> http.RetryPolicy:
    # The backoff at its ceiling, so waits can be checked exactly.
    return http.RetryPolicy(
        attempts=3,
        base_delay=0.5,
        max_delay=4.0,
        rate_limit_retries=2,
        retry_after_cap=10.0,
        sleep=sleeps.append,
        jitter=lambda low, high: high,
    )


@pytest.fixture
def fake():
    with FakeRemoveBg() as server:
        yield server


@pytest.fixture
def session():
    with http.new_session("portraitsite tests") as client:
        yield client


def cut_out(session, base_url: str, policy: http.RetryPolicy, timeouts: http.Timeouts = TIMEOUTS):
    """One remove.bg call through `send`, as the remove.bg client makes it."""
    return http.send(
        session,
        "POST",
        f"{base_url}/removebg",
        timeouts=timeouts,
        policy=policy,
        headers={"X-API-Key": DEFAULT_KEY},
        data={"size": "preview", "type": "person", "format": "png"},
        files={"image_file": ("photo.jpg", jpeg(portrait(120, 90)), "image/jpeg")},
    )


# --- Connections ------------------------------------------------------------------------------------


def test_a_refused_connection_is_retried_and_the_retry_reaches_the_server(session, policy, sleeps):
    port = unused_port()
    started: list[FakeRemoveBg] = []

    def server_comes_up(seconds: float) -> None:  # the backoff wait: the server is up afterwards
        sleeps.append(seconds)
        started.append(FakeRemoveBg(port=port).start())

    try:
        response = cut_out(session, f"http://127.0.0.1:{port}/v1.0", dataclasses.replace(policy, sleep=server_comes_up))
        assert response.status_code == 200
        assert sleeps == [0.5]
        assert len(started[0].requests) == 1
    finally:
        for server in started:
            server.stop()


def test_a_connection_that_never_opens_is_given_up_after_the_attempts(session, policy, sleeps):
    with pytest.raises(requests.ConnectionError) as caught:
        cut_out(session, f"http://127.0.0.1:{unused_port()}/v1.0", policy)

    assert http.never_sent(caught.value)
    assert sleeps == [0.5, 1.0]  # three attempts, two waits


def test_a_connect_timeout_counts_as_never_sent_and_is_retried(session, policy, sleeps):
    # A listener whose accept queue (backlog 0: one pending connection) is full: Linux drops
    # further SYNs, so the handshake never completes and the client's connect timeout fires.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):
                filler = socket.socket()
                filler.settimeout(0.3)
                try:
                    filler.connect(("127.0.0.1", port))
                except OSError:
                    filler.close()
                    break
                fillers.append(filler)
            with pytest.raises(requests.ConnectTimeout) as caught:
                cut_out(session, f"http://127.0.0.1:{port}/v1.0", policy, http.Timeouts(connect=0.2, read=5.0))
        finally:
            for filler in fillers:
                filler.close()

    assert http.never_sent(caught.value)
    assert len(sleeps) == policy.attempts - 1


def test_a_connection_dropped_after_the_request_arrived_is_not_repeated(fake, session, policy, sleeps):
    fake.drop_next()

    with pytest.raises(requests.ConnectionError) as caught:
        cut_out(session, fake.base_url, policy)

    assert not http.never_sent(caught.value)
    assert [request.status for request in fake.requests] == [0]  # it arrived, whole
    assert sleeps == []


def test_a_dropped_connection_is_repeated_where_the_policy_allows_it(fake, session, policy, sleeps):
    fake.drop_next(times=2)

    response = cut_out(session, fake.base_url, dataclasses.replace(policy, retry_sent_requests=True))

    assert response.status_code == 200
    assert [request.status for request in fake.requests] == [0, 0, 200]
    assert sleeps == [0.5, 1.0]


def test_dropped_connections_repeated_by_policy_are_still_bounded(fake, session, policy, sleeps):
    fake.drop_next(times=10)

    with pytest.raises(requests.ConnectionError):
        cut_out(session, fake.base_url, dataclasses.replace(policy, retry_sent_requests=True))

    assert len(fake.requests) == policy.attempts


def test_a_read_timeout_is_never_repeated_even_where_sent_requests_may_be(fake, session, policy, sleeps):
    fake.slow_next(3)

    with pytest.raises(requests.ReadTimeout):
        cut_out(
            session,
            fake.base_url,
            dataclasses.replace(policy, retry_sent_requests=True),
            http.Timeouts(connect=2.0, read=0.3),
        )

    assert len(fake.requests) == 1 and sleeps == []


# --- Statuses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_transient_statuses_are_retried_by_default(fake, session, policy, sleeps, status):
    fake.fail_next(status, times=2)

    response = cut_out(session, fake.base_url, policy)

    assert response.status_code == 200
    assert [request.status for request in fake.requests] == [status, status, 200]
    assert sleeps == [0.5, 1.0]


@pytest.mark.parametrize("status", [501, 505, 400, 402, 403, 404])
def test_other_statuses_are_returned_at_once(fake, session, policy, sleeps, status):
    fake.fail_next(status, times=3)

    response = cut_out(session, fake.base_url, policy)

    assert response.status_code == status
    assert len(fake.requests) == 1 and sleeps == []


def test_only_the_policys_statuses_are_retried(fake, session, policy, sleeps):
    dashscope_like = dataclasses.replace(policy, retry_statuses=frozenset({500, 503, 504}))
    fake.fail_next(502)

    assert cut_out(session, fake.base_url, dashscope_like).status_code == 502
    assert len(fake.requests) == 1 and sleeps == []

    fake.fail_next(503)
    assert cut_out(session, fake.base_url, dashscope_like).status_code == 200
    assert [request.status for request in fake.requests] == [502, 503, 200]


def test_a_status_that_keeps_failing_is_returned_after_the_attempts(fake, session, policy, sleeps):
    fake.fail_next(503, times=10)

    response = cut_out(session, fake.base_url, policy)

    assert response.status_code == 503
    assert len(fake.requests) == policy.attempts and sleeps == [0.5, 1.0]


# --- Rate limits and Retry-After -------------------------------------------------------------------------


def test_retry_after_up_to_the_cap_is_waited_for_exactly(fake, session, policy, sleeps):
    fake.fail_next(429, retry_after=10)

    response = cut_out(session, fake.base_url, policy)

    assert response.status_code == 200
    assert sleeps == [10.0]


def test_retry_after_beyond_the_cap_returns_the_429_at_once(fake, session, policy, sleeps):
    fake.fail_next(429, retry_after=11)

    response = cut_out(session, fake.base_url, policy)

    assert response.status_code == 429 and response.headers["Retry-After"] == "11"
    assert len(fake.requests) == 1 and sleeps == []


def test_retry_after_as_a_date_beyond_the_cap_is_not_waited_for(fake, session, policy, sleeps):
    fake.fail_next(429, retry_after=email.utils.formatdate(time.time() + 120, usegmt=True))

    assert cut_out(session, fake.base_url, policy).status_code == 429
    assert sleeps == []


def test_rate_limits_are_retried_a_bounded_number_of_times(fake, session, policy, sleeps):
    fake.fail_next(429, times=10, retry_after=1)

    response = cut_out(session, fake.base_url, policy)

    assert response.status_code == 429
    assert len(fake.requests) == policy.rate_limit_retries + 1
    assert sleeps == [1.0, 1.0]


def test_the_provider_policies_repeat_no_request_that_may_have_been_billed():
    from segmentation.providers import dashscope, removebg

    assert not removebg.RETRY_POLICY.retry_sent_requests
    assert not dashscope.RETRY_POLICY.retry_sent_requests
    # A 504 on the billed call most likely hides a model that ran; the free download retries it.
    assert dashscope.RETRY_POLICY.retry_statuses == {500, 503}
    client = dashscope.DashScopeClient(api_url="http://127.0.0.1:1/api/v1", api_key="")
    try:
        assert 504 in client.download_policy.retry_statuses and client.download_policy.retry_sent_requests
    finally:
        client.close()
