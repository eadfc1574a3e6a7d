"""Who stays, in a real browser ([T2.2]): the people outlined and numbered on the preview, a tap
that keeps or lets go of someone, "Update preview" redrawing it in place; the same with the
keyboard alone, in Chinese on a phone; the plain form without JavaScript; and a changed choice
after unlocking, which makes the download again without another code.

The photo is OpenCV's basketball1.png (two players; apt-get install opencv-doc): a real photo in
which the local cutout keeps both."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.browser.visitor import DESKTOP, PHONE, TIMEOUT_MS
from tests.test_people import scene_with
from unlock.issuing import issue
from unlock.models import UnlockCode

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BASKETBALL = Path("/usr/share/doc/opencv-doc/examples/data/basketball1.png")
JOB_PATH = re.compile(r"/jobs/[\w-]+/$")
REDRAWN = "Your preview has been redrawn for your choice of people."


@pytest.fixture
def players() -> bytes:
    if not BASKETBALL.exists():
        pytest.skip("OpenCV's sample photos are not installed (apt-get install opencv-doc)")
    return BASKETBALL.read_bytes()


def upload(visitor, photo: bytes, home: str = "/") -> None:
    visitor.goto(home)
    visitor.choose_file(photo, name="players.png", mime="image/png")
    visitor.page.click("#upload-button")
    visitor.page.wait_for_url(JOB_PATH)
    visitor.page.wait_for_selector("#people-form", timeout=TIMEOUT_MS)


def kept_in_status(visitor) -> list[bool]:
    status = visitor.page.evaluate(
        "fetch(document.getElementById('job').dataset.statusUrl, {credentials: 'omit'}).then(r => r.json())"
    )
    return [person["kept"] for person in status["people"]]


def until(page, expression: str, timeout_ms: int = TIMEOUT_MS) -> None:
    """Poll `expression` from here: the CSP forbids the eval that page.wait_for_function polls with."""
    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false: {expression}"
        page.wait_for_timeout(100)


def status_says(page, text: str) -> None:
    page.locator("#status", has_text=text).wait_for(timeout=TIMEOUT_MS)


def preview_loaded(page) -> None:
    until(
        page, "document.querySelector('#stage img').complete && document.querySelector('#stage img').naturalWidth > 0"
    )


def test_a_tap_on_a_person_toggles_them_and_update_redraws_the_preview_in_place(visit, players):
    visitor = visit(viewport=DESKTOP)
    page = visitor.page
    upload(visitor, players)
    preview_loaded(page)
    page.evaluate("window.__sameDocument = true")

    outlines = page.locator("#people-overlay .person-outline")
    assert outlines.count() == 2
    assert sorted(outlines.all_inner_texts()) == ["1", "2"]
    assert page.locator(".person-outline.kept").count() == 2
    # Each outline sits on its person: inside the picture, and a sizeable part of it.
    picture = page.locator("#compare").bounding_box()
    for index in range(2):
        box = outlines.nth(index).bounding_box()
        assert picture["x"] - 3 <= box["x"] and box["x"] + box["width"] <= picture["x"] + picture["width"] + 3
        assert box["height"] > 0.5 * picture["height"]
    visitor.screenshot("people-outlined-desktop")
    assert visitor.contrast_failures() == []
    assert visitor.unlabelled_controls() == []
    assert visitor.images_without_alt() == []

    page.click(".person-outline:has-text('2')")
    assert not page.is_checked("#keep-1") and page.is_checked("#keep-0")
    assert page.locator(".person-outline.gone").inner_text() == "2"
    assert "Person 2 will be cut away." in page.inner_text("#people-live")
    visitor.screenshot("people-one-let-go-desktop")
    # A second tap brings them back; a third lets them go again.
    page.click(".person-outline:has-text('2')")
    assert page.is_checked("#keep-1") and "Person 2 stays in the cutout." in page.inner_text("#people-live")
    page.click(".person-outline:has-text('2')")

    alpha_before = preview_alpha(page)
    page.click("#people-submit")
    status_says(page, REDRAWN)
    preview_loaded(page)
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded instead of updating itself"
    assert page.get_attribute("#stage img", "src").endswith("?v=1")
    assert kept_in_status(visitor) == [True, False]
    assert not page.is_checked("#keep-1") and page.locator(".person-outline.gone").count() == 1
    # The second player is gone from the preview: fewer opaque pixels than before.
    assert preview_alpha(page) < 0.8 * alpha_before
    assert "You can change this 19 more times." in page.inner_text("#people")
    visitor.screenshot("people-redrawn-desktop")

    # Nobody kept: caught before sending.
    page.click(".person-outline:has-text('1')")
    page.click("#people-submit")
    assert page.inner_text("#people-problem") == "Please keep at least one person."
    assert len(visitor.posts(r"/people$")) == 1

    visitor.assert_no_cookies()
    visitor.assert_clean()


def preview_alpha(page) -> float:
    """Share of the preview's pixels that are more opaque than not, read in the page."""
    return page.evaluate(
        """() => {
          const img = document.querySelector('#stage img');
          const canvas = document.createElement('canvas');
          canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
          const context = canvas.getContext('2d');
          context.drawImage(img, 0, 0);
          const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
          let opaque = 0;
          for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 127) opaque++;
          return opaque / (pixels.length / 4);
        }"""
    )


