"""Codes as text: the alphabet, the display form, normalisation of what people type, the digest."""

import re

import pytest
from django.core.exceptions import ValidationError

from unlock import codes

CODE = "0123456789ABCDEF"  # normalised; displayed 0123-4567-89AB-CDEF


@pytest.mark.parametrize(
    "typed",
    [
        "0123-4567-89AB-CDEF",
        "0123456789ABCDEF",
        "0123 4567 89ab cdef",
        "  0123-4567-89ab-cdef  ",
        "0123–4567—89AB‐CDEF",  # en dash, em dash, hyphen from word processors
        "0123\t4567\n89AB\u00a0CDEF",
        "O123-4567-89AB-CDEF",  # letter O for zero
        "o123-4567-89ab-cdef",
        "0I23-4567-89AB-CDEF",  # letter I for one
        "0L23-4567-89AB-CDEF",  # letter L for one
        "0l23-4567-89ab-cdef",
        "0i23 4567 89ab cdef",
        "01-23-45-67-89-AB-CD-EF",
    ],
)
def test_what_people_type_normalises_to_the_code(typed):
    assert codes.normalise(typed) == CODE


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "0123-4567-89AB-CDE",  # 15
        "0123-4567-89AB-CDEF0",  # 17
        "0123-4567-89AB-CDEU",  # U is reserved by Crockford, never in a code
        "0123-4567-89AB-CDE!",
        "0123_4567_89AB_CDEF",
        "0123.4567.89AB.CDEF",
        "0123-4567-89AB-CDÉF",
        "０１２３４５６７８９ＡＢＣＤＥＦ",  # full-width digits are not our digits
    ],
)
def test_anything_else_is_malformed(typed):
    with pytest.raises(ValidationError) as caught:
        codes.normalise(typed)
    assert caught.value.code == "malformed"


def test_new_codes_are_16_characters_of_the_alphabet_and_differ():
    batch = [codes.generate() for _ in range(2000)]
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{16}", code) for code in batch)
    assert len(set(batch)) == len(batch)
    # Every character of the alphabet turns up: nothing is silently excluded.
    assert set("".join(batch)) == set(codes.ALPHABET)
    assert not set("ILOU") & set(codes.ALPHABET)


def test_a_code_is_displayed_in_four_groups_and_reads_back():
    shown = codes.display(CODE)
    assert shown == "0123-4567-89AB-CDEF"
    assert codes.normalise(shown) == CODE


def test_the_hint_is_the_last_four_characters():
    assert codes.hint(CODE) == "CDEF"


def test_the_digest_is_an_hmac_under_the_unlock_key(settings):
    settings.UNLOCK_CODE_KEY = "one key"
    first = codes.digest(CODE)
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert codes.digest(CODE) == first
    assert codes.digest("0123456789ABCDEG") != first
    settings.UNLOCK_CODE_KEY = "another key"
    assert codes.digest(CODE) != first


def test_without_an_unlock_key_the_digest_key_comes_from_secret_key(settings):
    settings.UNLOCK_CODE_KEY = ""
    settings.SECRET_KEY = "secret one"
    first = codes.digest(CODE)
    settings.SECRET_KEY = "secret two"
    assert codes.digest(CODE) != first
    # Derived, not the secret itself: the digest differs from a plain HMAC under SECRET_KEY.
    import hashlib
    import hmac

    assert first != hmac.new(b"secret one", CODE.encode(), hashlib.sha256).hexdigest()


def test_deploy_check_warns_when_codes_hang_on_secret_key(settings):
    from unlock.checks import check_unlock_code_key

    settings.UNLOCK_CODE_KEY = ""
    assert [w.id for w in check_unlock_code_key(None)] == ["unlock.W001"]
    settings.UNLOCK_CODE_KEY = "its own key"
    assert check_unlock_code_key(None) == []


def test_the_unlock_form_normalises_what_is_typed():
    from unlock.forms import UnlockForm

    form = UnlockForm({"code": "o123 4567 89ab cdel"})
    assert form.is_valid()
    assert form.cleaned_data["code"] == "0123456789ABCDE1"


@pytest.mark.parametrize("typed", ["", "0123-4567-89AB-CDEU", "x" * 65])
def test_the_unlock_form_explains_a_malformed_code(typed):
    from unlock.forms import UnlockForm

    form = UnlockForm({"code": typed})
    assert not form.is_valid()
    assert form.errors["code"] == [str(codes.MALFORMED_MESSAGE)]


# --- Digests made before salted_hmac keep working -----------------------------------------------


def _old_digest(code: str, unlock_code_key: str, secret_key: str) -> str:
    """The digest as unlock.codes computed it by hand before it used salted_hmac."""
    import hashlib
    import hmac

    if unlock_code_key:
        key = unlock_code_key.encode()
    else:
        key = hashlib.sha256(b"portraitsite.unlock.codes:" + secret_key.encode()).digest()
    return hmac.new(key, code.encode("ascii"), hashlib.sha256).hexdigest()


def test_without_a_code_key_the_digest_is_the_one_made_before(settings):
    settings.UNLOCK_CODE_KEY = ""
    assert codes.digest(CODE) == _old_digest(CODE, "", settings.SECRET_KEY)
    assert codes.digests(CODE) == [codes.digest(CODE)]


@pytest.mark.django_db
def test_a_code_stored_under_the_old_keyed_digest_redeems_once_and_moves_to_the_new_one(settings):
    from unlock.models import UnlockCode
    from unlock.redemption import CodeRejected, redeem

    settings.UNLOCK_CODE_KEY = "an operator's separate code key"
    old = _old_digest(CODE, settings.UNLOCK_CODE_KEY, settings.SECRET_KEY)
    assert old != codes.digest(CODE), "salted now: the stored digest differs"
    row = UnlockCode.objects.create(digest=old, hint=codes.hint(CODE), max_uses=1)

    redeem(codes.display(CODE), tool="cutout")
    row.refresh_from_db()
    assert row.used == 1 and row.digest == codes.digest(CODE), "migrated on use"
    with pytest.raises(CodeRejected) as rejected:
        redeem(codes.display(CODE), tool="cutout")
    assert rejected.value.reason == "used_up", "found under its new digest"


@pytest.mark.django_db
def test_the_admin_finds_a_code_stored_under_the_old_digest(admin_client, settings):
    from django.urls import reverse

    from unlock.models import UnlockCode

    settings.UNLOCK_CODE_KEY = "an operator's separate code key"
    row = UnlockCode.objects.create(
        digest=_old_digest(CODE, settings.UNLOCK_CODE_KEY, settings.SECRET_KEY), hint=codes.hint(CODE)
    )
    found = admin_client.post(reverse("admin:unlock_unlockcode_find"), {"code": codes.display(CODE)})
    assert found["Location"] == reverse("admin:unlock_unlockcode_change", args=[row.pk])


def test_generated_codes_use_the_whole_alphabet_at_full_length():
    generated = {codes.generate() for _ in range(300)}
    assert len(generated) == 300
    assert all(len(code) == codes.LENGTH and set(code) <= set(codes.ALPHABET) for code in generated)
    assert set("".join(generated)) == set(codes.ALPHABET)
