"""The signed result link: https only (plain http only when the API itself is, as a local fake is),
fetched into memory within a size cap, no redirects followed."""

import pytest
from PIL import Image

from segmentation.providers import dashscope as client
from tests.fakes.dashscope import FakeDashScope, erase_people

ALIBABA = "https://dashscope-intl.aliyuncs.com/api/v1"


def test_an_http_result_url_is_refused_when_the_api_is_https(dashscope_fake):
    url = dashscope_fake.publish(Image.new("RGB", (600, 400)))
    assert url.startswith("http://")
    dashscope = client.DashScopeClient(api_url=ALIBABA, api_key="sk-real-looking")

    with pytest.raises(client.DashScopeError) as caught:
        dashscope.download(url)

    assert "'http'" in caught.value.operator_detail
    assert dashscope_fake.downloads == []


def test_an_http_result_url_is_fetched_when_the_api_is_plain_http(dashscope_fake):
    url = dashscope_fake.publish(Image.new("RGB", (600, 400)))
    dashscope = client.DashScopeClient()

    data = dashscope.download(url)

    assert data.startswith(b"\x89PNG")
    assert len(dashscope_fake.downloads) == 1


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x.png", "//example.com/x.png", "x.png", "https:///x.png"]
)
def test_other_schemes_are_always_refused(url):
    with pytest.raises(client.DashScopeError):
        client.check_result_url(url, "http://127.0.0.1:8902/api/v1")


def test_an_https_result_url_is_accepted():
    client.check_result_url(
        "https://dashscope-result-sgp.oss-ap-southeast-1.aliyuncs.com/x.png?Expires=1&Signature=s", ALIBABA
    )


def test_a_job_whose_answer_names_a_refused_url_downloads_nothing(dashscope_fake):
    dashscope_fake.result_url = "file:///etc/passwd"

    with pytest.raises(client.DashScopeError):
        erase_people()

    assert len(dashscope_fake.generation_calls) == 1
    assert dashscope_fake.downloads == []


def test_a_result_above_the_size_cap_is_refused(dashscope_fake, monkeypatch):
    monkeypatch.setattr(client, "MAX_RESULT_BYTES", 1000)

    with pytest.raises(client.DashScopeError) as caught:
        erase_people()

    assert "fetch the result" in caught.value.visitor_message
    assert len(dashscope_fake.generation_calls) == 1


def test_a_result_that_is_not_an_image_is_refused(dashscope_fake):
    # The fake's own API path answers a GET with a JSON 404 body: not an image, not a 200.
    dashscope_fake.result_url = dashscope_fake.base_url + "/not-a-result"

    with pytest.raises(client.DashScopeError) as caught:
        erase_people()

    assert "HTTP 404" in caught.value.operator_detail
    assert "Signature" not in caught.value.operator_detail


def test_the_result_signature_never_reaches_the_operator_detail(dashscope_fake):
    dashscope_fake.fail_download_next(403, times=1)

    with pytest.raises(client.DashScopeError) as caught:
        erase_people()

    assert "/results/" in caught.value.operator_detail
    assert "Signature" not in caught.value.operator_detail and "Expires" not in caught.value.operator_detail


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_from_the_result_url_is_refused_and_not_followed(dashscope_fake, status):
    with FakeDashScope() as elsewhere:
        target = elsewhere.publish(Image.new("RGB", (600, 400)))  # a real image, were it fetched
        dashscope_fake.redirect_download_next(target, status)

        with pytest.raises(client.DashScopeError) as caught:
            erase_people()

        assert elsewhere.requests == []
    assert f"HTTP {status}" in caught.value.operator_detail
    assert "Signature" not in caught.value.operator_detail
    assert len(dashscope_fake.generation_calls) == 1
    assert [download.status for download in dashscope_fake.downloads] == [status]  # not repeated either