def test_with_the_keyboard_alone_in_chinese_on_a_phone(visit, players):
    visitor = visit(viewport=PHONE, phone=True, locale="zh-CN")
    page = visitor.page
    upload(visitor, players, home="/zh-hans/")
    preview_loaded(page)
    assert "保留哪些人" in page.inner_text("#people")
    assert page.inner_text("#people-submit") == "更新预览"
    assert visitor.horizontal_overflow() == 0
    visitor.screenshot("people-outlined-phone-zh")
    assert visitor.contrast_failures() == []

    # From the comparison, Tab reaches the first person's checkbox, the outline on the preview is
    # skipped (it is a pointer's shortcut), and the focus shows.
    page.focus("#compare-range")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "keep-0"
    ring = page.eval_on_selector("label[for=keep-0]", "el => getComputedStyle(el).outlineStyle")
    assert ring == "solid", "the focused person must show it"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "keep-1"
    page.keyboard.press("Space")
    assert not page.is_checked("#keep-1")
    assert page.inner_text("#people-live").startswith("第 2 个人将被去掉。")
    assert page.locator(".person-outline.gone").inner_text() == "2"
    visitor.screenshot("people-keyboard-phone-zh")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "people-submit"
    page.keyboard.press("Enter")

    status_says(page, "已按您选择的人重新生成预览")
    assert page.evaluate("document.activeElement.id") == "people-submit", "the focus stays where it was"
    assert kept_in_status(visitor) == [True, False]
    assert visitor.horizontal_overflow() == 0
    visitor.screenshot("people-redrawn-phone-zh")
    visitor.assert_no_cookies()
    visitor.assert_clean()


def test_without_javascript_a_list_of_people_with_their_pictures_and_a_button(visit, players):
    visitor = visit(javascript=False, viewport=DESKTOP)
    page = visitor.page
    upload(visitor, players)
    job_path = visitor.path
    assert not page.is_visible("#people-overlay")
    pictures = page.locator(".people-list img")
    assert pictures.count() == 2
    until(page, "[...document.querySelectorAll('.people-list img')].every(i => i.naturalWidth > 0)")
    assert page.inner_text("label[for=keep-0]").strip().endswith("Person 1")
    assert page.is_checked("#keep-0") and page.is_checked("#keep-1")
    visitor.screenshot("people-list-desktop-nojs")

    page.uncheck("#keep-0")
    page.click("#people-submit")
    # 303 to the job page, which refreshes itself until the redraw is done.
    status_says(page, REDRAWN)
    assert visitor.path == job_path
    assert not page.is_checked("#keep-0") and page.is_checked("#keep-1")

    # Nobody: the server explains.
    page.uncheck("#keep-1")
    page.click("#people-submit")
    assert page.inner_text("#choice-error") == "Please keep at least one person."
    visitor.assert_no_cookies()
    visitor.assert_clean(allowed_console=("status of 400",))


def test_after_unlocking_a_changed_choice_makes_the_download_again_without_another_code(visit, players):
    visitor = visit(viewport=DESKTOP)
    page = visitor.page
    upload(visitor, players)
    code = issue(count=1, max_uses=1, expires_at=None, label="t").displayed[0]
    page.fill("#id_code", code)
    page.click("#unlock-form button[type=submit]")
    page.wait_for_selector("#download-link", timeout=TIMEOUT_MS)
    both, _, _ = visitor.download(lambda: page.click("#download-link"))
    assert "Your full-resolution image follows, without another code." in page.inner_text("#people")

    page.click(".person-outline:has-text('1')")
    page.click("#people-submit")
    status_says(page, "Redrawn for your choice of people")
    page.wait_for_selector("#download-link")
    one, name, _ = visitor.download(lambda: page.click("#download-link"))
    assert name == "cutout-640x480.png" and one.size == both.size == (640, 480)
    opaque = [np.count_nonzero(np.asarray(image.getchannel("A")) > 127) for image in (both, one)]
    assert opaque[1] < 0.8 * opaque[0], opaque
    assert UnlockCode.objects.get().used == 1
    visitor.screenshot("people-after-unlock-desktop")
    visitor.assert_no_cookies()
    visitor.assert_clean()


