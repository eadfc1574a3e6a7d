"""Every DashScope call is billed, so a job calls once: retries only where no image can have been
made (a connection never opened, a 429, a 500/503), and a bounded number of them. The result
download costs nothing and may be repeated after any transient failure."""

import dataclasses

import pytest

from segmentation.providers import dashscope as client
from segmentation.providers.http import ProviderError
from tests.fakes.dashscope import erase_people
from tests.fakes.server import unused_port


def test_a_server_error_is_retried_and_then_succeeds(dashscope_fake, dashscope_sleeps):
    dashscope_fake.break_next()

    edited = erase_people()

    assert (edited.width, edited.height) == (683, 512)
    assert [call.status for call in dashscope_fake.generation_calls] == [500, 200]
    assert len(dashscope_sleeps) == 1
    assert 0 <= dashscope_sleeps[0] <= client.RETRY_POLICY.base_delay


@pytest.mark.parametrize(("status", "code"), [(500, "InternalError"), (503, "ServiceUnavailable")])
def test_server_errors_are_retried_a_bounded_number_of_times(dashscope_fake, dashscope_sleeps, status, code):
    dashscope_fake.fail_next(status, code, times=10)

    with pytest.raises(ProviderError) as caught:
        erase_people()

    assert caught.value.retryable
    assert len(dashscope_fake.generation_calls) == client.RETRY_POLICY.attempts == 3
    assert len(dashscope_sleeps) == 2


@pytest.mark.parametrize(("status", "code"), [(502, "BadGateway"), (504, "GatewayTimeout")])
def test_a_gateway_error_is_not_repeated(dashscope_fake, dashscope_sleeps, status, code):
    # A 504 is a gateway that gave up waiting, most likely while the model ran (and billed); a 502
    # from a gateway in front says nothing about whether it ran. Neither is worth paying twice for.
    dashscope_fake.fail_next(status, code, times=3)

    with pytest.raises(ProviderError) as caught:
        erase_people()

    assert caught.value.retryable
    assert len(dashscope_fake.generation_calls) == 1 and dashscope_sleeps == []


def test_throttling_waits_as_long_as_retry_after_asks(dashscope_fake, dashscope_sleeps):
    dashscope_fake.throttle_next(times=2, retry_after=3)

    erase_people()

    assert [call.status for call in dashscope_fake.generation_calls] == [429, 429, 200]
    assert dashscope_sleeps == [3.0, 3.0]


def test_throttling_is_retried_a_bounded_number_of_times(dashscope_fake, dashscope_sleeps):
    dashscope_fake.throttle_next(times=10)

    with pytest.raises(ProviderError) as caught:
        erase_people()

    assert caught.value.code == "Throttling.RateQuota"
    assert len(dashscope_fake.generation_calls) == client.RETRY_POLICY.rate_limit_retries + 1


def test_a_long_retry_after_is_not_waited_for(dashscope_fake, dashscope_sleeps):
    dashscope_fake.throttle_next(retry_after=3600)

    with pytest.raises(ProviderError):
        erase_people()

    assert len(dashscope_fake.generation_calls) == 1
    assert dashscope_sleeps == []


@pytest.mark.parametrize(
    "fail",
    [
        lambda fake: fake.moderate_next(),
        lambda fake: fake.fail_next(400, "Arrearage"),
        lambda fake: fake.fail_next(403, "AccessDenied.Unpurchased"),
        lambda fake: fake.fail_next(400, "InvalidParameter"),
        lambda fake: fake.code_in_200_next("InternalError.Algo"),
    ],
    ids=["moderation", "arrearage", "access-denied", "invalid-parameter", "code-in-200"],
)
def test_refusals_are_never_repeated(dashscope_fake, dashscope_sleeps, fail):
    fail(dashscope_fake)

    with pytest.raises(ProviderError):
        erase_people()

    assert len(dashscope_fake.generation_calls) == 1
    assert dashscope_sleeps == []


def test_a_wrong_key_is_not_repeated(dashscope_fake, dashscope_sleeps, settings):
    settings.DASHSCOPE_API_KEY = "sk-wrong"

    with pytest.raises(ProviderError):
        erase_people()

    assert len(dashscope_fake.generation_calls) == 1


@pytest.mark.parametrize(
    "hold_back",
    [lambda fake: fake.slow_next(5), lambda fake: fake.stall_next(5)],
    ids=["no-answer", "half-an-answer"],
)
def test_an_answer_too_slow_to_wait_for_is_not_asked_for_twice(
    dashscope_fake, dashscope_sleeps, monkeypatch, hold_back
):
    # The image may already be made (and billed) when we stop waiting.
    monkeypatch.setattr(client, "GENERATION_TIMEOUTS", dataclasses.replace(client.GENERATION_TIMEOUTS, read=0.3))
    hold_back(dashscope_fake)

    with pytest.raises(ProviderError) as caught:
        erase_people()

    assert caught.value.message == "slow"
    assert caught.value.retryable
    assert len(dashscope_fake.generation_calls) == 1
    assert dashscope_sleeps == []


def test_a_connection_dropped_after_the_request_arrived_is_not_repeated(dashscope_fake, dashscope_sleeps):
    dashscope_fake.drop_next()

    with pytest.raises(ProviderError) as caught:
        erase_people()

    assert caught.value.billed
    assert len(dashscope_fake.generation_calls) == 1
    assert dashscope_sleeps == []


def test_a_connection_that_never_opens_is_retried_a_bounded_number_of_times(dashscope_fake, dashscope_sleeps, settings):
    settings.DASHSCOPE_API_URL = f"http://127.0.0.1:{unused_port()}/api/v1"

    with pytest.raises(ProviderError) as caught:
        erase_people()

    assert caught.value.retryable
    assert "unreachable" in caught.value.detail
    assert len(dashscope_sleeps) == client.RETRY_POLICY.attempts - 1


@pytest.mark.parametrize("status", [503, 504])
def test_a_failed_download_is_retried_without_calling_the_model_again(dashscope_fake, dashscope_sleeps, status):
    dashscope_fake.fail_download_next(status)

    erase_people()

    assert len(dashscope_fake.generation_calls) == 1
    assert [download.status for download in dashscope_fake.downloads] == [status, 200]


def test_a_download_cut_off_is_fetched_again_without_calling_the_model_again(dashscope_fake, dashscope_sleeps):
    # Fetching a stored result costs nothing: unlike the billed call, a dropped connection is repeated.
    dashscope_fake.drop_download_next()

    erase_people()

    assert len(dashscope_fake.generation_calls) == 1
    assert [download.status for download in dashscope_fake.downloads] == [0, 200]
    assert len(dashscope_sleeps) == 1


def test_a_download_that_keeps_failing_still_costs_one_call(dashscope_fake, dashscope_sleeps):
    dashscope_fake.fail_download_next(503, times=10)

    with pytest.raises(ProviderError) as caught:
        erase_people()

    assert caught.value.message == "result_unavailable"
    assert len(dashscope_fake.generation_calls) == 1
    assert len(dashscope_fake.downloads) == client.RETRY_POLICY.attempts


def test_a_request_that_cannot_be_sent_is_not_called_billed_nor_repeated(dashscope_fake, dashscope_sleeps, settings):
    settings.DASHSCOPE_API_KEY = "sk-s3cretDashScopeKey\n"

    with pytest.raises(ProviderError) as caught:
        erase_people()

    detail = caught.value.detail
    assert "InvalidHeader" in detail and "could not be sent" in detail and "billed" not in detail
    assert "s3cretDashScopeKey" not in detail
    assert dashscope_fake.generation_calls == [] and dashscope_sleeps == []
