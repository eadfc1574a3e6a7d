"""Every way remove.bg can fail becomes one ProviderError: which of the provider's messages the
visitor reads, what the operator reads, whether trying again later may help and whether the call
may have been billed."""

import logging

import pytest
from PIL import Image

from segmentation.intake import accept_upload
from segmentation.providers import removebg
from segmentation.providers.http import ProviderError, Timeouts
from tests.fakes.removebg import FakeRemoveBg, jpeg, portrait
from tests.fakes.server import unused_port

NO_PERSON, UNAVAILABLE, BUSY, UNUSABLE = "no_person", "unavailable", "busy", "unusable"


@pytest.fixture
def photo():
    return accept_upload(jpeg(portrait(400, 300)))


def failure(photo, size="preview") -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        removebg.cut_out(photo, size)
    assert caught.value.message in removebg.MESSAGES
    return caught.value


def test_photo_without_a_person_is_unknown_foreground(removebg_fake):
    plain = accept_upload(jpeg(Image.new("RGB", (400, 300), (128, 128, 128))))
    error = failure(plain)
    assert error.message == NO_PERSON
    assert not error.retryable
    assert (error.status, error.code) == (400, "unknown_foreground")
    assert "Could not identify foreground" in error.detail


def test_unknown_foreground_is_recognised_without_a_code(removebg_fake, photo):
    removebg_fake.fail_next(400, title="Could not identify foreground in image")
    error = failure(photo)
    assert error.message == NO_PERSON and not error.retryable


def test_out_of_credits_tells_the_operator_to_top_up(removebg_fake, photo, caplog):
    removebg_fake.out_of_credits = True
    error = failure(photo)
    assert error.message == UNAVAILABLE
    assert error.retryable and error.status == 402
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "out of credits" in record.getMessage() and "Top up" in record.getMessage()


