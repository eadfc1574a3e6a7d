"""Crowd removal by Alibaba Cloud DashScope's image-edit model.

`start` makes the job's one (billed) call, finds at working size where the model really changed the
photo, and previews exactly what the download will be: the visitor's own pixels with only those
regions taken from the model. What the unlock needs is carried packed (segmentation.composite.pack):
the changes and the model's pixels inside them, not its whole frame. `finish` applies the same
changes at full resolution, so preview and download agree region for region.

Choosing who stays costs no call. At upload the embedded people finder also runs (on the working
image, small people included), and a person counts as erased when the model's changes cover most
of their outline (`provider_people`): that is the starting choice, whose download is the composite
as the model's answer makes it. Any other choice takes the model's edit only in the changed regions
that hold a person chosen to go, and never within reach of a person kept, where the visitor's own
pixels stay bit for bit; the model's other changes (a sign it also removed) are left out then.
Someone the model left in place and the visitor wants gone is erased by the local crowd engine's
fill (crowd.py: `erase_alpha`, `fill_holes`, `blend_hole`): PatchMatch at the crowd's working size on
the visitor's photo, never on the model's frame (the carry holds only the model's pixels inside its
changes, and its regenerated texture and colour would not match the photo the fill is blended
into). The fill copies only from background: every person's outline and every change the model
made are never a source. Each hole is filled once and carried; another choice re-fills only the
holes that changed, and `finish` blends the carried fills at full resolution over the composite.

The carry (`DSC1` sections): the cast (people and choices), the packed composite (`changes`) and,
while someone the model left is chosen to go, the fill (`fill`: a local crowd carry without its
people, `crowd.pack_crowd`).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from django.utils.translation import gettext as _

from segmentation import composite
from segmentation.engines import crowd, provider_people
from segmentation.engines.base import Draft, Engine, EngineError, PersonChoice, Result, provider_failure
from segmentation.engines.provider_people import Cast
from segmentation.engines.sections import pack_sections, unpack_sections
from segmentation.intake import WORKING_LONG_SIDE, Photo
from segmentation.pixels import fit_pixels
from segmentation.providers import dashscope
from segmentation.providers.http import ProviderError

_MAGIC = b"DSC1"
_PACKED_COMPOSITE = b"PK"  # a job started before choices carries the packed composite alone (a zip)


class DashScopeCrowd(Engine):
    def start(self, photo: Photo) -> Draft:
        client = dashscope.DashScopeClient()
        try:
            frame = client.erase_people(photo)
        except ProviderError as error:
            raise provider_failure(error, dashscope.MESSAGES) from error
        finally:
            client.close()
        working = photo.open_reduced(composite.COMPARISON_LONG_SIDE)  # RGBA when the photo is
        changes = composite.find_changes(working, frame)
        size, people = provider_people.find(photo, small=True)
        shares = provider_people.covered(people, size, (changes.alpha > 0.5).astype(np.float32))
        erased = {i for i, share in enumerate(shares) if share > provider_people.MOSTLY}
        cast = provider_people.cast_of(size, people, set(range(len(people))) - erased)
        return Draft(
            preview=composite.apply_changes(working, frame, changes),
            carry=_pack(cast, composite.pack(changes, frame), None),
            note=_note(changes),
        )

    def finish(self, photo: Photo, carry: bytes | None) -> Result:
        if not carry:
            raise EngineError(
                _("This result is no longer available. Please upload your photo again."),
                "dashscope finish without the model's frame",
            )
        if carry.startswith(_PACKED_COMPOSITE):
            return composite.full_resolution_result(photo, carry)
        cast, packed, fill = _unpack(carry)
        changes, frame = composite.unpack(packed)
        chosen = _chosen(cast, changes)
        if fill is None or not fill.holes:
            return composite.result_with(photo, chosen, frame)
        if abs(fill.size[0] / fill.size[1] - photo.width / photo.height) > 0.01 * photo.width / photo.height:
            raise EngineError(_unavailable(), f"dashscope fill for {fill.size}, photo {photo.width}x{photo.height}")
        image = composite.composed(photo, chosen, frame)
        for hole in fill.holes:
            crowd.blend_hole(image, hole, fill.size)
        return composite.encoded(image)

    def people(self, carry: bytes | None) -> list[PersonChoice]:
        if not carry or carry.startswith(_PACKED_COMPOSITE):
            return []
        return _unpack(carry)[0].choices()

    def choose(self, photo: Photo, carry: bytes | None, keep: frozenset[int]) -> Draft:
        if not carry or carry.startswith(_PACKED_COMPOSITE):
            return super().choose(photo, carry, keep)
        cast, packed, earlier = _unpack(carry)
        everyone = set(range(len(cast.people)))
        if not keep or not keep <= everyone:
            raise EngineError(_("This photo offers no such person."), f"dashscope choice: unknown ids {sorted(keep)}")
        cast = cast.with_keep(keep)
        changes, frame = composite.unpack(packed)
        chosen = _chosen(cast, changes)
        working = photo.open_reduced(composite.COMPARISON_LONG_SIDE)
        # A copy either way: blending the fill in place must never touch the photo's working copy.
        preview = composite.apply_changes(working, frame, chosen) if frame is not None else working.copy()
        fill = _fill(photo, cast, changes, earlier) if _left_to_erase(cast) else None
        for hole in fill.holes if fill else ():
            crowd.blend_hole(preview, hole, fill.size)
        erasing = chosen.any or bool(fill and fill.holes)
        note = "" if erasing else _("With everyone kept, the download would look like your original.")
        return Draft(preview=preview, carry=_pack(cast, packed, fill), note=note)


def _left_to_erase(cast: Cast) -> frozenset[int]:
    """The people the model left in place whom the visitor chose to erase: the fill's work."""
    return cast.start - cast.keep


