"""Cutout by remove.bg, paying for the full-size result only when it is wanted.

REMOVEBG_FULL_RESULT chooses when the 1-credit full-size call happens:

* `on_unlock` (default): at upload a `size=preview` call (0.25 credit) makes the preview; the
  full-size call runs in `finish`, after a visitor's code was reserved. 0.25 per visitor plus 1 per
  unlock: cheaper than `upfront` whenever fewer than 75% of visitors unlock.
* `upfront`: one full-size call at upload; the preview is scaled down from it and the result waits
  in `carry`, so unlocking costs no second call and no wait.

A job keeps what its start produced: `finish` looks at `carry`, not at the current setting.

When the account cannot pay for the call (segmentation.providers.removebg_account), the upload
still gets its preview: from a preview call when the balance covers one, else from the embedded
engine, without a carry, so that the full result is remove.bg's once credits are back. Until then
the job page says the full-resolution service is unavailable, before any code is spent.
"""

from __future__ import annotations

import io

from django.conf import settings
from PIL import Image

from segmentation.engines.base import Draft, Engine, Result, provider_failure
from segmentation.intake import Photo
from segmentation.pixels import encode_png, fit_pixels
from segmentation.previews import PREVIEW_MAX_PIXELS
from segmentation.providers import removebg, removebg_account
from segmentation.providers.http import ProviderError


def cut_out(photo: Photo, size: str) -> Image.Image:
    """remove.bg's cutout, or an EngineError saying what went wrong."""
    try:
        return removebg.cut_out(photo, size)
    except ProviderError as error:
        raise provider_failure(error, removebg.MESSAGES) from error


class RemoveBgCutout(Engine):
    def start(self, photo: Photo) -> Draft:
        if not removebg_account.can_afford(removebg_account.PREVIEW_CREDITS):
            from segmentation.engines.local import LocalCutout

            return Draft(preview=LocalCutout().start(photo).preview, carry=None)
        if settings.REMOVEBG_FULL_RESULT == "upfront" and removebg_account.can_afford(removebg_account.FULL_CREDITS):
            cutout = cut_out(photo, "full")
            # The full result is in memory already: scaling it down is cheaper than decoding
            # anything again, and the preview renderer only needs about 0.25 MP.
            preview = fit_pixels(cutout, PREVIEW_MAX_PIXELS)
            return Draft(preview=preview, carry=encode_png(cutout))
        return Draft(preview=cut_out(photo, "preview"), carry=None)

    def finish(self, photo: Photo, carry: bytes | None) -> Result:
        if carry is not None:
            with Image.open(io.BytesIO(carry)) as im:  # reads the header only
                width, height = im.size
            return Result(carry, "image/png", width, height)
        # remove.bg caps `full` at 25 MP, so the size is the output's, not the photo's.
        cutout = cut_out(photo, "full")
        return Result(encode_png(cutout), "image/png", cutout.width, cutout.height)


def full_result_unavailable(has_carry: bool) -> bool:
    """True when unlocking a job would need a full-size call the account cannot pay for."""
    return not has_carry and not removebg_account.can_afford(removebg_account.FULL_CREDITS)
