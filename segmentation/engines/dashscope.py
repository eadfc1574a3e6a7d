"""Crowd removal by Alibaba Cloud DashScope's image-edit model.

`start` makes the job's one (billed) call, finds at working size where the model really changed the
photo, and previews exactly what the download will be: the visitor's own pixels with only those
regions taken from the model. What the unlock needs is carried packed (segmentation.composite.pack):
the changes and the model's pixels inside them, not its whole frame. `finish` applies the same
changes at full resolution, so preview and download agree region for region.
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from segmentation import composite
from segmentation.engines.base import Draft, Engine, EngineError, Result, provider_failure
from segmentation.intake import Photo
from segmentation.providers import dashscope
from segmentation.providers.http import ProviderError


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
        # Whether the model removed anything we can find decides what the download will be: tell
        # the visitor before they spend a code on a copy of their own photo.
        note = (
            ""
            if changes.any
            else _("We found no one to remove in this photo: the download would look like your original.")
        )
        return Draft(
            preview=composite.apply_changes(working, frame, changes),
            carry=composite.pack(changes, frame),
            note=note,
        )

    def finish(self, photo: Photo, carry: bytes | None) -> Result:
        if not carry:
            raise EngineError(
                _("This result is no longer available. Please upload your photo again."),
                "dashscope finish without the model's frame",
            )
        return composite.full_resolution_result(photo, carry)
