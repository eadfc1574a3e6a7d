"""The pages around the flow: checks in the browser before uploading, the server's refusals shown
in place, error and legal pages (languages: test_languages_in_browser)."""

from __future__ import annotations

import re

import pytest

from tests.browser.visitor import DESKTOP, PHONE, TIMEOUT_MS
from tests.photos import encode, gradient, portrait_scene

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_browser_refuses_wrong_types_and_large_files_before_sending(visit, settings):
    settings.MAX_UPLOAD_BYTES = 50_000
    visitor = visit()
    page = visitor.page
    visitor.goto("/")

    visitor.choose_file(b"GIF89a" + bytes(100), name="cat.gif", mime="image/gif")
    assert page.inner_text("#client-error") == "GIF files are not supported. Please upload a JPEG, PNG or WebP photo."
    assert page.is_hidden("#chosen")

    visitor.drop_file(b"\x00\x00\x00\x18ftypheic" + bytes(100), name="IMG_0001.HEIC", mime="image/heic")
    assert "On an iPhone" in page.inner_text("#client-error")

    large = encode(portrait_scene(600, 450), "PNG")
    assert len(large) > settings.MAX_UPLOAD_BYTES
    visitor.choose_file(large, name="big.png", mime="image/png")
    assert re.fullmatch(
        r"This file is larger than [\d.]+\sKB\. Please choose a smaller photo\.", page.inner_text("#client-error")
    )
    page.click("#upload-button")
    assert page.is_visible("#client-error")

    assert not visitor.posts(r"/jobs/$"), "nothing may be sent when the browser already knows the answer"
    visitor.assert_clean()


def test_a_refusal_from_the_server_is_shown_on_the_upload_page(visit):
    visitor = visit()
    page = visitor.page
    visitor.goto("/")
    visitor.choose_file(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10, name="broken.png", mime="image/png")
    page.click("#upload-button")
    page.wait_for_selector("#client-error:not([hidden])")
    assert "could not read" in page.inner_text("#client-error").lower()
    assert visitor.path == "/"
    assert page.is_enabled("#upload-button") and page.is_hidden("#upload-progress")
    visitor.assert_clean(allowed_console=("status of 400",))


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_error_and_privacy_pages_read_well(visit, size):
    viewport, phone = (DESKTOP, False) if size == "desktop" else (PHONE, True)
    visitor = visit(viewport=viewport, phone=phone)
    page = visitor.page
    response = visitor.goto("/jobs/no-such-photo/")
    assert response.status == 404
    assert page.inner_text("h1") == "Nothing here"
    assert page.get_attribute("a.button.primary", "href") == "/"
    assert visitor.horizontal_overflow() == 0
    assert visitor.contrast_failures() == []
    visitor.screenshot(f"error-{size}")

    visitor.goto("/privacy/")
    assert page.inner_text("h1") == "Privacy policy"
    assert visitor.horizontal_overflow() == 0
    assert visitor.contrast_failures() == []
    visitor.screenshot(f"privacy-{size}")

    page.click(".languages a[hreflang=zh-hans]")
    page.wait_for_url(visitor.url("/zh-hans/privacy/"))
    assert page.get_attribute("html", "lang") == "zh-hans"
    visitor.screenshot(f"privacy-{size}-zh")
    visitor.assert_no_cookies()
    visitor.assert_clean(allowed_console=("status of 404",))


def test_a_photo_without_a_person_fails_with_an_explanation_and_a_way_on(visit):
    visitor = visit()
    page = visitor.page
    visitor.goto("/")
    visitor.choose_file(encode(gradient(800, 600), "JPEG"), name="sky.jpg")
    page.click("#upload-button")
    page.wait_for_selector("#status .message.error", timeout=TIMEOUT_MS)
    assert "person" in page.inner_text("#status .message.error")
    assert page.get_attribute("#status a.button", "href") == "/"
    assert page.locator("#steps li.failed").count() == 1
    assert page.locator("#unlock-form").count() == 0
    assert page.locator("#job-actions a").count() == 0, "one way on, not two"
    visitor.screenshot("job-failed-desktop")
    assert visitor.contrast_failures() == []
    visitor.assert_clean()
