"""The whole flow with JavaScript switched off: plain forms, a page that refreshes itself, a link
per background, and still no cookie."""

from __future__ import annotations

import re

import pytest

from tests.browser.visitor import DESKTOP, PHONE, TIMEOUT_MS
from tests.photos import encode, portrait_scene
from unlock.issuing import issue

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_without_javascript_a_visitor_uploads_unlocks_and_downloads(visit):
    photo = encode(portrait_scene(1200, 900, seed=7), "JPEG", quality=90)
    visitor = visit(javascript=False, viewport=DESKTOP)
    page = visitor.page
    visitor.goto("/")
    assert page.get_attribute("html", "class") == "no-js"
    assert page.is_visible("#id_image"), "without scripts the file input itself is the control"
    visitor.screenshot("home-desktop-nojs")

    visitor.choose_file(photo)
    page.click("#upload-button")
    page.wait_for_url(re.compile(r"/jobs/[\w-]+/$"))
    job_path = visitor.path

    # The page refreshes itself (<noscript> meta refresh) until the preview is there.
    page.wait_for_selector("#stage img", timeout=TIMEOUT_MS)
    assert visitor.path == job_path
    assert page.is_visible(".compare-before img") and page.is_visible("#stage img"), "both images, side by side"
    assert not page.is_visible("#compare-range") and not page.is_visible("#backgrounds")
    visitor.screenshot("job-ready-desktop-nojs")

    # A wrong code: the server's message, on a page that still works.
    page.fill("#id_code", "not a code")
    page.click("#unlock-form button[type=submit]")
    assert "16 letters and digits" in page.inner_text("#unlock-error")

    code = issue(count=1, max_uses=1, expires_at=None, label="t").displayed[0]
    page.fill("#id_code", code)
    page.click("#unlock-form button[type=submit]")
    page.wait_for_selector("#download-link", timeout=TIMEOUT_MS)
    assert visitor.path == job_path

    image, name, _ = visitor.download(lambda: page.click("#download-link"))
    assert (name, image.size, image.mode) == ("cutout-1200x900.png", (1200, 900), "RGBA")
    image, name, _ = visitor.download(lambda: page.click("a.download:has-text('white')"))
    assert (name, image.size) == ("cutout-1200x900.jpg", (1200, 900)) and min(image.getpixel((5, 5))) > 235
    page.fill("#bg-hex", "438EDB")
    image, _, _ = visitor.download(lambda: page.click(".custom-colour button"))
    assert image.size == (1200, 900)
    r, g, b = image.getpixel((5, 5))
    assert abs(r - 0x43) < 12 and abs(g - 0x8E) < 12 and abs(b - 0xDB) < 12
    visitor.screenshot("job-unlocked-desktop-nojs")

    page.click("button:has-text('Delete now')")
    page.wait_for_url(visitor.url("/?deleted=1"))
    assert "have been deleted" in page.inner_text("main")
    assert visitor.goto(job_path).status == 404

    visitor.assert_no_cookies()
    # Refused codes and the deleted job answer 400 and 404 on purpose.
    visitor.assert_clean(allowed_console=("status of 400", "status of 404"))


def test_without_javascript_the_phone_layout_fits(visit):
    visitor = visit(javascript=False, viewport=PHONE, phone=True)
    visitor.goto("/")
    assert visitor.horizontal_overflow() == 0
    visitor.assert_clean()