def _fill(photo: Photo, cast: Cast, changes: composite.Changes, earlier: crowd.Crowd | None) -> crowd.Crowd:
    """The local crowd's fill (crowd.py) for the people the model left and the visitor wants gone,
    at the crowd's working size, on the visitor's photo. Their outlines (grown and feathered) are the
    holes; a kept person and a margin around them never are. The people the model erased take no
    part: its edit covers them. No person's outline and no change of the model's is ever a source,
    and that set does not depend on the choice, so a hole with the same alpha as before keeps its
    fill (`earlier`)."""
    working = fit_pixels(photo.open_reduced(WORKING_LONG_SIDE), crowd.CROWD_WORKING_PIXELS)
    size = working.size
    if earlier is not None and earlier.size != size:
        raise EngineError(_unavailable(), f"dashscope fill: working size {earlier.size}, now {size}")
    rgb = np.asarray(composite.on_white(working))  # as the model and the people finder saw it
    going, kept = sorted(_left_to_erase(cast)), sorted(cast.keep)
    alpha = crowd.erase_alpha(
        provider_people.outlines_at(cast, kept + going, size),
        [True] * len(kept) + [False] * len(going),
        rgb.shape[:2],
    )
    occupied = provider_people.solid(cast, range(len(cast.people)), size)
    model_changed = cv2.resize((changes.alpha > 0).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    occupied = ((occupied | model_changed) * 255).astype(np.uint8)
    holes = crowd.fill_holes(rgb, alpha, occupied, earlier.holes if earlier else ())
    return crowd.Crowd(size, (), (), holes)


def _chosen(cast: Cast, changes: composite.Changes) -> composite.Changes:
    """The model's changes narrowed to the visitor's choice: the changed regions (connected) that
    hold a person chosen to go, with every kept person's zone (outline grown by REACH) left exactly
    as it was and a soft seam around it. The starting choice keeps the changes as found."""
    if not cast.changed or not changes.any:
        return changes
    grid = changes.work_size
    going = [i for i in range(len(cast.people)) if i not in cast.keep]
    gone = provider_people.solid(cast, going, grid)
    kept = provider_people.reach(provider_people.solid(cast, cast.keep, grid))
    changed = (changes.alpha > 0).astype(np.uint8)
    count, labels = cv2.connectedComponents(changed, connectivity=8)
    theirs = np.unique(labels[gone & (changed > 0)])
    taken = np.isin(labels, theirs[theirs > 0])
    weight = taken * (255 - provider_people.soften(kept)).astype(np.float32) / 255
    # In 1/255 steps like the changes themselves: the preview and the download blend alike.
    alpha = np.rint(changes.alpha * weight * 255) / 255
    return dataclasses.replace(changes, alpha=alpha.astype(np.float32))


def _note(changes: composite.Changes) -> str:
    # Whether the model removed anything we can find decides what the download will be: tell
    # the visitor before they spend a code on a copy of their own photo.
    if changes.any:
        return ""
    return _("We found no one to remove in this photo: the download would look like your original.")


def _pack(cast: Cast, packed_composite: bytes, fill: crowd.Crowd | None) -> bytes:
    sections = {"cast": provider_people.pack_cast(cast), "changes": packed_composite}
    if fill is not None:
        sections["fill"] = crowd.pack_crowd(fill)
    return pack_sections(_MAGIC, sections)


def _unpack(carry: bytes) -> tuple[Cast, bytes, crowd.Crowd | None]:
    """The cast, the packed composite and the fill (None when nobody the model left is to go).
    EngineError when damaged: a fill missing for someone left to erase, or one nobody needs."""
    try:
        sections = unpack_sections(_MAGIC, carry)
        cast = provider_people.unpack_cast(sections["cast"])
        fill = crowd.unpack_crowd(sections["fill"]) if "fill" in sections else None
        if (fill is None) != (not _left_to_erase(cast)) or (fill is not None and fill.people):
            raise ValueError("the fill does not fit the choice")
        return cast, sections["changes"], fill
    except (ValueError, KeyError) as error:
        raise EngineError(_unavailable(), f"dashscope carry: {error!r}") from error


def _unavailable() -> str:
    return _("This result is no longer available. Please upload your photo again.")
