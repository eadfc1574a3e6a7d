"""Retries are bounded and go only where they can help: counted as requests at the fake, with the
waits recorded instead of slept."""

import email.utils
import time

import pytest

from segmentation.intake import accept_upload
from segmentation.providers import removebg
from segmentation.providers.http import ProviderError, RetryPolicy
from tests.fakes.removebg import jpeg, portrait
from tests.fakes.server import unused_port


@pytest.fixture
def photo():
    return accept_upload(jpeg(portrait(400, 300)))


def test_rate_limit_waits_as_asked_then_succeeds(removebg_fake, removebg_sleeps, photo):
    removebg_fake.fail_next(429, times=2, retry_after=3)
    before = removebg.credits_charged()
    removebg.cut_out(photo, "preview")
    assert [r.status for r in removebg_fake.requests] == [429, 429, 200]
    assert removebg_sleeps == [3.0, 3.0]
    assert removebg.credits_charged() - before == 0.25


def test_rate_limit_is_retried_at_most_twice(removebg_fake, removebg_sleeps, photo):
    removebg_fake.fail_next(429, times=10, retry_after=1)
    with pytest.raises(ProviderError):
        removebg.cut_out(photo, "preview")
    assert len(removebg_fake.requests) == 3
    assert removebg_sleeps == [1.0, 1.0]


def test_retry_after_beyond_the_cap_is_not_waited_for(removebg_fake, removebg_sleeps, photo):
    removebg_fake.fail_next(429, retry_after=60)
    with pytest.raises(ProviderError) as caught:
        removebg.cut_out(photo, "preview")
    assert caught.value.status == 429
    assert len(removebg_fake.requests) == 1 and removebg_sleeps == []


def test_retry_after_as_an_http_date_is_honoured(removebg_fake, removebg_sleeps, photo):
    removebg_fake.fail_next(429, retry_after=email.utils.formatdate(time.time() + 5, usegmt=True))
    removebg.cut_out(photo, "preview")
    assert len(removebg_fake.requests) == 2
    (wait,) = removebg_sleeps
    assert 3.0 <= wait <= 5.0


def test_rate_limit_without_retry_after_backs_off(removebg_fake, removebg_sleeps, photo):
    removebg_fake.fail_next(429, times=2)
    removebg.cut_out(photo, "preview")
    assert len(removebg_fake.requests) == 3
    assert len(removebg_sleeps) == 2 and all(0 <= wait <= removebg.RETRY_POLICY.max_delay for wait in removebg_sleeps)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_with_growing_jittered_backoff(removebg_fake, removebg_sleeps, photo, status):
    removebg_fake.fail_next(status, times=2)
    removebg.cut_out(photo, "preview")
    assert [r.status for r in removebg_fake.requests] == [status, status, 200]
    first, second = removebg_sleeps
    policy = removebg.RETRY_POLICY
    assert 0 <= first <= policy.base_delay and 0 <= second <= 2 * policy.base_delay


def test_server_errors_give_up_after_three_tries(removebg_fake, removebg_sleeps, photo):
    removebg_fake.fail_next(503, times=10)
    with pytest.raises(ProviderError):
        removebg.cut_out(photo, "preview")
    assert len(removebg_fake.requests) == 3 and len(removebg_sleeps) == 2


def test_a_connection_dropped_after_the_upload_is_not_repeated(removebg_fake, removebg_sleeps, photo):
    # remove.bg read the whole request: it may have made, and charged for, the cutout.
    removebg_fake.drop_next()
    with pytest.raises(ProviderError) as caught:
        removebg.cut_out(photo, "full")
    assert caught.value.retryable and caught.value.status is None
    assert caught.value.billed and "gave no answer" in caught.value.detail
    assert len(removebg_fake.requests) == 1 and removebg_sleeps == []


def test_a_connection_that_never_opens_is_retried_a_bounded_number_of_times(
    removebg_fake, removebg_sleeps, photo, settings
):
    settings.REMOVEBG_API_URL = f"http://127.0.0.1:{unused_port()}/v1.0"
    with pytest.raises(ProviderError) as caught:
        removebg.cut_out(photo, "preview")
    assert caught.value.retryable and "unreachable" in caught.value.detail
    assert len(removebg_sleeps) == removebg.RETRY_POLICY.attempts - 1


@pytest.mark.parametrize(
    "status, code",
    [(400, "failed_to_read_image"), (400, "unknown_foreground"), (402, "insufficient_credits"), (403, "auth_failed")],
)
def test_refusals_are_never_retried(removebg_fake, removebg_sleeps, photo, status, code):
    removebg_fake.fail_next(status, times=3, code=code, title="refused")
    with pytest.raises(ProviderError):
        removebg.cut_out(photo, "preview")
    assert len(removebg_fake.requests) == 1 and removebg_sleeps == []


def test_each_retry_sends_the_same_request(removebg_fake, photo):
    removebg_fake.fail_next(503)
    removebg_fake.fail_next(429, retry_after=0)
    removebg.cut_out(photo, "full")
    first, second, third = removebg_fake.requests
    for request in (second, third):
        assert request.fields == first.fields
        assert request.file("image_file").data == first.file("image_file").data


def test_backoff_ceiling_doubles_up_to_the_maximum():
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0, jitter=lambda low, high: high)
    assert [policy.backoff(retry) for retry in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_request_that_cannot_be_sent_is_not_called_charged_nor_repeated(
    removebg_fake, removebg_sleeps, photo, settings
):
    settings.REMOVEBG_API_KEY = "s3cretRemoveBgKey\n"
    with pytest.raises(ProviderError) as caught:
        removebg.cut_out(photo, "preview")
    detail = caught.value.detail
    assert "InvalidHeader" in detail and "could not be sent" in detail and not caught.value.billed
    assert "s3cretRemoveBgKey" not in detail and caught.value.__cause__ is None
    assert removebg_fake.requests == [] and removebg_sleeps == []
