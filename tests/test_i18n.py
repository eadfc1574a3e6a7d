"""English and Simplified Chinese: every message translated, the compiled catalogue current, the
language taken from the address's prefix, or from Accept-Language where the address has none.

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

from portraitsite.languages import preferred_language

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
    """A request under /zh-hans/ leaves Chinese active on the test's thread (LanguageMiddleware
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


def test_each_page_links_to_itself_in_both_languages_under_their_prefixes(client):
    for path in ("/privacy/", "/en/privacy/", "/zh-hans/privacy/"):
        html = client.get(path).content.decode()
        links = dict(re.findall(r'<a href="([^"]+)" lang="([^"]+)"', html))
        spans = re.findall(r'<span aria-current="true" lang="([^"]+)"', html)
        # The language shown is marked; the other is a link to the same page under its prefix.
        assert set(links.values()) | set(spans) == {"en", "zh-hans"}, path
        assert links == {f"/{code}/privacy/": code for code in links.values()}, path
    # A page answering a POST links to the GET page it stands for.
    refused = client.post("/jobs/", {"mode": "cutout"}).content.decode()
    assert 'href="/zh-hans/" lang="zh-hans"' in refused
    refused = client.post("/zh-hans/jobs/", {"mode": "cutout"}).content.decode()
    assert 'href="/en/" lang="en"' in refused


@pytest.mark.parametrize(
    ("accept", "language"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-hans"),
        ("zh", "zh-hans"),
        ("fr-FR, zh;q=0.5", "zh-hans"),
        ("en-GB,zh-CN;q=0.8", "en"),
        ("de-DE", "en"),
        ("*", "en"),
        ("", "en"),
    ],
)
@pytest.mark.parametrize("path", ["/", "/privacy/", "/terms/", "/jobs/unknown/"])
def test_an_unprefixed_address_answers_in_the_browsers_language(client, accept, language, path):
    response = client.get(path, HTTP_ACCEPT_LANGUAGE=accept)
    assert response.status_code == (404 if "unknown" in path else 200), "answered, never redirected"
    assert f'<html lang="{language}"' in response.content.decode()
    assert "Accept-Language" in response["Vary"]
    assert response["Content-Language"] == language
    assert not response.cookies


@pytest.mark.parametrize("code", ["en", "zh-hans"])
@pytest.mark.parametrize("accept", ["zh-CN", "en-US", ""])
@pytest.mark.parametrize("path", ["/", "/privacy/", "/terms/", "/jobs/unknown/"])
def test_a_prefixed_address_answers_in_its_own_language_whatever_the_browser_says(client, code, accept, path):
    response = client.get(f"/{code}{path}", HTTP_ACCEPT_LANGUAGE=accept)
    assert response.status_code == (404 if "unknown" in path else 200)
    assert f'<html lang="{code}"' in response.content.decode()
    assert "Accept-Language" not in response.get("Vary", ""), "the address alone decides"
    assert not response.cookies


@pytest.mark.django_db(transaction=True)
def test_a_prefixed_visitor_keeps_the_language_through_the_forms(client):
    """Forms and redirects stay under the prefix the visitor chose, even against the browser."""
    from tests.flow import token_of, wait_ready
    from tests.photos import encode, portrait_scene

    home = client.get("/zh-hans/", HTTP_ACCEPT_LANGUAGE="en-US").content.decode()
    assert 'action="/zh-hans/jobs/"' in home
    english = client.get("/en/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert 'action="/en/jobs/"' in english and '<html lang="en"' in english

    from django.core.files.uploadedfile import SimpleUploadedFile

    photo = SimpleUploadedFile("p.jpg", encode(portrait_scene(400, 300), "JPEG"), "image/jpeg")
    created = client.post("/en/jobs/", {"mode": "cutout", "image": photo}, HTTP_ACCEPT_LANGUAGE="zh-CN")
    token = token_of(created)
    assert created["Location"] == f"/en/jobs/{token}/"
    wait_ready(token)
    page = client.get(created["Location"], HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert '<html lang="en"' in page
    assert f'action="/en/jobs/{token}/unlock"' in page and f'action="/en/jobs/{token}/delete"' in page
    wrong = client.post(f"/en/jobs/{token}/unlock", {"code": "nonsense"}, HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert wrong.status_code in (400, 409) and '<html lang="en"' in wrong.content.decode()
    assert f'action="/en/jobs/{token}/unlock"' in wrong.content.decode()
    deleted = client.post(f"/en/jobs/{token}/delete", HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert deleted["Location"].startswith("/en/")


def test_unprefixed_forms_stay_unprefixed_so_the_browser_keeps_choosing(client):
    home = client.get("/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert '<html lang="zh-hans"' in home and 'action="/jobs/"' in home
    refused = client.post("/jobs/", {"mode": "cutout"}, HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert refused.status_code == 400 and "请选择要上传的照片。" in refused.content.decode()


def test_hreflang_alternates_name_each_language_and_the_unprefixed_default(client):
    for path in ("/privacy/", "/zh-hans/privacy/", "/en/privacy/"):
        html = client.get(path).content.decode()
        alternates = dict(re.findall(r'<link rel="alternate" hreflang="([^"]+)" href="([^"]+)">', html))
        assert alternates == {
            "en": "http://testserver/en/privacy/",
            "zh-hans": "http://testserver/zh-hans/privacy/",
            "x-default": "http://testserver/privacy/",
        }, path
    # A page with no address of its own has none.
    assert 'rel="alternate"' not in client.get("/zh-hans/nothing-here/").content.decode()


def test_a_language_prefix_without_its_slash_goes_to_that_home(client):
    response = client.get("/zh-hans")
    assert response.status_code == 301 and response["Location"] == "/zh-hans/"


def test_prefixes_cover_the_visitors_pages_only(client):
    assert client.get("/zh-hans/healthz").status_code == 404
    assert client.get("/zh-hans/admin/").status_code == 404
    assert client.get("/en/admin/login/").status_code == 404
    assert client.get("/zh-hans/zh-hans/").status_code == 404


def test_addresses_made_outside_a_request_are_unprefixed(client):
    from django.urls import reverse

    client.get("/zh-hans/privacy/")
    assert reverse("privacy") == "/privacy/", "a prefixed request leaves nothing behind on its thread"


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
