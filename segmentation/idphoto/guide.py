"""What the job page draws and offers for an ID photo: the guide over the preview (where the
spec wants the head and the eyes) and the background swatches."""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from segmentation.idphoto.specs import Spec

# The eye line lies about halfway down the head measured from chin to top of hair (0.54 on
# skimage's astronaut); a head, hair included, is about 0.75 as wide as it is high.
EYES_BELOW_TOP = 0.52
HEAD_WIDTH_SHARE = 0.75

# (value for ?background=, RRGGBB, CSS class of the swatch and stage, name)
COLOURS = [
    ("white", "FFFFFF", "white", gettext_lazy("White")),
    ("blue", "438EDB", "blue", gettext_lazy("Blue")),
    ("red", "BE0000", "red", gettext_lazy("Red")),
    ("E6E6E6", "E6E6E6", "grey", gettext_lazy("Light grey")),
]


def guide(spec: Spec) -> dict:
    """The head oval and the eye line, in the spec's pixels, at the middle of its ranges."""
    head = spec.px(sum(spec.head_mm) / 2)
    if spec.top_margin_mm is not None:
        top = spec.px(sum(spec.top_margin_mm) / 2)
        eye_y = top + EYES_BELOW_TOP * head
    else:
        eye_y = spec.height_px - spec.px(sum(spec.eyes_from_bottom_mm) / 2)
        top = eye_y - EYES_BELOW_TOP * head
    return {
        "cx": spec.width_px / 2,
        "cy": round(top + head / 2, 1),
        "rx": round(HEAD_WIDTH_SHARE * head / 2, 1),
        "ry": round(head / 2, 1),
        "eye_y": round(eye_y, 1),
    }


def id_photo_backgrounds(spec: Spec) -> list[tuple[str, str, str]]:
    """(value, label, CSS class) of each background offered: the spec's own first, then the
    site's white, blue and red."""
    offered = []
    for value, colour, css, name in COLOURS:
        if colour == spec.background:
            offered.insert(0, ("default", _("%(colour)s (standard for this size)") % {"colour": name}, css))
        elif value in ("white", "blue", "red"):
            offered.append((value, str(name), css))
    return offered
