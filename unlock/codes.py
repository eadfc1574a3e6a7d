"""Unlock codes as text: generation, normalisation, and the digest that is all the database keeps.

A code is 16 characters of Crockford's base32 (80 bits from `secrets`), shown in groups of four.
The alphabet has no I, L, O or U, so what people misread or mistype can be mapped back (O→0, I/L→1)
and U, which Crockford reserves, is refused. The plaintext exists only while it is being shown or
typed: the database stores an HMAC of the normalised code and its last four characters as a hint.
"""

import hashlib
import hmac
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.crypto import get_random_string, salted_hmac
from django.utils.translation import gettext_lazy as _

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 16
GROUP = 4
HINT_LENGTH = 4

# Characters people type for what they mean: Crockford's decoding rules.
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
# Separators people paste along with a code: spaces of every kind, hyphens and dashes.
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212]+")
_VALID = re.compile(rf"[{ALPHABET}]{{{LENGTH}}}")

MALFORMED_MESSAGE = _("An unlock code has 16 letters and digits, in the form XXXX-XXXX-XXXX-XXXX. Please check it.")


def generate() -> str:
    """A new code, normalised (16 characters, no dashes)."""
    return get_random_string(LENGTH, ALPHABET)  # secrets.choice per character


def display(code: str) -> str:
    """XXXX-XXXX-XXXX-XXXX, the only form in which people see a code."""
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


def normalise(text: str) -> str:
    """The canonical 16 characters of what someone typed, or ValidationError(code="malformed")."""
    cleaned = _SEPARATORS.sub("", str(text)).upper().translate(_LOOKALIKES)
    if not _VALID.fullmatch(cleaned):
        raise ValidationError(MALFORMED_MESSAGE, code="malformed")
    return cleaned


def normalise_fragment(text: str) -> str:
    """The same mapping for part of a code (admin search by hint); never fails."""
    return _SEPARATORS.sub("", str(text)).upper().translate(_LOOKALIKES)


# The salt keeps the digest key apart from every other use of the secret (sessions, rate-limit
# hashes). salted_hmac's key is sha256(salt + secret), which is how digests were keyed before it
# was used here, so codes issued with the key derived from SECRET_KEY keep their digests.
KEY_SALT = "portraitsite.unlock.codes:"


def digest(code: str) -> str:
    """HMAC-SHA256 (hex) of a normalised code under UNLOCK_CODE_KEY, or SECRET_KEY without it:
    what the database looks codes up by."""
    secret = settings.UNLOCK_CODE_KEY or settings.SECRET_KEY
    return salted_hmac(KEY_SALT, code, secret=secret, algorithm="sha256").hexdigest()


def digests(code: str) -> list[str]:
    """Every digest a normalised code may be stored under, today's first. Codes issued under an
    UNLOCK_CODE_KEY before salted_hmac were keyed by that key itself, unsalted: they are looked up
    under that digest too (and moved to today's on use, unlock.redemption)."""
    current = digest(code)
    if not settings.UNLOCK_CODE_KEY:
        return [current]
    legacy = hmac.new(settings.UNLOCK_CODE_KEY.encode(), code.encode("ascii"), hashlib.sha256).hexdigest()
    return [current, legacy]


def hint(code: str) -> str:
    """The last characters of a normalised code, enough for staff to tell codes apart."""
    return code[-HINT_LENGTH:]
