"""Cutout by remove.bg, paying for the full-size result only when it is wanted.

REMOVEBG_FULL_RESULT chooses when the 1-credit full-size call happens:

* `on_unlock` (default): at upload a `size=preview` call (0.25 credit) makes the preview; the
  full-size call runs in `finish`, after a visitor's code was reserved. 0.25 per visitor plus 1 per
  unlock: cheaper than `upfront` whenever fewer than 75% of visitors unlock.
* `upfront`: one full-size call at upload; the preview is scaled down from it and the result waits
  in `carry`, so unlocking costs no second call and no wait.

A job keeps what its start produced: `finish` looks at `carry`, not at the current setting.

Choosing who stays costs no call. At upload the embedded people finder also runs on the working
image, and a person counts as kept when remove.bg's alpha covers most of their outline
(`provider_people`): that is the starting choice, and its download is remove.bg's cutout as it
came. Cutting someone away multiplies remove.bg's alpha by zero in a zone around them (their
outline grown a little, plus whatever of remove.bg's foreground hangs on to them there, such as a
bag), with a soft seam, and never within reach of a person kept. Nobody can be added back: remove.bg
did not cut out a person it left out, so its cutout has nothing to show of them, and asking again
would give the same answer. Preview and download use the same zones, worked out at the working size
from the preview-size cutout, so they agree.

The carry (`RBC1` sections): the cast (people and choices), remove.bg's preview-size cutout, and
once it exists remove.bg's raw full-size cutout (at upload in `upfront`; after the first unlock in
`on_unlock`, handed back as `Result.carry`), so a changed choice after unlocking needs no call.

When the account cannot pay for the call (segmentation.providers.removebg_account), the upload
still gets its preview: from a preview call when the balance covers one, else from the embedded
engine, without a carry (and so without a choice), so that the full result is remove.bg's once
credits are back. Until then the job page says the full-resolution service is unavailable, before
any code is spent.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from django.conf import settings
from django.utils.translation import gettext as _
from PIL import Image

from segmentation.engines import provider_people
from segmentation.engines.base import Draft, Engine, EngineError, PersonChoice, Result, provider_failure
from segmentation.engines.provider_people import Cast
from segmentation.engines.sections import pack_sections, unpack_sections
from segmentation.intake import Photo
from segmentation.pixels import encode_png, fit_pixels
from segmentation.previews import PREVIEW_MAX_PIXELS
from segmentation.providers import removebg, removebg_account
from segmentation.providers.http import ProviderError

_MAGIC = b"RBC1"
# remove.bg's foreground, for what hangs on to a person cut away: alpha at least this (of 255).
FOREGROUND = 128


def cut_out(photo: Photo, size: str) -> Image.Image:
    """remove.bg's cutout, or an EngineError saying what went wrong."""
    try:
        return removebg.cut_out(photo, size)
    except ProviderError as error:
        raise provider_failure(error, removebg.MESSAGES) from error


class RemoveBgCutout(Engine):
    def __init__(self, offers_choice: bool = True):
        # Without a choice (ID photos frame one person) nobody is looked for, and the carry is what
        # it was before choices: nothing, or in `upfront` the full cutout's PNG alone.
        self.offers_choice = offers_choice

    def start(self, photo: Photo) -> Draft:
        if not removebg_account.can_afford(removebg_account.PREVIEW_CREDITS):
            from segmentation.engines.local import LocalCutout

            return Draft(preview=LocalCutout().start(photo).preview, carry=None)
        full_png = None
        if settings.REMOVEBG_FULL_RESULT == "upfront" and removebg_account.can_afford(removebg_account.FULL_CREDITS):
            cutout = cut_out(photo, "full")
            # The full result is in memory already: scaling it down is cheaper than decoding
            # anything again, and the preview renderer only needs about 0.25 MP.
            preview = fit_pixels(cutout, PREVIEW_MAX_PIXELS)
            full_png = encode_png(cutout)
            del cutout
        else:
            preview = cut_out(photo, "preview")
        if not self.offers_choice:
            return Draft(preview=preview, carry=full_png)
        size, people = provider_people.find(photo, small=False)
        shares = provider_people.covered(people, size, np.asarray(preview.getchannel("A"), np.float32) / 255)
        kept = {i for i, share in enumerate(shares) if share > provider_people.MOSTLY}
        cast = provider_people.cast_of(size, people, kept)
        return Draft(preview=preview, carry=_pack(cast, encode_png(preview), full_png))

    def finish(self, photo: Photo, carry: bytes | None) -> Result:
        if carry is None:  # the embedded engine made the preview: remove.bg's cutout as it comes
            cutout = cut_out(photo, "full")
            return Result(encode_png(cutout), "image/png", cutout.width, cutout.height)
        if carry.startswith(b"\x89PNG"):  # no choice (or a job started before choices): the result
            return _result(carry)
        cast, preview_png, full_png = _unpack(carry)
        if full_png is not None:
            if not cast.changed:
                return _result(full_png)
            cutout = _decode(full_png)
            kept = _chosen(cast, _decode(preview_png), cutout)
            return Result(encode_png(kept), "image/png", kept.width, kept.height)
        # remove.bg caps `full` at 25 MP, so the size is the output's, not the photo's.
        cutout = cut_out(photo, "full")
        full_png = encode_png(cutout)
        # The raw cutout stays with the job: a changed choice after unlocking is made from it.
        new_carry = _pack(cast, preview_png, full_png)
        if not cast.changed:
            return Result(full_png, "image/png", cutout.width, cutout.height, carry=new_carry)
        kept = _chosen(cast, _decode(preview_png), cutout)
        return Result(encode_png(kept), "image/png", kept.width, kept.height, carry=new_carry)

    def people(self, carry: bytes | None) -> list[PersonChoice]:
        if carry is None or carry.startswith(b"\x89PNG"):
            return []
        return _unpack(carry)[0].choices()

    def choose(self, photo: Photo, carry: bytes | None, keep: frozenset[int]) -> Draft:
        if carry is None or carry.startswith(b"\x89PNG"):
            return super().choose(photo, carry, keep)
        cast, preview_png, full_png = _unpack(carry)
        if not keep <= set(range(len(cast.people))):
            raise EngineError(_("This photo offers no such person."), f"remove.bg choice: unknown ids {sorted(keep)}")
        if keep - cast.start:
            raise EngineError(
                _(
                    "The background-removal service left out someone you chose to keep. We can take people "
                    "out of its cutout, but we cannot add anyone it left out."
                ),
                f"remove.bg choice: ids {sorted(keep - cast.start)} were not in remove.bg's cutout",
            )
        cast = cast.with_keep(keep)
        preview = _decode(preview_png)
        return Draft(preview=_chosen(cast, preview, preview), carry=_pack(cast, preview_png, full_png))


