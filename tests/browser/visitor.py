"""A visitor in a real browser: one Playwright context and page, with everything it did recorded.

Every request the page makes, every console error, uncaught exception and CSP violation is kept,
so a test ends by asserting that the visit stayed on the site, broke no rule of the CSP and left
no cookie behind.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
TIMEOUT_MS = 60_000  # a job on a loaded 2-core machine; the wait ends as soon as the page is ready

# Reports CSP violations to the test through an exposed function (init scripts are exempt from the
# page's CSP, so this cannot itself cause a violation).
_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__reportCsp(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


@dataclass
class Visitor:
    context: object
    page: object
    base_url: str
    javascript: bool
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    events: list = field(default_factory=list)  # whatever a page reports through window.__report

    @classmethod
    def open(
        cls,
        browser,
        base_url: str,
        *,
        javascript: bool = True,
        viewport: dict = DESKTOP,
        locale: str = "en-GB",
        phone: bool = False,
    ) -> Visitor:
        options = {"java_script_enabled": javascript, "viewport": viewport, "locale": locale, "accept_downloads": True}
        if phone:
            options.update(is_mobile=True, has_touch=True, device_scale_factor=2)
        context = browser.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        visitor = cls(context=context, page=None, base_url=base_url.rstrip("/"), javascript=javascript)
        if javascript:
            context.expose_function("__reportCsp", lambda text: visitor.csp_violations.append(text))
            context.expose_function("__report", lambda *args: visitor.events.append(args))
            context.add_init_script(_CSP_LISTENER)
        page = context.new_page()
        page.on("request", lambda request: visitor.requests.append(request.url))
        # Chromium reports a header it cannot parse (an unknown Permissions-Policy feature) as a
        # warning, not an error: those count too.
        page.on(
            "console",
            lambda message: (
                (message.type == "error" or "Permissions-Policy" in message.text)
                and visitor.console_errors.append(message.text)
            ),
        )
        page.on("pageerror", lambda error: visitor.page_errors.append(str(error)))
        visitor.page = page
        return visitor

    def close(self) -> None:
        self.context.close()

    def url(self, path: str) -> str:
        return self.base_url + path

    def goto(self, path: str):
        return self.page.goto(self.url(path))

    @property
    def path(self) -> str:
        return urlsplit(self.page.url).path

    # --- What the visit must not have done ------------------------------------------------------

    def assert_clean(self, allowed_console: tuple[str, ...] = ()) -> None:
        """No console errors (except those a test provoked on purpose, by substring), no uncaught
        exceptions, no CSP violations, and no request that left the site."""
        unexpected = [text for text in self.console_errors if not any(allowed in text for allowed in allowed_console)]
        assert not unexpected, f"console errors: {unexpected}"
        assert not self.page_errors, f"uncaught exceptions: {self.page_errors}"
        assert not self.csp_violations, f"CSP violations: {self.csp_violations}"
        assert not any("Content Security Policy" in text for text in self.console_errors), self.console_errors
        origin = urlsplit(self.base_url).netloc
        foreign = [
            url for url in self.requests if not url.startswith(("data:", "blob:")) and urlsplit(url).netloc != origin
        ]
        assert not foreign, f"requests to other origins: {foreign}"

    def assert_no_cookies(self) -> None:
        assert self.context.cookies() == []
        if self.javascript:
            assert self.page.evaluate("document.cookie") == ""

    # --- Acting like a visitor --------------------------------------------------------------------

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def choose_file(self, data: bytes, name: str = "portrait.jpg", mime: str = "image/jpeg") -> None:
        self.page.set_input_files("#id_image", files=[{"name": name, "mimeType": mime, "buffer": data}])

    def drop_file(self, data: bytes, name: str = "portrait.jpg", mime: str = "image/jpeg") -> None:
        self.page.evaluate(
            """([b64, name, type]) => {
              const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
              const transfer = new DataTransfer();
              transfer.items.add(new File([bytes], name, { type }));
              const zone = document.getElementById("dropzone");
              for (const kind of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(kind, { bubbles: true, cancelable: true, dataTransfer: transfer }));
              }
            }""",
            [base64.b64encode(data).decode(), name, mime],
        )

    def paste_file(self, data: bytes, name: str = "image.png", mime: str = "image/png") -> None:
        self.page.evaluate(
            """([b64, name, type]) => {
              const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
              const transfer = new DataTransfer();
              transfer.items.add(new File([bytes], name, { type }));
              const paste = { bubbles: true, cancelable: true, clipboardData: transfer };
              document.body.dispatchEvent(new ClipboardEvent("paste", paste));
            }""",
            [base64.b64encode(data).decode(), name, mime],
        )

    def download(self, click) -> tuple[Image.Image, str, bytes]:
        """Run `click` (something that starts a download); the downloaded image, its file name and bytes."""
        with self.page.expect_download() as info:
            click()
        download = info.value
        data = Path(download.path()).read_bytes()
        image = Image.open(io.BytesIO(data))
        image.load()
        return image, download.suggested_filename, data

    def posts(self, path_pattern: str) -> list[str]:
        return [url for url in self.requests if re.search(path_pattern, url)]

    # --- Checks on the page as it is ---------------------------------------------------------------

    def horizontal_overflow(self) -> int:
        """How many CSS pixels the page is wider than the viewport (0 when it fits)."""
        return self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")

    def contrast_failures(self) -> list[str]:
        """Visible text whose contrast with its background is below WCAG AA (4.5:1, 3:1 for large
        text). Text over images or gradients (the comparison, swatches) is left to the eye."""
        return self.page.evaluate(_CONTRAST_SCRIPT)

    def unlabelled_controls(self) -> list[str]:
        return self.page.evaluate(
            """() => [...document.querySelectorAll("input:not([type=hidden]), select, textarea, button")]
                .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                                && !el.getAttribute("aria-labelledby")
                                && !(el.tagName === "BUTTON" && el.textContent.trim()))
                .map((el) => el.outerHTML.slice(0, 120))"""
        )

    def images_without_alt(self) -> list[str]:
        return self.page.evaluate(
            "() => [...document.images].filter((im) => !im.hasAttribute('alt')).map((im) => im.src)"
        )


_CONTRAST_SCRIPT = """
() => {
  const parse = (value) => {
    const m = value.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const parts = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return { r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1 };
  };
  const luminance = ({ r, g, b }) => {
    const channel = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const blend = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a), a: 1,
  });
  // The colour behind an element: its ancestors' backgrounds composed down to white.
  const backgroundOf = (element) => {
    const layers = [];
    for (let node = element; node && node.nodeType === 1; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.backgroundImage !== "none") return null;
      const colour = parse(style.backgroundColor);
      if (colour && colour.a > 0) layers.push(colour);
      if (colour && colour.a === 1) break;
    }
    return layers.reverse().reduce((under, over) => blend(over, under), { r: 255, g: 255, b: 255, a: 1 });
  };
  const failures = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  while (walker.nextNode()) {
    const text = walker.currentNode.textContent.trim();
    const element = walker.currentNode.parentElement;
    if (!text || seen.has(element)) continue;
    seen.add(element);
    if (element.closest(".compare, .visually-hidden, noscript, [hidden], button:disabled")) continue;
    const box = element.getBoundingClientRect();
    const style = getComputedStyle(element);
    if (box.width === 0 || box.height === 0 || style.visibility === "hidden" || style.display === "none") continue;
    const background = backgroundOf(element);
    if (!background) continue;
    const colour = blend(parse(style.color), background);
    const [light, dark] = [luminance(colour), luminance(background)].sort((a, b) => b - a);
    const ratio = (light + 0.05) / (dark + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && parseInt(style.fontWeight, 10) >= 700);
    if (ratio < (large ? 3 : 4.5)) failures.push(`${ratio.toFixed(2)}:1 "${text.slice(0, 40)}"`);
  }
  return failures;
}
"""


def tab_to(page, selector: str, limit: int = 80) -> None:
    """Press Tab, as a keyboard-only visitor does, until `selector` has the focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(selector) => document.activeElement.matches(selector)", selector):
            return
    raise AssertionError(f"{selector} cannot be reached with the Tab key")
