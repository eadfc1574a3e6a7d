"""What an unlocked ID photo downloads as: the framed cutout stored at unlock, on the chosen
background, alone or as a print sheet, optionally under a file size. All of it is made from the
one stored result: no second code, no provider call."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from segmentation import previews
from segmentation.idphoto import compose
from segmentation.idphoto.specs import Spec

LAYOUTS = ("single", "sheet")
# "For online forms": the sizes offered (KB); any whole number in the range works in the URL.
FILE_SIZE_CHOICES_KB = (50, 100, 200, 500)
MIN_KB, MAX_KB = 20, 5000


class BadDownload(ValueError):
    """A query the download cannot honour; `reason` is a key of portraitsite.errors.MESSAGES."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Choice:
    colour: str  # RRGGBB
    layout: str  # "single" or "sheet"
    max_kb: int | None


def parse(query, spec: Spec) -> Choice:
    """The visitor's choice from the download URL's query (a QueryDict or a dict)."""
    value = query.get("background") or ""
    try:
        colour = spec.background if value in ("", "default") else previews.parse_background(value)
    except ValueError:
        colour = None
    if colour is None:  # "transparent" too: an ID photo always has its background
        raise BadDownload("bad_id_background")
    layout = query.get("layout") or "single"
    if layout not in LAYOUTS:
        raise BadDownload("bad_layout")
    max_kb = query.get("max_kb") or None
    if max_kb is not None:
        if not max_kb.isdigit() or not MIN_KB <= int(max_kb) <= MAX_KB:
            raise BadDownload("bad_file_size")
        max_kb = int(max_kb)
    return Choice(colour, layout, max_kb)


def render(result_png: bytes, spec: Spec, choice: Choice) -> tuple[bytes, str]:
    """(JPEG bytes, file name) for the choice; BadDownload when no quality fits the size."""
    with Image.open(io.BytesIO(result_png)) as stored:
        stored.load()
        photo = compose.on_background(stored.convert("RGBA"), choice.colour)
    picture = compose.sheet(photo) if choice.layout == "sheet" else photo
    if choice.max_kb is None:
        data = compose.jpeg(picture)
    else:
        data = compose.jpeg_under(picture, choice.max_kb * 1000)
        if data is None:
            raise BadDownload("bad_file_size")
    suffix = "-sheet" if choice.layout == "sheet" else ""
    return data, f"idphoto-{spec.key}-{picture.width}x{picture.height}{suffix}.jpg"
