"""Crowd removal by Alibaba Cloud DashScope's image-edit model.

`start` makes the job's one (billed) call and keeps the model's frame; `finish` turns it into a
full-resolution result by taking only the erased regions from it (segmentation.composite).
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from PIL import Image

from segmentation import composite
from segmentation.engines.base import Draft, Engine, EngineError, Result
from segmentation.images import Photo
from segmentation.providers.dashscope import DashScopeClient


class DashScopeCrowd(Engine):
    name = "dashscope"
    mode = "crowd"
    provider = "Alibaba Cloud DashScope"

    def start(self, photo: Photo) -> Draft:
        client = DashScopeClient()
        try:
            edited = client.erase_people(photo)
        finally:
            client.close()
        frame = composite.decode_edited(edited.data)
        # Whether the model removed anything we can find decides what the download will be: tell
        # the visitor before they spend a code on a copy of their own photo.
        changes = composite.find_changes(photo.open_reduced(composite.WORKING_LONG_SIDE), frame)
        note = "" if changes.any else _(
            "We found no one to remove in this photo: the download would look like your original."
        )
        return Draft(preview=_with_alpha_of(photo, frame), carry=edited.data, note=note)

    def finish(self, photo: Photo, carry: bytes | None) -> Result:
        if not carry:
            raise EngineError(
                _("This result is no longer available. Please upload your photo again."),
                "dashscope finish without the model's frame",
            )
        return composite.full_resolution_result(photo, carry)


def _with_alpha_of(photo: Photo, frame: Image.Image) -> Image.Image:
    """The model's frame, with the photo's transparency when it has any, as the download will be."""
    if not photo.has_alpha:
        return frame
    alpha = photo.open_reduced(max(frame.size)).getchannel("A").resize(frame.size, Image.Resampling.BILINEAR)
    preview = frame.convert("RGBA")
    preview.putalpha(alpha)
    return preview

