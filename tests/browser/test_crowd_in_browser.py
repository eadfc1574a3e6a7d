"""Passer-by removal in a real browser, dropped onto the page and unlocked with the keyboard only."""

from __future__ import annotations

import pytest

from tests.browser.visitor import DESKTOP, TIMEOUT_MS, tab_to
from tests.photos import encode, portrait_scene
from unlock.issuing import issue

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_dropped_photo_has_its_passers_by_removed_and_is_unlocked_by_keyboard_alone(visit):
    photo = encode(portrait_scene(1200, 900, seed=3), "JPEG", quality=90)
    visitor = visit(viewport=DESKTOP)
    page = visitor.page
    visitor.goto("/")

    page.click("label.tool:has-text('Remove passers-by')")
    assert page.is_checked("#id_mode_crowd")
    visitor.drop_file(photo, name="street.jpg")
    assert "street.jpg" in page.inner_text("#chosen-name")
    assert page.eval_on_selector(
        "#id_image", "input => input.files.length === 1 && input.files[0].name === 'street.jpg'"
    )
    page.click("#upload-button")

    page.wait_for_selector("#unlock-form", timeout=TIMEOUT_MS)
    assert page.inner_text("h1") == "Remove passers-by"
    assert page.locator("#backgrounds").count() == 0, "a crowd result has no transparency to put a colour behind"
    assert "erased" in page.get_attribute("#stage img", "alt")
    page.wait_for_function("document.querySelector('#stage img').naturalWidth > 0")
    visitor.screenshot("job-ready-crowd-desktop")

    # Keyboard only: Tab to the code, type it, Enter; then Tab to the download and Enter.
    code = issue(count=1, max_uses=1, expires_at=None, label="t").displayed[0]
    page.locator("body").focus()
    tab_to(page, "#id_code")
    page.keyboard.type(code)
    page.keyboard.press("Enter")
    page.wait_for_selector("#download-link", timeout=TIMEOUT_MS)
    assert page.inner_text("#download-link") == "JPEG, 1200×900 px"
    tab_to(page, "#download-link")
    image, name, _ = visitor.download(lambda: page.keyboard.press("Enter"))
    assert (name, image.format, image.size) == ("crowd-1200x900.jpg", "JPEG", (1200, 900))

    visitor.assert_no_cookies()
    visitor.assert_clean()
