"""English and Simplified Chinese: every message translated, the compiled catalogue current, the
language taken from the address only, and Chinese offered (never imposed) to browsers preferring it.

The catalogue checks extract the messages themselves (Python through its syntax tree, templates
through Django's own `templatize`), so they need no GNU gettext and catch a string someone added
without running makemessages.
"""

from __future__ import annotations

import ast
import gettext as gnu_gettext
import re
from pathlib import Path

import pytest
from django.utils import translation
from django.utils.translation.template import templatize

from portraitsite.templatetags.site import preferred_language

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
PYTHON_PACKAGES = ("portraitsite", "segmentation", "unlock")
SINGULAR = {"_", "gettext", "gettext_lazy", "gettext_noop"}
PLURAL = {"ngettext", "ngettext_lazy"}
CONTEXT = {"pgettext", "pgettext_lazy"}
HAN = re.compile(r"[\u4e00-\u9fff]")
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
TAG = re.compile(r"</?\w+")


@pytest.fixture(autouse=True)
def default_language_afterwards():
    """A request under /zh-hans/ leaves Chinese active on the test's thread (LocaleMiddleware
    activates, nothing deactivates); later tests must not inherit it."""
    yield
    translation.deactivate()


# --- Reading catalogues and sources -------------------------------------------------------------


def _po_string(lines: list[str]) -> str:
    return "".join(ast.literal_eval(line[line.index('"') :]) for line in lines)


def read_po(path: Path = PO) -> dict:
    """msgid (or (singular, plural)) → {"msgstr": str, "fuzzy": bool}; obsolete entries skipped."""
    entries = {}
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith("#~")]
        fields: dict[str, list[str]] = {}
        current = None
        for line in lines:
            if line.startswith("#"):
                continue
            if line.startswith('"'):
                fields[current].append(line)
            else:
                current, rest = line.split(" ", 1)
                fields[current] = [rest]
        if "msgid" not in fields:
            continue
        msgid = _po_string(fields["msgid"])
        if not msgid:
            continue  # the header
        key = (msgid, _po_string(fields["msgid_plural"])) if "msgid_plural" in fields else msgid
        msgstr = _po_string(fields.get("msgstr") or fields.get("msgstr[0]") or [])
        fuzzy = any(line.startswith("#,") and "fuzzy" in line for line in lines)
        entries[key] = {"msgstr": msgstr, "fuzzy": fuzzy}
    return entries


def _call_name(node: ast.Call) -> str:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return ""


def python_messages() -> dict:
    """Every literal message passed to a gettext function in the site's packages → where."""
    found: dict = {}
    for package in PYTHON_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                name, args = _call_name(node), node.args
                strings = [a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                if name in SINGULAR and strings and args[0] is not None and isinstance(args[0], ast.Constant):
                    found.setdefault(strings[0], str(path.relative_to(ROOT)))
                elif name in PLURAL and len(strings) >= 2:
                    found.setdefault((strings[0], strings[1]), str(path.relative_to(ROOT)))
                elif name in CONTEXT and len(strings) >= 2:
                    found.setdefault(strings[1], str(path.relative_to(ROOT)))
    return found


_LITERAL = r"""u?(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")"""
_CALL = re.compile(rf"\b(gettext|ngettext|pgettext|npgettext)\(((?:\s*{_LITERAL}\s*,?)+)")


def template_messages() -> dict:
    """Every message in the templates, read the way makemessages reads them (templatize turns a
    template into code in which each message is a gettext call with literal arguments)."""
    found: dict = {}
    for path in sorted((ROOT / "templates").rglob("*.html")):
        code = templatize(path.read_text(encoding="utf-8"), str(path))
        where = str(path.relative_to(ROOT))
        for call in _CALL.finditer(code):
            name = call.group(1)
            strings = [ast.literal_eval(literal) for literal in re.findall(_LITERAL, call.group(2))]
            # Which literals make the catalogue key: (msgid,) or (msgid, plural), after any context.
            first, last = {"gettext": (0, 1), "ngettext": (0, 2), "pgettext": (1, 2), "npgettext": (1, 3)}[name]
            key = strings[first] if last - first == 1 else tuple(strings[first:last])
            found.setdefault(key, where)
    return found


# --- The catalogue ----------------------------------------------------------------------------------


def test_every_message_in_code_and_templates_is_translated_into_chinese():
    catalogue = read_po()
    messages = {**python_messages(), **template_messages()}
    assert len(messages) > 150, "the extraction found too little to be trusted"
    missing = {key: where for key, where in messages.items() if key not in catalogue}
    assert not missing, f"run makemessages (see the header of {PO.name}); not in the catalogue: {missing}"
    untranslated = [key for key, entry in catalogue.items() if not entry["msgstr"] or entry["fuzzy"]]
    assert not untranslated, f"untranslated or fuzzy: {untranslated}"


def test_translations_keep_every_placeholder_and_tag():
    for key, entry in read_po().items():
        msgid = key[0] if isinstance(key, tuple) else key
        msgstr = entry["msgstr"]
        assert sorted(PLACEHOLDER.findall(msgstr)) == sorted(PLACEHOLDER.findall(msgid)), (msgid, msgstr)
        assert sorted(TAG.findall(msgstr)) == sorted(TAG.findall(msgid)), (msgid, msgstr)


def test_the_compiled_catalogue_matches_its_source():
    with MO.open("rb") as handle:
        compiled = gnu_gettext.GNUTranslations(handle)
    stale = []
    for key, entry in read_po().items():
        shown = compiled.ngettext(key[0], key[1], 1) if isinstance(key, tuple) else compiled.gettext(key)
        if shown != entry["msgstr"]:
            stale.append(key)
    assert not stale, f"run compilemessages: the .mo differs from the .po for {stale[:5]}"


def test_chinese_translations_are_chinese():
    # Brand names and formats stay as they are; everything else must contain Chinese.
    for key, entry in read_po().items():
        msgid = key[0] if isinstance(key, tuple) else key
        if entry["msgstr"] and re.search(r"[A-Za-z]{3}", re.sub(PLACEHOLDER, "", msgid)):
            assert HAN.search(entry["msgstr"]), (msgid, entry["msgstr"])


# --- Pages --------------------------------------------------------------------------------------------


def han_share(html: str) -> float:
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S))
    text = re.sub(r"[\w.+-]+@[\w.-]+|portraitsite|English|JPEG|PNG|WebP|MB|RAM|HTTPS|Cookie|XXXX", " ", text)
    letters = [c for c in text if c.isalpha()]
    return sum(bool(HAN.match(c)) for c in letters) / max(1, len(letters))


