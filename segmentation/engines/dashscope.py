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
Someone the model left in place cannot be erased: that would need a new billed call (and the
embedded fill is the local crowd engine's, not shared with this one), so `choose` says so.

The carry (`DSC1` sections): the cast (people and choices) and the packed composite (`changes`).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from django.utils.translation import gettext as _

from segmentation import composite
from segmentation.engines import provider_people
from segmentation.engines.base import Draft, Engine, EngineError, PersonChoice, Result, provider_failure
from segmentation.engines.provider_people import Cast
from segmentation.engines.sections import pack_sections, unpack_sections
from segmentation.intake import Photo
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
            carry=_pack(cast, composite.pack(changes, frame)),
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
        cast, packed = _unpack(carry)
        changes, frame = composite.unpack(packed)
        return composite.result_with(photo, _chosen(cast, changes), frame)

    def people(self, carry: bytes | None) -> list[PersonChoice]:
        if not carry or carry.startswith(_PACKED_COMPOSITE):
            return []
        return _unpack(carry)[0].choices()

    def choose(self, photo: Photo, carry: bytes | None, keep: frozenset[int]) -> Draft:
        if not carry or carry.startswith(_PACKED_COMPOSITE):
            return super().choose(photo, carry, keep)
        cast, packed = _unpack(carry)
        everyone = set(range(len(cast.people)))
        if not keep <= everyone:
            raise EngineError(_("This photo offers no such person."), f"dashscope choice: unknown ids {sorted(keep)}")
        left_in_place = cast.start - keep
        if left_in_place:
            raise EngineError(
                _(
                    "The crowd-removal service left someone you chose to erase in the photo. We can bring "
                    "back people it erased, but we cannot erase anyone it left."
                ),
                f"dashscope choice: ids {sorted(left_in_place)} were not erased by the model",
            )
        cast = cast.with_keep(keep)
        changes, frame = composite.unpack(packed)
        chosen = _chosen(cast, changes)
        working = photo.open_reduced(composite.COMPARISON_LONG_SIDE)
        preview = composite.apply_changes(working, frame, chosen) if frame is not None else working
        note = "" if chosen.any else _("With everyone kept, the download would look like your original.")
        return Draft(preview=preview, carry=_pack(cast, packed), note=note)


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


def _pack(cast: Cast, packed_composite: bytes) -> bytes:
    return pack_sections(_MAGIC, {"cast": provider_people.pack_cast(cast), "changes": packed_composite})


def _unpack(carry: bytes) -> tuple[Cast, bytes]:
    try:
        sections = unpack_sections(_MAGIC, carry)
        return provider_people.unpack_cast(sections["cast"]), sections["changes"]
    except (ValueError, KeyError) as error:
        raise EngineError(
            _("This result is no longer available. Please upload your photo again."), f"dashscope carry: {error!r}"
        ) from error