def difference_from_the_original(page, box: list[float]) -> float:
    """Mean difference (0–255) between the preview and the uploaded photo inside `box` (fractions)."""
    return page.evaluate(
        """(box) => {
          const read = (img) => {
            const canvas = document.createElement('canvas');
            canvas.width = 200; canvas.height = 150;
            const context = canvas.getContext('2d');
            context.drawImage(img, 0, 0, 200, 150);
            const [x, y, w, h] = [box[0] * 200, box[1] * 150, box[2] * 200, box[3] * 150].map(Math.round);
            return context.getImageData(x, y, Math.max(1, w), Math.max(1, h)).data;
          };
          const after = read(document.querySelector('#stage img'));
          const before = read(document.querySelector('.compare-before img'));
          let sum = 0, count = 0;
          for (let i = 0; i < after.length; i += 4) {
            for (let c = 0; c < 3; c++) sum += Math.abs(after[i + c] - before[i + c]);
            count += 3;
          }
          return sum / count;
        }""",
        box,
    )


def test_the_crowd_brings_back_a_passer_by_with_a_tap(visit):
    from tests.photos import encode
    from tests.test_local_crowd import crowd_scene

    scene, _empty, _subject, _passer_by = crowd_scene("landscape", (300, 1250, 450))
    visitor = visit(viewport=DESKTOP)
    page = visitor.page
    visitor.goto("/")
    page.check("#id_mode_crowd")
    visitor.choose_file(encode(Image.fromarray(scene), "JPEG", quality=92))
    page.click("#upload-button")
    page.wait_for_url(JOB_PATH)
    page.wait_for_selector("#people-form", timeout=TIMEOUT_MS)
    preview_loaded(page)
    page.evaluate("window.__sameDocument = true")
    assert "the others are erased" in page.inner_text("#people")

    assert page.locator(".person-outline").count() == 2
    erased = page.locator(".person-outline.gone")
    assert erased.count() == 1, "the passer-by starts erased"
    number = erased.inner_text()
    box = next(
        [float(value) for value in element.get_attribute("data-box").split(",")]
        for element in page.locator("input[name=keep]").element_handles()
        if element.get_attribute("data-number") == number
    )
    gone_difference = difference_from_the_original(page, box)
    visitor.screenshot("people-crowd-desktop")

    erased.click()
    assert f"Person {number} stays in the photo." in page.inner_text("#people-live")
    page.click("#people-submit")
    status_says(page, REDRAWN)
    preview_loaded(page)
    assert page.evaluate("window.__sameDocument === true")
    assert kept_in_status(visitor) == [True, True]
    # The passer-by is back: the preview matches the photo where they stand.
    assert difference_from_the_original(page, box) < 0.5 * gone_difference
    visitor.screenshot("people-crowd-redrawn-desktop")
    visitor.assert_no_cookies()
    visitor.assert_clean()


def test_with_remove_bg_a_choice_it_cannot_make_is_explained_and_nothing_changes(visit, settings, removebg_fake):
    """remove.bg left a stranger out of its cutout: ticking them cannot bring them back. The page
    says so after the redraw, the choice stays as it was, and no call is made."""
    from tests.photos import encode
    from tests.test_removebg_choice import LEFT_OUT, PLACEMENTS, SIZE

    settings.BACKGROUND_ENGINE, settings.REMOVEBG_FULL_RESULT = "removebg", "on_unlock"
    settings.PAID_UPLOADS_PER_MINUTE = 0
    removebg_fake.leave_out = [LEFT_OUT]
    pixels, _truths = scene_with(PLACEMENTS, kind="sky", size=SIZE)
    visitor = visit(viewport=DESKTOP)
    page = visitor.page
    visitor.goto("/")
    visitor.choose_file(encode(Image.fromarray(pixels), "JPEG", quality=92))
    page.click("#upload-button")
    page.wait_for_url(JOB_PATH)
    page.wait_for_selector("#people-form", timeout=TIMEOUT_MS)
    assert "Processed by remove.bg." in page.inner_text(".engine")
    calls = len(removebg_fake.requests)
    stranger = page.locator(".person-outline.gone")
    assert stranger.count() == 1
    number = stranger.inner_text()

    stranger.click()
    page.click("#people-submit")
    status_says(page, "we cannot add anyone it left out")
    assert "The previous choice of people stays." in page.inner_text("#status")
    assert not page.is_checked(f"#keep-{int(number) - 1}"), "the page shows the choice that holds"
    assert kept_in_status(visitor).count(False) == 1
    assert len(removebg_fake.requests) == calls
    visitor.assert_no_cookies()
    visitor.assert_clean()
