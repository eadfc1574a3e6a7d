"""The ID-photo sizes the site makes: one row each, as their issuing authorities publish them.

Lengths are millimetres on the printed photo; pixels are at 300 dpi. The head is measured from the
bottom of the chin to the top of the hair. Each spec places the head vertically by one rule: the
eye line's height above the bottom edge, or the margin between the top of the head and the top
edge. The framing aims at the middle of each range.

Sources, as read on 2026-12-04:

* us-2x2 — U.S. Department of State, "Photo Requirements" and its "Photo Composition Template"
  (travel.state.gov, U.S. passports and visas): 2 × 2 in; head 1–1⅜ in (25–35 mm) from the bottom
  of the chin to the top of the head including the hair; eye line 1⅛–1⅜ in (28–35 mm) from the
  bottom of the photo; a plain white or off-white background.
* intl-35x45 — 35 × 45 mm, used by the UK, the Schengen states and many others. GOV.UK, "Photos for
  passports": head (chin to crown) 29–34 mm, plain light grey or cream background. The Schengen
  states follow ICAO Doc 9303 Part 3 and ISO/IEC 19794-5 (e.g. the German Bundesdruckerei's
  "Fotomustertafel"): head 32–36 mm, eye line 50–70 % of the photo's height from the bottom
  (22.5–31.5 mm). We use the overlap of both, 32–34 mm, so one photo meets both; the eye line
  rule is ISO's; the background is the light grey both accept.
* cn-passport — Ministry of Public Security, GA 461-2004 "居民身份证与出入境证件照相技术规范" and
  the National Immigration Administration's "出入境证件相片照相指引": 33 × 48 mm; head width
  15–22 mm, head height 28–33 mm; 3–5 mm from the top of the head to the top edge; white
  background.
* cn-1inch 一寸 (25 × 35 mm) and cn-2inch 二寸 (35 × 49 mm) — no authority publishes head rules
  for these; studios and exam or HR forms ask for the same look as the passport photo on a blue,
  white or red background (blue is the most requested for 一寸 and 二寸). We scale GA 461's
  proportions to each height: head 58–69 % of it (28–33 of 48 mm), top margin 6–10 % (3–5 of
  48 mm); blue (#438EDB) by default.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

DPI = 300
MM_PER_INCH = 25.4


@dataclass(frozen=True)
class Spec:
    key: str
    name: Promise  # what the visitor picks from
    width_px: int
    height_px: int
    head_mm: tuple[float, float]  # chin to top of hair, min and max
    background: str  # RRGGBB, the authority's (or the custom's) colour
    eyes_from_bottom_mm: tuple[float, float] | None = None
    top_margin_mm: tuple[float, float] | None = None

    @property
    def size_mm(self) -> tuple[float, float]:
        return (self.width_px / DPI * MM_PER_INCH, self.height_px / DPI * MM_PER_INCH)

    def px(self, mm: float) -> float:
        """Millimetres on the print as pixels of the photo."""
        return mm / MM_PER_INCH * DPI


WHITE, BLUE, LIGHT_GREY = "FFFFFF", "438EDB", "E6E6E6"

SPECS = {
    spec.key: spec
    for spec in [
        Spec("cn-1inch", _("1 inch (一寸), 25×35 mm"), 295, 413, (20.4, 24.1), BLUE, top_margin_mm=(2.2, 3.6)),
        Spec("cn-2inch", _("2 inch (二寸), 35×49 mm"), 413, 579, (28.6, 33.7), BLUE, top_margin_mm=(3.1, 5.1)),
        Spec(
            "intl-35x45",
            _("35×45 mm (UK, Schengen and others)"),
            413,
            531,
            (32, 34),
            LIGHT_GREY,
            eyes_from_bottom_mm=(22.5, 31.5),
        ),  # fmt: skip
        Spec(
            "us-2x2",
            _("2×2 in (US passport and visa)"),
            600,
            600,
            (25.4, 34.9),
            WHITE,
            eyes_from_bottom_mm=(28.6, 34.9),
        ),  # fmt: skip
        Spec(
            "cn-passport", _("Chinese passport and visa, 33×48 mm"), 390, 567, (28, 33), WHITE, top_margin_mm=(3, 5)
        ),  # fmt: skip
    ]
}
DEFAULT_SPEC = "cn-1inch"
