"""Each person's outline, packed small for a job's carry: a later step (choosing who stays) can
use the people found at upload without finding them again.

Layout: a header (magic, working width and height, number of people), then per person a record
(left, top, width, height, score ×10⁴, PNG length) followed by the PNG of the outline's crop
(8-bit grey). A person a third of the frame high packs to a few kilobytes: the outline is smooth,
and most of the crop is 0 or 255.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

_HEADER = struct.Struct(">4sHHH")
_RECORD = struct.Struct(">hhHHHI")
_MAGIC = b"PPL1"


@dataclass(frozen=True)
class PackedPerson:
    """A person as the carry keeps them: the outline (uint8) over the box at `origin`."""

    mask: np.ndarray
    origin: tuple[int, int]
    score: float


class Outline(Protocol):
    mask: np.ndarray
    origin: tuple[int, int]
    score: float


def pack_people(size: tuple[int, int], people: Sequence[Outline]) -> bytes:
    """The people found on a working image of `size` = (width, height), as bytes."""
    parts = [_HEADER.pack(_MAGIC, size[0], size[1], len(people))]
    for person in people:
        # Encoded with OpenCV like the matte (local.py): Pillow encodes only the previews.
        ok, encoded = cv2.imencode(
            ".png", np.ascontiguousarray(person.mask, np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 1]
        )
        png = encoded.tobytes()
        height, width = person.mask.shape
        score = round(min(max(person.score, 0.0), 1.0) * 10_000)
        parts.append(_RECORD.pack(person.origin[0], person.origin[1], width, height, score, len(png)))
        parts.append(png)
    return b"".join(parts)


def unpack_people(data: bytes) -> tuple[tuple[int, int], list[PackedPerson]]:
    """What `pack_people` packed: the working size and the people. ValueError when damaged."""
    try:
        magic, width, height, count = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError("not a packed list of people")
        offset = _HEADER.size
        people = []
        for _ in range(count):
            left, top, mask_width, mask_height, score, length = _RECORD.unpack_from(data, offset)
            offset += _RECORD.size
            mask = cv2.imdecode(np.frombuffer(data, np.uint8, length, offset), cv2.IMREAD_GRAYSCALE)
            offset += length
            if mask is None or mask.shape != (mask_height, mask_width):
                raise ValueError("a packed outline has the wrong size")
            people.append(PackedPerson(mask, (left, top), score / 10_000))
    except (struct.error, cv2.error) as error:
        raise ValueError(f"damaged list of people: {error}") from error
    if offset != len(data):
        raise ValueError("trailing bytes after the packed people")
    return (width, height), people
