"""Languages in a real browser, with no cookie at any step: an unprefixed address answers in the
language the browser asks for (no redirect), a chosen prefix holds against the browser's wish
through upload, job page and unlock, and the language links lead to the prefixed addresses."""

from __future__ import annotations

import re

import pytest

from tests.browser.visitor import DESKTOP, PHONE, TIMEOUT_MS
from tests.photos import encode, portrait_scene
from unlock.issuing import issue

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HAN = re.compile(r"[\u4e00-\u9fff]")


def chinese_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(bool(HAN.match(c)) for c in letters) / max(1, len(letters))


@pytest.mark.parametrize(
    ("locale", "language", "other"), [("zh-CN", "zh-hans", "en"), ("en-US", "en", "zh-hans")], ids=["zh", "en"]
)
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_browser_chooses_until_the_visitor_does(visit, locale, language, other, size):
    viewport, phone = (DESKTOP, False) if size == "desktop" else (PHONE, True)
    visitor = visit(locale=locale, viewport=viewport, phone=phone)
    page = visitor.page

    response = visitor.goto("/")
    assert response.status == 200 and response.request.redirected_from is None and visitor.path == "/"
    assert page.get_attribute("html", "lang") == language
    assert "Accept-Language" in response.headers["vary"]
    assert (chinese_share(page.inner_text("main")) > 0.8) == (language == "zh-hans")
    assert page.get_attribute(".languages a", "href") == f"/{other}/"
    assert page.get_attribute("link[rel=alternate][hreflang=x-default]", "href") == visitor.url("/")
    visitor.screenshot(f"languages-home-{size}-{language}")
    visitor.assert_no_cookies()

    # The visitor picks the other language: it holds through upload, job page and a wrong code.
    page.click(f".languages a[hreflang={other}]")
    page.wait_for_url(visitor.url(f"/{other}/"))
    assert page.get_attribute("html", "lang") == other
    assert page.get_attribute("#upload-form", "action") == f"/{other}/jobs/"
    visitor.choose_file(encode(portrait_scene(800, 600, seed=3), "JPEG"))
    page.click("#upload-button")
    page.wait_for_url(re.compile(rf"/{other}/jobs/[\w-]+/$"), timeout=TIMEOUT_MS)
    page.wait_for_selector("#unlock-form", timeout=TIMEOUT_MS)
    assert page.get_attribute("html", "lang") == other
    token_path = visitor.path
    assert page.get_attribute("#unlock-form", "action") == f"{token_path}unlock"
    visitor.screenshot(f"languages-job-{size}-{other}")

    page.fill("#id_code", "ABCD-EFGH-JKMN-PQRS")
    page.click("#unlock-form button[type=submit]")
    page.wait_for_selector("#unlock-error", timeout=TIMEOUT_MS)
    assert page.get_attribute("html", "lang") == other
    code = issue(count=1, max_uses=1, expires_at=None, label="browser").displayed[0]
    page.fill("#id_code", code)
    page.click("#unlock-form button[type=submit]")
    page.wait_for_selector("#download-link, a.download", timeout=TIMEOUT_MS)
    assert visitor.path == token_path and page.get_attribute("html", "lang") == other

    # The unprefixed address still follows the browser; the prefixed ones their own language.
    visitor.goto("/privacy/")
    assert page.get_attribute("html", "lang") == language
    visitor.goto(f"/{other}/privacy/")
    assert page.get_attribute("html", "lang") == other
    visitor.assert_no_cookies()
    visitor.assert_clean(allowed_console=("status of 403", "status of 400"))
