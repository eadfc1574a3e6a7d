"""ID photos: the cutout engine in use cuts the person out, and this engine frames them to a spec.

* start: the face is found and checked on the working image first (a refused photo costs no
  provider call), then the cutout engine's own first pass runs; its mask gives the top of the
  head, the framing is fixed, and the preview is the framed cutout at the spec's size. The carry
  is the framing plus the cutout engine's own carry.
* finish: the cutout engine's own second pass (remove.bg's full-size call, or the local matte at
  full size), framed the same way. The result is the framed RGBA cutout at the spec's size; every
  background, the print sheet and the size-capped JPEG are made from it at download, so none of
  them costs another code or another provider call.
"""

from __future__ import annotations

import io
import json
import struct

import cv2
import numpy as np
from django.utils.translation import gettext as _
from PIL import Image

from segmentation.engines.base import Draft, Engine, EngineError, Result
from segmentation.engines.local import unpack_cutout
from segmentation.idphoto.compose import framed_cutout
from segmentation.idphoto.framing import Refused, frame, the_face
from segmentation.idphoto.specs import SPECS
from segmentation.intake import WORKING_LONG_SIDE, Photo
from segmentation.pixels import encode_png

# The carry: the framing as JSON, then the cutout engine's own carry (possibly empty).
_HEADER = struct.Struct(">4sI")
_MAGIC = b"IDP1"


class IdPhoto(Engine):
    def __init__(self, cutout: Engine, spec: str, cutout_name: str):
        self.cutout = cutout
        self.cutout_name = cutout_name  # "local" or "removebg", as in engines_in_use()
        self.spec = SPECS[spec]

    def start(self, photo: Photo) -> Draft:
        working = photo.open_reduced(WORKING_LONG_SIDE)
        rgb = np.asarray(working.convert("RGB"))
        try:
            face = the_face(rgb)
            draft = self.cutout.start(photo)
            alpha = _alpha_at(draft.preview, rgb.shape[1], rgb.shape[0])
            framing = frame(face, alpha, self.spec, (photo.width, photo.height))
        except Refused as refused:
            raise EngineError(refused.message, f"idphoto {self.spec.key}: {refused.reason}") from None
        preview = framed_cutout(rgb, alpha, framing.matrix, self.spec)
        return Draft(preview=preview, carry=_pack(framing.matrix, draft.carry))

    def finish(self, photo: Photo, carry: bytes | None) -> Result:
        if not carry:
            raise EngineError(_("This photo has expired. Please upload it again."), "idphoto: no carry")
        matrix, inner = _unpack(carry)
        alpha = self._mask(photo, inner)
        # The colours come from the photo itself, not from the cutout: the estimate of the
        # person's own edge colours needs the old background where the cutout made it transparent.
        rgb = np.asarray(photo.open().convert("RGB"))
        image = framed_cutout(rgb, alpha, matrix, self.spec)
        return Result(encode_png(image), "image/png", image.width, image.height)

    def _mask(self, photo: Photo, inner: bytes | None) -> np.ndarray:
        """The person's full-resolution mask from the cutout engine's second pass. The local
        engine's carry is already its final matte (at the working size): its second pass would
        only scale it up and encode a 12 MP PNG that is decoded again here, 70 % of this phase
        (bench/idphoto.py), for an ID photo a fifth of the working size. So it is framed as is."""
        if self.cutout_name == "local" and inner:
            alpha = unpack_cutout(inner).matte
        else:
            cutout = self.cutout.finish(photo, inner)
            with Image.open(io.BytesIO(cutout.data)) as result:
                result.load()
                alpha = np.asarray(result.getchannel("A")) if result.mode == "RGBA" else None
        if alpha is None or alpha.ndim != 2:
            raise EngineError(_("Something went wrong while preparing the full-resolution image."), "no mask")
        return alpha


def _alpha_at(preview: Image.Image, width: int, height: int) -> np.ndarray:
    if preview.mode != "RGBA":
        raise EngineError(_("Something went wrong while processing this photo. Please try again."), "no mask")
    alpha = np.asarray(preview.getchannel("A"))
    return cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR)


def _pack(matrix: np.ndarray, inner: bytes | None) -> bytes:
    framing = json.dumps({"matrix": matrix.tolist(), "inner": inner is not None}).encode()
    return _HEADER.pack(_MAGIC, len(framing)) + framing + (inner or b"")


def _unpack(carry: bytes) -> tuple[np.ndarray, bytes | None]:
    magic, length = _HEADER.unpack_from(carry)
    if magic != _MAGIC:
        raise ValueError("not an ID-photo carry")
    framing = json.loads(carry[_HEADER.size : _HEADER.size + length])
    inner = carry[_HEADER.size + length :] if framing["inner"] else None
    return np.array(framing["matrix"], np.float64), inner
