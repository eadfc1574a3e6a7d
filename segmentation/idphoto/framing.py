"""Where the ID photo lies in the visitor's photo: one usable face, levelled, sized and placed as
the spec asks, or a refusal that says what to change.

All of it works on the working image (about 1536 px) and the person's mask from the cutout
engine's first pass; the answer is an affine map from the photo's *relative* coordinates (0..1
across, 0..1 down) to the ID photo's pixels, so the same framing applies to the preview and to
the full-resolution photo at unlock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from django.utils.translation import gettext as _

from segmentation.engines.faces import Face, detect_faces
from segmentation.idphoto.specs import Spec

# A second face at least this share of the largest face's width is another person in the photo;
# smaller ones are far behind (passers-by) and do not stop the photo.
SECOND_FACE_SHARE = 0.5
# Levelling: tilts up to this many degrees are straightened; beyond it the head is not upright.
MAX_TILT_DEGREES = 12
# The nose tip's sideways offset from the middle of the eyes, in eye distances: 0.01 on skimage's
# astronaut (looking at the camera), 0.99 on skimage's cameraman (face turned to his camera). The
# nose tip stands about half an eye distance in front of the eyes, so a 30° turn moves it ~0.25.
MAX_NOSE_OFFSET = 0.25
# Chin below the mouth, in eye-to-mouth distances: adult faces measure 0.7–0.8 (pupil to mouth
# about 65 mm, mouth to chin about 48 mm); 0.74 on skimage's astronaut.
CHIN_BELOW_MOUTH = 0.75
# The top of the hair above the eyes, in eye distances, when the mask cannot say: on adults it is
# 1.6–2.2; masks are believed between these bounds (big hair included, a hat's crown not).
HEAD_TOP_ABOVE_EYES = (1.3, 3.2)
# The mask counts as the person where it is at least this opaque.
SOLID = 0.5
# The photo must hold the shoulders: after lowering the head as far as the spec allows, the crop
# may reach past the photo's bottom edge by at most this share of the ID photo's height (its last
# rows are then repeated: 6 % showed as streaks on a jacket, 2 % does not).
MAX_BOTTOM_OVERHANG = 0.02
# Specs that place the eye line leave at least this share of the height above the hair, when their
# eye-line range allows it.
MIN_TOP_MARGIN = 0.06
# Upscaling beyond this blurs the print: the face is too small in the photo for the spec.
MAX_UPSCALE = 1.5
# Mean brightness (0..255, BT.601 luma) of the face below which the photo is too dark to use:
# faces lit for a photo measure 100–180, a dim room 60–80, a face in shadow 25–40.
MIN_FACE_BRIGHTNESS = 55


class Refused(Exception):
    """The photo cannot make this ID photo; `message` tells the visitor what to change."""

    def __init__(self, message: str, reason: str):
        super().__init__(reason)
        self.message = message
        self.reason = reason  # for the operator's log and the tests


@dataclass(frozen=True)
class Framing:
    matrix: np.ndarray  # 2×3: relative photo coordinates → ID photo pixels
    angle: float  # degrees the photo was turned to level the eyes
    head_px: float  # head height on the ID photo
    eyes_from_bottom_px: float
    top_margin_px: float

    def for_size(self, width: int, height: int) -> np.ndarray:
        """The 2×3 map from pixels of the photo at this size to the ID photo's pixels."""
        return self.matrix @ np.diag([1 / width, 1 / height, 1.0])