@pytest.mark.parametrize("path", ["/zh-hans/", "/zh-hans/privacy/", "/zh-hans/terms/", "/zh-hans/jobs/unknown/"])
def test_chinese_pages_are_in_chinese(client, path):
    response = client.get(path)
    html = response.content.decode()
    assert 'lang="zh-hans"' in html
    assert han_share(html) > 0.9, path


def test_an_upload_refused_in_chinese_is_explained_in_chinese(client):
    response = client.post("/zh-hans/jobs/", {"mode": "cutout"})
    assert response.status_code == 400
    assert "请选择要上传的照片。" in response.content.decode()


def test_each_page_links_to_itself_in_the_other_language(client):
    assert 'href="/zh-hans/privacy/"' in client.get("/privacy/").content.decode()
    assert 'href="/privacy/"' in client.get("/zh-hans/privacy/").content.decode()
    # A page answering a POST links to the GET page it stands for.
    refused = client.post("/jobs/", {"mode": "cutout"}).content.decode()
    assert 'href="/zh-hans/" lang="zh-hans"' in refused


def test_chinese_is_offered_on_english_pages_to_browsers_that_prefer_it(client):
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.8")
    assert response.status_code == 200, "offered, never redirected: the address decides the language"
    html = response.content.decode()
    assert 'lang="en"' in html
    offer = re.search(r'<p class="language-offer" lang="zh-hans"><a href="([^"]+)"[^>]*>([^<]+)</a>', html)
    assert offer and offer.group(1) == "/zh-hans/" and HAN.search(offer.group(2))
    assert "Accept-Language" in response.get("Vary", "")

    privacy = client.get("/privacy/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert 'class="language-offer"' in privacy and 'href="/zh-hans/privacy/"' in privacy


@pytest.mark.parametrize("accept", ["", "en-US,en;q=0.9", "en-GB,zh;q=0.5", "de-DE", "*"])
def test_no_offer_to_browsers_that_prefer_english_or_nothing_we_have(client, accept):
    assert 'class="language-offer"' not in client.get("/", HTTP_ACCEPT_LANGUAGE=accept).content.decode()


def test_no_offer_on_pages_already_in_a_chosen_language(client):
    assert 'class="language-offer"' not in client.get("/zh-hans/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()


@pytest.mark.parametrize(
    ("accept", "preferred"),
    [
        ("zh-CN", "zh-hans"),
        ("zh", "zh-hans"),
        ("zh-Hans-CN", "zh-hans"),
        ("fr-FR, zh;q=0.5", "zh-hans"),
        ("en-GB,zh-CN;q=0.8", "en"),
        ("ja, de", None),
        ("", None),
    ],
)
def test_preferred_language_follows_the_order_of_preference(accept, preferred):
    assert preferred_language(accept) == preferred
