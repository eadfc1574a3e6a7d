"""DashScope's error codes become one ProviderError: a key of the client's visitor messages and an
operator detail; codes the operator must act on are logged at ERROR; nothing secret reaches a log."""

import logging

import pytest

from segmentation.providers import dashscope as client
from segmentation.providers.http import ProviderError
from tests.fakes.dashscope import erase_people

UNAVAILABLE, BUSY, MODERATED, UNPROCESSABLE = "unavailable", "busy", "moderated", "unprocessable"


def failure() -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        erase_people()
    assert caught.value.message in client.MESSAGES
    return caught.value


def assert_nothing_secret_logged(caplog, fake) -> None:
    for record in caplog.records:
        text = record.getMessage()
        assert fake.api_key not in text
        assert "base64" not in text and "data:image" not in text
        assert "Signature=" not in text


@pytest.mark.parametrize(
    ("status", "code", "visitor", "retryable", "level"),
    [
        (400, "DataInspectionFailed", MODERATED, False, logging.INFO),
        (400, "Arrearage", UNAVAILABLE, True, logging.ERROR),
        (403, "AccessDenied", UNAVAILABLE, True, logging.ERROR),
        (403, "AccessDenied.Unpurchased", UNAVAILABLE, True, logging.ERROR),
        (400, "InvalidParameter", UNAVAILABLE, True, logging.ERROR),
        (400, "InvalidParameter.ImageFormat", UNPROCESSABLE, False, logging.WARNING),
        (400, "InvalidParameter.ImageContent", UNPROCESSABLE, False, logging.WARNING),
        (429, "Throttling", BUSY, True, logging.WARNING),
        (429, "Throttling.RateQuota", BUSY, True, logging.WARNING),
        (429, "Throttling.AllocationQuota", BUSY, True, logging.WARNING),
        (500, "InternalError", UNAVAILABLE, True, logging.WARNING),
        (503, "ServiceUnavailable", UNAVAILABLE, True, logging.WARNING),
        (504, "GatewayTimeout", UNAVAILABLE, True, logging.WARNING),
    ],
)
def test_each_error_code_has_its_visitor_message(dashscope_fake, caplog, status, code, visitor, retryable, level):
    dashscope_fake.fail_next(status, code, times=5)  # also outlasts the retries of 429 and 5xx

    with caplog.at_level(logging.INFO, logger="segmentation.providers.dashscope"):
        error = failure()

    assert error.code == code
    assert error.status == status
    assert error.message == visitor
    assert error.retryable is retryable
    assert error.billed is (status == 504)  # failed calls are not billed; a gateway timeout may hide one that ran
    assert code in error.detail
    levels = {r.levelno for r in caplog.records if r.name == "segmentation.providers.dashscope"}
    assert max(levels) == level
    assert_nothing_secret_logged(caplog, dashscope_fake)
    assert dashscope_fake.downloads == []


def test_a_wrong_key_is_reported_to_the_operator_and_not_to_the_visitor(dashscope_fake, settings, caplog):
    settings.DASHSCOPE_API_KEY = "sk-not-the-right-one"

    with caplog.at_level(logging.INFO):
        error = failure()

    assert error.code == "InvalidApiKey" and error.status == 401
    assert error.message == UNAVAILABLE
    (logged,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "DASHSCOPE_API_KEY" in logged.getMessage() and "DASHSCOPE_API_URL" in logged.getMessage()
    assert "sk-not-the-right-one" not in caplog.text
    assert len(dashscope_fake.generation_calls) == 1


def test_an_unknown_model_is_an_operator_error(dashscope_fake, settings, caplog):
    settings.DASHSCOPE_MODEL = "qwen-image-edit-ultra"

    with caplog.at_level(logging.INFO):
        error = failure()

    assert error.code == "InvalidParameter"
    # Our request's fault, not the photo's: another photo would not help.
    assert error.message == UNAVAILABLE
    assert "DASHSCOPE_MODEL" in " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert dashscope_fake.generation_calls[0].json()["model"] == "qwen-image-edit-ultra"


@pytest.mark.parametrize(
    ("code", "visitor"),
    [("InternalError.Algo", UNAVAILABLE), ("DataInspectionFailed", MODERATED), ("Arrearage", UNAVAILABLE)],
)
def test_a_200_carrying_a_code_is_an_error(dashscope_fake, code, visitor):
    dashscope_fake.code_in_200_next(code)

    error = failure()

    assert error.code == code and error.status == 200
    assert error.message == visitor
    assert len(dashscope_fake.generation_calls) == 1
    assert dashscope_fake.downloads == []


def test_codes_decide_never_the_message_text(dashscope_fake):
    dashscope_fake.fail_next(400, "DataInspectionFailed", "Invalid API-key provided. Throttling.")

    error = failure()

    assert error.message == MODERATED


def test_a_provider_message_echoing_our_payload_is_cut_before_it_reaches_the_log(dashscope_fake, caplog):
    dashscope_fake.fail_next(400, "InvalidParameter", "bad url: data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ")

    with caplog.at_level(logging.INFO):
        error = failure()

    assert "bad url" in error.detail
    assert "base64" not in error.detail
    assert_nothing_secret_logged(caplog, dashscope_fake)


def test_no_key_means_no_call(dashscope_fake, settings):
    settings.DASHSCOPE_API_KEY = ""

    error = failure()

    assert error.message == UNAVAILABLE
    assert dashscope_fake.requests == []


def test_an_answer_without_an_image_is_an_error(dashscope_fake, caplog):
    dashscope_fake.result_url = ""

    with caplog.at_level(logging.INFO):
        error = failure()

    assert error.message == UNAVAILABLE
    assert any(r.levelno == logging.ERROR for r in caplog.records)
    assert dashscope_fake.downloads == []