def full_result_unavailable(has_carry: bool) -> bool:
    """True when unlocking a job would need a full-size call the account cannot pay for.

    Every job remove.bg started carries its people now, so a carry alone no longer says the full
    result is there: only an `upfront` job's carry holds it. The job page knows only whether there
    is a carry, so a job is judged by the current setting; it misjudges only a job whose setting
    changed during its 30 minutes while the balance was below one credit (and a code reserved in
    vain is given back)."""
    if removebg_account.can_afford(removebg_account.FULL_CREDITS):
        return False
    return not (has_carry and settings.REMOVEBG_FULL_RESULT == "upfront")


def _chosen(cast: Cast, preview: Image.Image, cutout: Image.Image) -> Image.Image:
    """`cutout` (RGBA, any size) with the people the visitor cut away made transparent. The zones
    are worked out on `preview` (remove.bg's preview-size cutout), so the preview and the download
    agree; the starting choice leaves the cutout as remove.bg made it."""
    if not cast.changed:
        return cutout
    weight = _keep_weight(cast, np.asarray(preview.getchannel("A")))
    interpolation = cv2.INTER_LINEAR if cutout.width >= weight.shape[1] else cv2.INTER_AREA
    weight = cv2.resize(weight, cutout.size, interpolation=interpolation)
    # Where the weight is 255 (everyone kept, and everything away from those cut away) the alpha
    # is remove.bg's exactly.
    alpha = cv2.multiply(np.asarray(cutout.getchannel("A")), weight, scale=1 / 255)
    cutout.putalpha(Image.fromarray(alpha))
    return cutout


def _keep_weight(cast: Cast, preview_alpha: np.ndarray) -> np.ndarray:
    """uint8 at the working size: 255 where remove.bg's alpha stands, 0 where the choice cuts
    away, a soft seam between. The zone cut away: the outlines of the people kept by remove.bg but
    not by the visitor, grown by REACH, plus the parts of remove.bg's foreground that touch that
    and no kept person (what they carry, an arm the finder missed); never near a kept person."""
    size = cast.size
    everyone = range(len(cast.people))
    foreground = cv2.resize(preview_alpha, size, interpolation=cv2.INTER_LINEAR) >= FOREGROUND
    kept = provider_people.reach(provider_people.solid(cast, cast.keep, size))
    going = [i for i in everyone if i in cast.start and i not in cast.keep]
    gone = provider_people.reach(provider_people.solid(cast, going, size)) & ~kept
    rest = (foreground & ~kept & ~gone).astype(np.uint8)
    count, labels = cv2.connectedComponents(rest, connectivity=8)
    touching = cv2.dilate(gone.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    attached_labels = np.unique(labels[touching & (rest > 0)])
    attached = np.isin(labels, attached_labels[attached_labels > 0])
    return 255 - provider_people.soften(gone | attached, protected=kept)


def _pack(cast: Cast, preview_png: bytes, full_png: bytes | None) -> bytes:
    sections = {"cast": provider_people.pack_cast(cast), "preview": preview_png}
    if full_png is not None:
        sections["full"] = full_png
    return pack_sections(_MAGIC, sections)


def _unpack(carry: bytes) -> tuple[Cast, bytes, bytes | None]:
    try:
        sections = unpack_sections(_MAGIC, carry)
        return provider_people.unpack_cast(sections["cast"]), sections["preview"], sections.get("full")
    except (ValueError, KeyError) as error:
        raise EngineError(
            _("This result is no longer available. Please upload your photo again."), f"remove.bg carry: {error!r}"
        ) from error


def _decode(png: bytes) -> Image.Image:
    try:
        with Image.open(io.BytesIO(png)) as im:
            if im.format != "PNG":
                raise ValueError(f"expected a PNG, got {im.format}")
            return im.convert("RGBA")
    except (OSError, ValueError) as error:
        raise EngineError(
            _("This result is no longer available. Please upload your photo again."), f"remove.bg carry: {error!r}"
        ) from error


def _result(png: bytes) -> Result:
    with Image.open(io.BytesIO(png)) as im:  # reads the header only
        width, height = im.size
    return Result(png, "image/png", width, height)
