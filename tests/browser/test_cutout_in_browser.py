"""Background removal in a real browser: pick a photo, watch it being processed, compare, try
backgrounds, unlock, download on several backgrounds, delete. Desktop size, English."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from tests.browser.visitor import DESKTOP, TIMEOUT_MS
from tests.photos import encode, portrait_scene
from unlock.issuing import issue

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

JOB_PATH = re.compile(r"^/jobs/[\w-]+/$")


def test_a_visitor_removes_a_background_and_downloads_it_on_several_backgrounds(visit, held_engine):
    photo = encode(portrait_scene(1200, 900), "JPEG", quality=90)
    visitor = visit(viewport=DESKTOP)
    page = visitor.page
    visitor.goto("/")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("#id_mode_cutout").is_checked()
    visitor.screenshot("home-desktop")
    assert visitor.contrast_failures() == []
    assert visitor.unlabelled_controls() == []

    # The chosen photo is shown before anything is sent.
    visitor.choose_file(photo)
    page.wait_for_selector("#chosen:not([hidden])")
    assert "portrait.jpg" in page.inner_text("#chosen-name")
    assert page.eval_on_selector("#chosen-thumb", "img => img.src.startsWith('blob:')")
    assert not visitor.posts(r"/jobs/$")

    # Record what the upload's progress bar shows, from the moment it starts.
    page.evaluate(
        """() => {
          const bar = document.getElementById("upload-bar");
          const box = document.getElementById("upload-progress");
          new MutationObserver(() => window.__report("progress", box.hidden, bar.value))
            .observe(box, { attributes: true, subtree: true, attributeFilter: ["hidden", "value"] });
        }"""
    )
    page.click("#upload-button")
    page.wait_for_url(lambda url: bool(JOB_PATH.match(urlsplit(url).path)))
    progress = [event for event in visitor.events if event[0] == "progress"]
    assert any(not hidden for _, hidden, _value in progress), "the progress bar was never shown"
    assert max(value for _, _hidden, value in progress) == 100

    # Processing: visible progress, no reload needed to see the result.
    held_engine.started.wait(timeout=30)
    page.wait_for_selector("progress.busy")
    assert "Working on your photo" in page.inner_text("#status")
    assert page.locator("#steps li[aria-current=step]").inner_text() == "Free preview"
    visitor.screenshot("job-processing-desktop")
    page.evaluate("window.__sameDocument = true")
    held_engine.release.set()
    page.wait_for_selector("#stage img", timeout=TIMEOUT_MS)
    page.wait_for_function(
        "document.querySelector('#stage img').complete && document.querySelector('#stage img').naturalWidth > 0"
    )
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded instead of updating itself"
    assert page.inner_text("#status").strip() == "Your preview is ready."
    assert page.get_attribute("#status", "aria-live") == "polite"
    assert page.eval_on_selector(".compare-before img", "img => img.complete && img.naturalWidth > 0")
    assert re.search(r"deleted automatically in (29|30):\d\d", page.inner_text("#countdown"))
    visitor.screenshot("job-ready-desktop")
    assert visitor.contrast_failures() == []
    assert visitor.unlabelled_controls() == []
    assert visitor.images_without_alt() == []

    # The comparison answers the keyboard.
    page.focus("#compare-range")
    for _ in range(5):
        page.keyboard.press("ArrowLeft")
    assert page.input_value("#compare-range") == "45"
    assert "55%" in page.eval_on_selector(".compare-before", "el => el.style.clipPath")
    assert page.eval_on_selector(".compare-handle", "el => el.style.left") == "45%"
    assert page.eval_on_selector("#compare", "el => getComputedStyle(el).outlineStyle") == "solid", "focus must show"
    visitor.screenshot("job-compare-focused-desktop")

    # Backgrounds apply to the preview at once.
    stage_colour = "() => getComputedStyle(document.getElementById('stage')).backgroundColor"
    page.click("label.swatch:has-text('White')")
    assert page.evaluate(stage_colour) == "rgb(255, 255, 255)"
    page.click("label.swatch:has-text('Blue')")
    assert page.evaluate(stage_colour) == "rgb(67, 142, 219)"
    page.fill("#custom-colour", "#00aa55")
    assert page.is_checked("#bg-custom-choice")
    assert page.evaluate(stage_colour) == "rgb(0, 170, 85)"

    # A code that cannot be one is caught before sending; a wrong one is explained by the server.
    page.fill("#id_code", "abc")
    page.click("#unlock-form button[type=submit]")
    assert page.is_visible("#code-problem")
    assert "16 letters and digits" in page.inner_text("#code-problem")
    assert not visitor.posts(r"/unlock$")
    page.fill("#id_code", "2222-3333-4444-5555")
    page.click("#unlock-form button[type=submit]")
    page.wait_for_selector("#unlock-error")
    assert JOB_PATH.match(visitor.path), "the refused code's page should sit at the job's own address"
    assert page.get_attribute("#id_code", "aria-invalid") == "true"

    code = issue(count=1, max_uses=1, expires_at=None, label="t").displayed[0]
    page.fill("#id_code", code.lower())
    page.click("#unlock-form button[type=submit]")
    link = page.wait_for_selector("#download-link", timeout=TIMEOUT_MS)
    assert "Unlocked" in page.inner_text("#status")
    assert link.inner_text() == "Download PNG, transparent background, 1200×900 px"
    visitor.screenshot("job-unlocked-desktop")

    image, name, _ = visitor.download(lambda: page.click("#download-link"))
    assert (name, image.format, image.size, image.mode) == ("cutout-1200x900.png", "PNG", (1200, 900), "RGBA")
    assert image.getchannel("A").getpixel((10, 10)) < 30

    page.click("label.swatch:has-text('White')")
    assert page.get_attribute("#download-link", "href").endswith("?background=white")
    assert link.inner_text() == "Download JPEG, white background, 1200×900 px"
    image, name, _ = visitor.download(lambda: page.click("#download-link"))
    assert (name, image.format, image.size) == ("cutout-1200x900.jpg", "JPEG", (1200, 900))
    assert min(image.getpixel((10, 10))) > 235

    page.fill("#custom-colour", "#00aa55")
    assert page.get_attribute("#download-link", "href").endswith("?background=00AA55")
    assert link.inner_text() == "Download JPEG, background #00AA55, 1200×900 px"
    image, _, _ = visitor.download(lambda: page.click("#download-link"))
    r, g, b = image.getpixel((10, 10))
    assert abs(r - 0) < 12 and abs(g - 170) < 12 and abs(b - 85) < 12

    # Delete now: the photo is gone, and its address says so.
    job_path = visitor.path
    page.click("button:has-text('Delete now')")
    page.wait_for_url(visitor.url("/?deleted=1"))
    assert "have been deleted" in page.inner_text("main")
    response = visitor.goto(job_path)
    assert response.status == 404
    assert "Nothing here" in page.inner_text("h1")

    visitor.assert_no_cookies()
    visitor.assert_clean(allowed_console=("status of 403", "status of 404"))