def the_face(rgb: np.ndarray) -> Face:
    """The one usable face of the photo, or Refused."""
    faces = detect_faces(rgb)
    if not faces:
        if _brightness(rgb) < MIN_FACE_BRIGHTNESS:
            raise Refused(_too_dark(), "too dark, no face found")
        raise Refused(
            _(
                "We could not find a face in this photo. Please use a photo of one person looking at the camera, "
                "with the face well lit and filling a good part of the picture."
            ),
            "no face",
        )
    widest = max(face.box[2] for face in faces)
    usable = [face for face in faces if face.box[2] >= SECOND_FACE_SHARE * widest]
    if len(usable) > 1:
        raise Refused(
            _(
                "We found more than one face in this photo. "
                "An ID photo shows one person: please use a photo of you alone."
            ),
            f"{len(usable)} faces",
        )
    face = usable[0]
    left, top, width, height = (int(round(v)) for v in face.box)
    box = rgb[max(0, top) : max(0, top + height), max(0, left) : max(0, left + width)]
    if box.size and _brightness(box) < MIN_FACE_BRIGHTNESS:
        raise Refused(_too_dark(), f"face brightness {_brightness(box):.0f}")
    tilt = _tilt(face)
    offset = _nose_offset(face, tilt)
    if abs(tilt) > MAX_TILT_DEGREES or abs(offset) > MAX_NOSE_OFFSET:
        raise Refused(
            _(
                "The face is turned or tilted. "
                "Please use a photo in which you look straight at the camera, head upright."
            ),
            f"tilt {tilt:.1f}°, nose offset {offset:.2f}",
        )
    return face


def _too_dark() -> str:
    return _("This photo is too dark to use. Please take it again in good, even light, facing a window or a lamp.")


def _brightness(rgb: np.ndarray) -> float:
    return float(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).mean())


def _tilt(face: Face) -> float:
    """Degrees the eye line rises from the person's right eye to their left (clockwise on screen)."""
    dx, dy = face.left_eye - face.right_eye
    return math.degrees(math.atan2(dy, dx))


def _nose_offset(face: Face, tilt: float) -> float:
    """The nose tip's sideways offset from the middle of the eyes, along the eye line, in eye
    distances: 0 for a face looking straight at the camera."""
    direction = np.array([math.cos(math.radians(tilt)), math.sin(math.radians(tilt))])
    return float((face.landmarks[2] - face.eye_centre) @ direction) / max(face.eye_distance, 1e-6)


