"""Named byte sections in one carry: what a provider engine keeps between upload, choices and unlock.

Layout: 4 magic bytes, then per section its name (8 bytes, ASCII, padded with NUL), its length
(4 bytes, big-endian) and its bytes. No pickle and no compression: a carry from a shared cache can
hold nothing executable, and its large sections (PNGs) are compressed already.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

_SECTION = struct.Struct(">8sI")


def pack_sections(magic: bytes, sections: Mapping[str, bytes]) -> bytes:
    parts = [magic]
    for name, data in sections.items():
        if not 0 < len(name.encode("ascii")) <= 8:
            raise ValueError(f"a section's name takes 1 to 8 characters: {name!r}")
        parts += [_SECTION.pack(name.encode("ascii"), len(data)), data]
    return b"".join(parts)


def unpack_sections(magic: bytes, data: bytes) -> dict[str, bytes]:
    """The sections `pack_sections` packed. ValueError when `data` is not such a carry."""
    if not data.startswith(magic):
        raise ValueError(f"not a {magic.decode('ascii', 'replace')} carry")
    view = memoryview(data)
    offset, sections = len(magic), {}
    try:
        while offset < len(data):
            name, length = _SECTION.unpack_from(view, offset)
            offset += _SECTION.size
            if offset + length > len(data):
                raise ValueError(f"section {name!r} runs past the end")
            sections[name.rstrip(b"\0").decode("ascii")] = bytes(view[offset : offset + length])
            offset += length
    except (struct.error, UnicodeDecodeError) as error:
        raise ValueError(f"damaged carry: {error}") from error
    return sections
