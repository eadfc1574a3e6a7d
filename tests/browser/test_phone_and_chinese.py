"""A phone, in Simplified Chinese: a photo pasted from the clipboard, the whole page in Chinese,
nothing wider than the screen."""

from __future__ import annotations

import re

import pytest

from tests.browser.visitor import PHONE, TIMEOUT_MS
from tests.photos import encode, portrait_scene
from unlock.issuing import issue

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HAN = re.compile(r"[\u4e00-\u9fff]")


def chinese_share(text: str) -> float:
    """Share of Han characters among the letters of a text: English left over shows up here."""
    letters = [c for c in text if c.isalpha()]
    return sum(bool(HAN.match(c)) for c in letters) / max(1, len(letters))


def test_a_phone_visitor_pastes_a_photo_and_gets_everything_in_chinese(visit, held_engine):
    photo = encode(portrait_scene(900, 1200, seed=5), "PNG")
    visitor = visit(viewport=PHONE, phone=True, locale="zh-CN")
    page = visitor.page
    visitor.goto("/zh-hans/")
    assert page.get_attribute("html", "lang") == "zh-hans"
    assert chinese_share(page.inner_text("main")) > 0.8
    assert visitor.horizontal_overflow() == 0
    visitor.screenshot("home-phone-zh")
    assert visitor.contrast_failures() == []

    visitor.paste_file(photo, name="image.png", mime="image/png")
    assert page.is_visible("#chosen")
    page.click("#upload-button")
    page.wait_for_url(re.compile(r"/zh-hans/jobs/[\w-]+/$"))
    page.wait_for_selector("progress.busy")
    assert chinese_share(page.inner_text("main")) > 0.8
    assert visitor.horizontal_overflow() == 0
    visitor.screenshot("job-processing-phone-zh")
    held_engine.release.set()

    page.wait_for_selector("#stage img", timeout=TIMEOUT_MS)
    page.wait_for_function("document.querySelector('#stage img').naturalWidth > 0")
    assert chinese_share(page.inner_text("main")) > 0.8, page.inner_text("main")
    assert visitor.horizontal_overflow() == 0
    visitor.screenshot("job-ready-phone-zh")
    assert visitor.contrast_failures() == []

    # A tap on the comparison moves it there.
    box = page.locator("#compare").bounding_box()
    page.tap("#compare-range", position={"x": box["width"] * 0.2, "y": box["height"] / 2})
    assert int(page.input_value("#compare-range")) < 35

    page.click("label.swatch:has-text('红色')")
    assert page.evaluate("getComputedStyle(document.getElementById('stage')).backgroundColor") == "rgb(190, 0, 0)"

    page.fill("#id_code", "0000")
    page.click("#unlock-form button[type=submit]")
    assert HAN.search(page.inner_text("#code-problem")), "the browser-side message is in Chinese too"

    code = issue(count=1, max_uses=1, expires_at=None, label="t").displayed[0]
    page.fill("#id_code", code)
    page.click("#unlock-form button[type=submit]")
    link = page.wait_for_selector("#download-link", timeout=TIMEOUT_MS)
    page.click("label.swatch:has-text('红色')")
    assert "900×1200" in link.inner_text() and HAN.search(link.inner_text())
    assert visitor.horizontal_overflow() == 0
    visitor.screenshot("job-unlocked-phone-zh")
    image, _, _ = visitor.download(lambda: link.click())
    assert image.size == (900, 1200) and image.format == "JPEG"

    page.click("button:has-text('立即删除')")
    page.wait_for_url(visitor.url("/zh-hans/?deleted=1"))
    assert "已从我们的服务器上删除" in page.inner_text("main")

    visitor.assert_no_cookies()
    visitor.assert_clean()