def frame(face: Face, alpha: np.ndarray, spec: Spec, full_size: tuple[int, int]) -> Framing:
    """The framing of `spec` around `face`, found in the working image whose person mask is `alpha`
    (H×W, uint8 or float 0..1, the working image's size); `full_size` is the photo's own (width,
    height). Refused when the head is cut by the frame, the shoulders are missing or the face is
    too small for the spec."""
    height, width = alpha.shape
    solid = (alpha.astype(np.float32) / (255 if alpha.dtype == np.uint8 else 1)) >= SOLID
    tilt = _tilt(face)
    centre = face.eye_centre
    eye_distance = face.eye_distance
    # Level the eyes: turn the photo about the middle of the eyes by the tilt.
    level = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), tilt, 1.0)
    levelled_mask = cv2.warpAffine(solid.astype(np.uint8), level, (width, height), flags=cv2.INTER_NEAREST)
    points = _apply(level, face.landmarks)
    eye_y = float((points[0, 1] + points[1, 1]) / 2)
    mouth_y = float(points[3, 1])
    chin_y = mouth_y + CHIN_BELOW_MOUTH * (mouth_y - eye_y)
    head_top = _head_top(levelled_mask, float(centre[0]), eye_y, eye_distance)
    _refuse_cut_head(solid, face)
    head = chin_y - head_top
    target_head = spec.px(sum(spec.head_mm) / 2)
    scale = target_head / head
    out_w, out_h = spec.width_px, spec.height_px
    if spec.top_margin_mm is not None:
        top_margin = spec.px(sum(spec.top_margin_mm) / 2)
        offset_y = top_margin - scale * head_top
        slack = spec.px(spec.top_margin_mm[1]) - top_margin  # how far the head may still go down
    else:
        # The middle of the eye-line range, lowered (within the range) when big hair would
        # otherwise come closer than MIN_TOP_MARGIN to the top edge.
        lowest, middle = spec.px(spec.eyes_from_bottom_mm[0]), spec.px(sum(spec.eyes_from_bottom_mm) / 2)
        room = out_h - middle - scale * (eye_y - head_top)
        eyes_from_bottom = max(lowest, middle - max(0.0, MIN_TOP_MARGIN * out_h - room))
        offset_y = (out_h - eyes_from_bottom) - scale * eye_y
        slack = eyes_from_bottom - lowest
    offset_x = out_w / 2 - scale * float(centre[0])

    def to_output(offset_y: float) -> np.ndarray:  # working pixels → ID photo pixels
        return np.array([[scale, 0, offset_x], [0, scale, offset_y]]) @ np.vstack([level, [0, 0, 1]])

    def overhang(offset_y: float) -> float:
        """How far (ID photo pixels) the ID photo's bottom edge reaches below the photo's."""
        back = cv2.invertAffineTransform(to_output(offset_y))
        corners = _apply(back, np.array([[0, out_h], [out_w, out_h], [out_w / 2, out_h]], np.float64))
        return (corners[:, 1].max() - height) * scale

    # The shoulders must reach the bottom edge from the photo itself: where the photo ends too
    # soon, the head goes lower, as far as the spec's range allows (twice: the turn tilts the edge).
    for _attempt in range(2):
        shift = min(max(0.0, overhang(offset_y)), slack)
        offset_y, slack = offset_y + shift, slack - shift
    if overhang(offset_y) > MAX_BOTTOM_OVERHANG * out_h:
        raise Refused(
            _("The photo ends too close below the chin. Please use a photo that shows your shoulders."),
            f"bottom overhang {overhang(offset_y) / out_h:.2f}",
        )
    matrix = to_output(offset_y)
    # Pixels of the full photo per pixel of the ID photo.
    upscale = scale * width / full_size[0]
    if upscale > MAX_UPSCALE:
        raise Refused(
            _(
                "The face is too small in this photo for this ID photo size. Please come closer to the camera, "
                "or use a sharper photo of your head and shoulders."
            ),
            f"upscale {upscale:.2f}",
        )
    relative = matrix @ np.diag([width, height, 1.0])
    return Framing(
        matrix=relative,
        angle=tilt,
        head_px=head * scale,
        eyes_from_bottom_px=out_h - (scale * eye_y + offset_y),
        top_margin_px=scale * head_top + offset_y,
    )


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _head_top(levelled_mask: np.ndarray, centre_x: float, eye_y: float, eye_distance: float) -> float:
    """The top of the hair, in rows of the levelled working image: the highest row where the
    person's mask covers the middle of the head (a band one eye distance wide), within what a
    head can measure above the eyes."""
    highest, lowest = eye_y - HEAD_TOP_ABOVE_EYES[1] * eye_distance, eye_y - HEAD_TOP_ABOVE_EYES[0] * eye_distance
    band = levelled_mask[:, max(0, int(centre_x - eye_distance / 2)) : int(centre_x + eye_distance / 2) + 1]
    rows = np.flatnonzero(band[: max(0, int(eye_y))].any(axis=1))
    if rows.size == 0:
        return lowest
    # The mask must run unbroken from there down to the eyes: a speck of background misread as
    # the person, above the head, is not its top.
    covered = band[: int(eye_y)].any(axis=1)
    top = int(eye_y) - 1
    while top > 0 and covered[top - 1]:
        top -= 1
    return float(min(max(top, highest), lowest))


def _refuse_cut_head(solid: np.ndarray, face: Face) -> None:
    """The head must be whole in the photo: no part of the person's mask above the eyes may touch
    the photo's top edge over the head, and the face's box must lie inside the photo."""
    height, width = solid.shape
    left, top, box_width, box_height = face.box
    cut = left < 0 or top < 0 or left + box_width > width or top + box_height > height
    span = slice(max(0, int(left)), min(width, int(left + box_width) + 1))
    if not cut and solid[0:2, span].any():
        cut = True
    if cut:
        raise Refused(
            _(
                "The head is cut off by the edge of the photo. "
                "Please use a photo with some space above and beside your head."
            ),
            "head cut by the frame",
        )
