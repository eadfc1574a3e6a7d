"""ID photos in a real browser, with and without JavaScript, in English and Chinese, on a desktop
and a phone: pick the tool and a size, see the framed preview with its guide, try backgrounds,
unlock, download the photo, a print sheet and a small file for an online form."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from tests.browser.visitor import DESKTOP, PHONE, TIMEOUT_MS
from tests.photos import encode, id_portrait
from unlock.issuing import issue

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TEXT = {
    "en": {"prefix": "", "tool": "ID photo", "ready": "Your preview is ready.", "blue": "Blue"},
    "zh-hans": {"prefix": "/zh-hans", "tool": "证件照", "ready": "预览已准备好", "blue": "蓝色"},
}


@pytest.mark.parametrize(
    ("javascript", "language", "device"),
    [(True, "en", "desktop"), (True, "zh-hans", "phone"), (False, "en", "phone"), (False, "zh-hans", "desktop")],
)
def test_a_visitor_makes_an_id_photo(visit, javascript, language, device):
    text = TEXT[language]
    phone = device == "phone"
    visitor = visit(javascript=javascript, viewport=PHONE if phone else DESKTOP, phone=phone)
    page = visitor.page
    tag = f"{language}-{device}{'' if javascript else '-nojs'}"
    visitor.goto(text["prefix"] + "/")
    assert text["tool"] in page.inner_text("label[for=id_mode_idphoto]")
    assert visitor.horizontal_overflow() == 0
    visitor.screenshot(f"idphoto-home-{tag}")

    # Picking a size picks the tool (with scripts); without them the visitor picks both.
    page.select_option("#id_spec", "cn-passport")
    if javascript:
        assert page.is_checked("#id_mode_idphoto")
    else:
        page.check("#id_mode_idphoto")
    visitor.choose_file(encode(id_portrait(), "JPEG", quality=90))
    page.click("#upload-button")
    page.wait_for_url(re.compile(r"/jobs/[\w-]+/$"))
    page.wait_for_selector("#stage img", timeout=TIMEOUT_MS)
    page.wait_for_function("document.querySelector('#stage img').complete", timeout=TIMEOUT_MS)
    assert text["ready"] in page.inner_text("#status")
    size = page.eval_on_selector("#stage img", "img => [img.naturalWidth, img.naturalHeight]")
    assert size == [390, 567], "the preview is the framed ID photo"
    assert page.is_visible("#guide ellipse") and page.locator("#guide line").count() == 1  # a line has no height
    stage_colour = "() => getComputedStyle(document.getElementById('stage')).backgroundColor"
    assert page.evaluate(stage_colour) == "rgb(255, 255, 255)"  # the Chinese passport's white
    if javascript:
        page.click(f"label.swatch:has-text('{text['blue']}')")
        assert page.evaluate(stage_colour) == "rgb(67, 142, 219)"
    else:
        assert not page.is_visible("#backgrounds")
    assert visitor.horizontal_overflow() == 0
    assert visitor.unlabelled_controls() == [] and visitor.images_without_alt() == []
    visitor.screenshot(f"idphoto-job-{tag}")

    code = issue(count=1, max_uses=1, expires_at=None, label="t").displayed[0]
    page.fill("#id_code", code)
    page.click("#unlock-form button[type=submit]")
    page.wait_for_selector("#id-download-button", timeout=TIMEOUT_MS)
    visitor.screenshot(f"idphoto-unlocked-{tag}")

    # One photo on the background picked (blue with scripts, the standard white without).
    if javascript:
        page.click(f"label.swatch:has-text('{text['blue']}')")
        assert page.evaluate(stage_colour) == "rgb(67, 142, 219)"
    image, name, data = visitor.download(lambda: page.click("#id-download-button"))
    assert (name, image.format, image.size) == ("idphoto-cn-passport-390x567.jpg", "JPEG", (390, 567))
    assert image.info["dpi"] == (300, 300)
    corner = image.convert("RGB").getpixel((4, 4))
    assert corner[2] > 200 and (corner[0] < 100) == javascript

    # A print sheet, on red; then a small file for a form, on the standard background.
    page.check("input[name=background][value=red]")
    page.check("input[name=layout][value=sheet]")
    image, name, _ = visitor.download(lambda: page.click("#id-download-button"))
    assert (name, image.size) == ("idphoto-cn-passport-1800x1200-sheet.jpg", (1800, 1200))
    page.check("input[name=background][value=default]")
    page.check("input[name=layout][value=single]")
    page.select_option("#id-max-kb", "50")
    image, _, data = visitor.download(lambda: page.click("#id-download-button"))
    assert len(data) <= 50_000 and Image.open(io.BytesIO(data)).size == (390, 567)

    visitor.assert_no_cookies()
    visitor.assert_clean()
