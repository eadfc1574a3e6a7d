"""The signed result link: https on an OSS host of the API's region only (against a local fake, the
fake's own host), fetched into memory within a size cap, no redirects followed."""

import pytest
from PIL import Image

from segmentation.providers import dashscope as client
from segmentation.providers.http import ProviderError
from tests.fakes.dashscope import FakeDashScope, erase_people

ALIBABA = "https://dashscope-intl.aliyuncs.com/api/v1"
BEIJING = "https://dashscope.aliyuncs.com/api/v1"
SIGNED = "/1d/33/20250415/8928fb36/result.png?Expires=1&OSSAccessKeyId=LTAI&Signature=s"


def test_an_http_result_url_is_refused_when_the_api_is_https(dashscope_fake):
    url = dashscope_fake.publish(Image.new("RGB", (600, 400)))
    assert url.startswith("http://")
    dashscope = client.DashScopeClient(api_url=ALIBABA, api_key="sk-real-looking")

    with pytest.raises(ProviderError) as caught:
        dashscope.download(url)

    assert "'http'" in caught.value.detail
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
    with pytest.raises(ProviderError):
        client.check_result_url(url, "http://127.0.0.1:8902/api/v1")


def test_an_https_result_url_is_accepted():
    client.check_result_url(
        "https://dashscope-result-sgp.oss-ap-southeast-1.aliyuncs.com/x.png?Expires=1&Signature=s", ALIBABA
    )


def test_a_job_whose_answer_names_a_refused_url_downloads_nothing(dashscope_fake):
    dashscope_fake.result_url = "file:///etc/passwd"

    with pytest.raises(ProviderError):
        erase_people()

    assert len(dashscope_fake.generation_calls) == 1
    assert dashscope_fake.downloads == []


def test_a_result_above_the_size_cap_is_refused(dashscope_fake, monkeypatch):
    monkeypatch.setattr(client, "MAX_RESULT_BYTES", 1000)

    with pytest.raises(ProviderError) as caught:
        erase_people()

    assert caught.value.message == "result_unavailable" and caught.value.billed
    assert len(dashscope_fake.generation_calls) == 1


def test_a_result_that_is_not_an_image_is_refused(dashscope_fake):
    # The fake's own API path answers a GET with a JSON 404 body: not an image, not a 200.
    dashscope_fake.result_url = dashscope_fake.base_url + "/not-a-result"

    with pytest.raises(ProviderError) as caught:
        erase_people()

    assert "HTTP 404" in caught.value.detail
    assert "Signature" not in caught.value.detail


def test_the_result_signature_never_reaches_the_operator_detail(dashscope_fake):
    dashscope_fake.fail_download_next(403, times=1)

    with pytest.raises(ProviderError) as caught:
        erase_people()

    assert "/results/" in caught.value.detail
    assert "Signature" not in caught.value.detail and "Expires" not in caught.value.detail


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_from_the_result_url_is_refused_and_not_followed(dashscope_fake, status):
    with FakeDashScope() as elsewhere:
        target = elsewhere.publish(Image.new("RGB", (600, 400)))  # a real image, were it fetched
        dashscope_fake.redirect_download_next(target, status)

        with pytest.raises(ProviderError) as caught:
            erase_people()

        assert elsewhere.requests == []
    assert f"HTTP {status}" in caught.value.detail
    assert "Signature" not in caught.value.detail
    assert len(dashscope_fake.generation_calls) == 1
    assert [download.status for download in dashscope_fake.downloads] == [status]  # not repeated either


def test_a_result_on_another_host_is_refused_before_any_request(dashscope_fake):
    # Another server (on another loopback address, so another host) holds a real image; the fake's
    # answer names it. Nothing may be fetched from there.
    with FakeDashScope(host="127.0.0.2") as elsewhere:
        dashscope_fake.result_url = elsewhere.publish(Image.new("RGB", (600, 400)))

        with pytest.raises(ProviderError) as caught:
            erase_people()

        assert elsewhere.requests == []
    assert caught.value.message == "result_unavailable" and caught.value.billed
    assert "127.0.0.2" in caught.value.detail and "Signature" not in caught.value.detail
    assert len(dashscope_fake.generation_calls) == 1 and dashscope_fake.downloads == []


@pytest.mark.parametrize(
    ("api", "host"),
    [
        (ALIBABA, "dashscope-result-sgp.oss-ap-southeast-1.aliyuncs.com"),
        (BEIJING, "dashscope-result-bj.oss-cn-beijing.aliyuncs.com"),
        (BEIJING, "dashscope-result-sz.oss-cn-shenzhen.aliyuncs.com"),
        (BEIJING, "dashscope-result-wlcb-acdr-1.oss-cn-wulanchabu-acdr-1.aliyuncs.com"),
        (BEIJING, "dashscope-result-sh.oss-accelerate.aliyuncs.com"),
    ],
)
def test_results_on_the_regions_own_storage_are_accepted(api, host):
    client.check_result_url(f"https://{host}{SIGNED}", api)


@pytest.mark.parametrize(
    ("api", "url"),
    [
        (ALIBABA, "https://dashscope-result-bj.oss-cn-beijing.aliyuncs.com"),  # another region
        (BEIJING, "https://dashscope-result-sgp.oss-ap-southeast-1.aliyuncs.com"),
        (ALIBABA, "https://attacker.oss-ap-southeast-1.aliyuncs.com"),  # not DashScope's bucket
        (ALIBABA, "https://dashscope-result-sgp.oss-ap-southeast-1.aliyuncs.com.example.net"),
        (ALIBABA, "https://example.net"),
        (ALIBABA, "https://169.254.169.254"),  # a cloud metadata service
        (ALIBABA, "https://127.0.0.1"),
        (ALIBABA, "http://dashscope-result-sgp.oss-ap-southeast-1.aliyuncs.com"),  # not https
        ("http://127.0.0.1:8902/api/v1", "http://127.0.0.2:8902"),  # the fake's API, another host
        ("http://127.0.0.1:8902/api/v1", "https://dashscope-result-sgp.oss-ap-southeast-1.aliyuncs.com"),
    ],
)
def test_results_anywhere_else_are_refused(api, url):
    with pytest.raises(ProviderError) as caught:
        client.check_result_url(url + SIGNED, api)

    assert caught.value.message == "result_unavailable"
    assert "Signature" not in caught.value.detail
