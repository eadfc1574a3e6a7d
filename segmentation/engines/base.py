"""What every engine promises, and what it is given.

A job runs in two phases so that expensive full-resolution work is only paid for when a visitor
unlocks the result:

* `start(photo)` runs at upload. It returns a `Draft`: a small image the watermarked preview is
  made from, plus `carry`, opaque bytes the engine needs later (a mask, a provider's full result).
* `finish(photo, carry)` runs after a code has been reserved. It returns the full-resolution
  `Result`, exactly the bytes the visitor downloads. If it raises, the code is given back.

The visitor may choose who stays ([T2.2]): `people(carry)` lists the people an engine found, with
the choice the carry holds, and `choose(photo, carry, keep)` makes a new preview and carry for
another choice without any billed provider call. The new carry replaces the old one, so the next
`finish` follows the last choice. An engine that offers no choice (ID photos) lists nobody.

Engines raise `EngineError` for anything a visitor should hear about; any other exception is a bug
and is reported as such. A provider client's `ProviderError` becomes one through `provider_failure`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

from django.utils.translation import gettext as _
from PIL import Image

from segmentation.intake import Photo
from segmentation.providers.http import ProviderError


class EngineError(Exception):
    """A failure with a visitor-safe message and a detail for the operator's log."""

    def __init__(self, visitor_message: str, operator_detail: str = "", *, retryable: bool = False):
        super().__init__(operator_detail or visitor_message)
        self.visitor_message = str(visitor_message)
        self.operator_detail = operator_detail
        # True when the same request may succeed later (provider busy or down), so the visitor is
        # told to try again rather than to pick another photo.
        self.retryable = retryable


def provider_failure(error: ProviderError, messages: Mapping[str, str]) -> EngineError:
    """`error` as the visitor and the operator should hear it: the provider's message for its key,
    in the active language (the tables hold lazy translations), and its detail."""
    text = str(messages[error.message])
    if error.values:
        text %= error.values
    detail = error.detail + (" (the call may have been billed)" if error.billed else "")
    return EngineError(text, detail, retryable=error.retryable)


@dataclass
class Draft:
    preview: Image.Image  # RGB or RGBA, any size: the preview renderer scales it down
    carry: bytes | None = None
    note: str = ""  # something the visitor should know about the result ("nobody else found")


@dataclass
class Result:
    data: bytes  # the download, served byte for byte
    media_type: str  # "image/png" or "image/jpeg"
    width: int
    height: int
    # What the job keeps instead of its carry for later choices (None: keep the carry as it is).
    # remove.bg's full-size cutout, say, so that a changed choice after unlocking costs no call.
    carry: bytes | None = None


@dataclass(frozen=True)
class PersonChoice:
    """One person the visitor may keep or erase."""

    id: int  # stable for the job's life: the carry's order of people
    box: tuple[float, float, float, float]  # x, y, width, height as fractions of the photo
    kept: bool


class Engine(ABC):
    @abstractmethod
    def start(self, photo: Photo) -> Draft: ...

    @abstractmethod
    def finish(self, photo: Photo, carry: bytes | None) -> Result: ...

    def people(self, carry: bytes | None) -> list[PersonChoice]:
        """The people found at start, with the choice `carry` holds; empty when there is no choice."""
        return []

    def choose(self, photo: Photo, carry: bytes | None, keep: frozenset[int]) -> Draft:
        """A new preview and carry in which the people whose ids are in `keep` stay and the others
        go (erased by `crowd`, cut away by `cutout`). Never makes a billed provider call. The
        caller has checked that `keep` is a non-empty subset of `people(carry)`'s ids."""
        raise EngineError(_("This photo offers no choice of people."), f"{type(self).__name__} offers no choice")