def test_402_without_a_code_or_json_is_still_out_of_credits(removebg_fake, photo, caplog):
    removebg_fake.fail_next(402, body=b"Payment Required", content_type="text/plain")
    error = failure(photo)
    assert error.status == 402 and error.retryable
    assert "Payment Required" in error.detail
    assert any("out of credits" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_bad_key_tells_the_operator_to_check_the_setting(removebg_fake, photo, settings, caplog):
    settings.REMOVEBG_API_KEY = "not-the-key"
    error = failure(photo)
    assert error.message == UNAVAILABLE
    assert (error.status, error.code) == (403, "auth_failed")
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "REMOVEBG_API_KEY" in record.getMessage()


def test_missing_key_setting_fails_without_calling(removebg_fake, photo, settings):
    settings.REMOVEBG_API_KEY = ""
    error = failure(photo)
    assert error.message == UNAVAILABLE and "REMOVEBG_API_KEY" in error.detail
    assert removebg_fake.requests == []


def test_other_400s_ask_for_another_photo(removebg_fake, photo, caplog):
    removebg_fake.fail_next(400, title="Failed to read image", code="failed_to_read_image")
    error = failure(photo)
    assert error.message == UNUSABLE and not error.retryable
    assert error.code == "failed_to_read_image"
    assert any(r.levelno == logging.ERROR for r in caplog.records)


def test_rate_limit_that_persists_says_busy(removebg_fake, photo):
    removebg_fake.fail_next(429, times=5, retry_after=1)
    error = failure(photo)
    assert error.message == BUSY and error.retryable and error.status == 429


def test_server_errors_say_temporarily_unavailable(removebg_fake, photo):
    removebg_fake.fail_next(503, times=5)
    error = failure(photo)
    assert error.message == UNAVAILABLE and error.retryable and error.status == 503
    assert not error.billed


def test_html_error_page_from_a_proxy_is_handled(removebg_fake, photo):
    removebg_fake.fail_next(
        502, times=5, body=b"<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"
    )
    error = failure(photo)
    assert error.message == UNAVAILABLE and error.status == 502
    assert "502 Bad Gateway" in error.detail


def test_error_body_without_errors_list_is_handled(removebg_fake, photo):
    removebg_fake.fail_next(400, body=b'{"message": "nope"}')
    error = failure(photo)
    assert error.message == UNUSABLE and error.status == 400


def test_unreachable_service_says_temporarily_unavailable(removebg_fake, photo, settings):
    settings.REMOVEBG_API_URL = f"http://127.0.0.1:{unused_port()}/v1.0"
    error = failure(photo)
    assert error.message == UNAVAILABLE and error.retryable and error.status is None


def test_slow_answer_times_out_and_is_not_repeated(removebg_fake, photo, monkeypatch):
    monkeypatch.setattr(removebg, "TIMEOUTS", Timeouts(connect=2.0, read=0.3))
    removebg_fake.slow_next(3.0)
    error = failure(photo)
    assert error.message == UNAVAILABLE and error.retryable
    assert "ReadTimeout" in error.detail
    # remove.bg may have done and billed the work: a read timeout is not sent again.
    assert len(removebg_fake.requests) == 1


def test_body_that_stalls_times_out_and_is_not_repeated(removebg_fake, photo, monkeypatch):
    monkeypatch.setattr(removebg, "TIMEOUTS", Timeouts(connect=2.0, read=0.3))
    removebg_fake.slow_next(3.0, mid_body=True)
    error = failure(photo)
    assert error.message == UNAVAILABLE and error.retryable
    assert len(removebg_fake.requests) == 1


def test_unreadable_success_body_is_an_error(removebg_fake, photo):
    removebg_fake.fail_next(200, body=b"not a png", content_type="image/png")
    error = failure(photo)
    assert error.message == UNAVAILABLE and error.retryable
    assert error.billed  # remove.bg charges every 200


def test_broken_zip_is_an_error(removebg_fake, monkeypatch):
    big = accept_upload(jpeg(portrait(4000, 3000)))
    removebg_fake.fail_next(200, body=b"PK\x03\x04 truncated", content_type="application/zip")
    error = failure(big, "full")
    assert error.message == UNAVAILABLE
    assert "zip" in error.detail


def test_failed_calls_cost_nothing(removebg_fake, photo, settings):
    before = removebg.credits_charged()
    removebg_fake.out_of_credits = True
    failure(photo)
    removebg_fake.out_of_credits = False
    removebg_fake.fail_next(503, times=3)
    failure(photo)
    assert removebg.credits_charged() == before


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_an_error_and_the_key_goes_nowhere_else(removebg_fake, photo, status, caplog):
    # requests keeps X-API-Key on a redirect, even to another host: it must not follow any.
    with FakeRemoveBg(api_key=removebg_fake.api_key, host="127.0.0.2") as elsewhere:
        removebg_fake.redirect_next(f"{elsewhere.base_url}/removebg?sig=secret", status)
        error = failure(photo)
        assert elsewhere.requests == []
    assert error.message == UNAVAILABLE and error.status == status and not error.billed
    assert len(removebg_fake.requests) == 1
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "redirect" in record.getMessage() and "127.0.0.2" in record.getMessage()
    assert "secret" not in record.getMessage()


def test_a_result_beyond_the_cap_is_not_read_into_memory(removebg_fake, photo, monkeypatch):
    # Preview results are capped at 0.25 MP: a 5 MB answer is not one, whatever it claims to be.
    removebg_fake.fail_next(200, body=b"\x89PNG" + bytes(5 * 1024 * 1024), content_type="image/png")
    error = failure(photo)
    assert error.message == UNAVAILABLE and error.billed
    assert f"exceeds {removebg.RESULT_BYTES_PER_PIXEL * 120_000 + removebg.RESULT_BYTES_MARGIN} bytes" in error.detail


def test_a_result_that_does_not_declare_its_length_is_cut_off_at_the_cap(removebg_fake, photo, monkeypatch):
    monkeypatch.setattr(removebg, "RESULT_BYTES_MARGIN", 0)
    monkeypatch.setattr(removebg, "RESULT_BYTES_PER_PIXEL", 1)
    removebg_fake.fail_next(200, body=b"\x89PNG" + bytes(1024 * 1024), content_type="image/png", chunked=True)
    error = failure(photo)
    assert "exceeds 120000 bytes" in error.detail and error.billed


def test_an_error_body_is_read_only_up_to_a_limit(removebg_fake, photo):
    removebg_fake.fail_next(400, body=b"x" * (removebg.ERROR_BODY_LIMIT + 1), content_type="text/plain")
    error = failure(photo)
    assert error.message == UNUSABLE and f"over {removebg.ERROR_BODY_LIMIT} bytes" in error.detail
