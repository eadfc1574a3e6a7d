"""Who a cutout keeps: the photo's subject, and everyone who belongs with them.

The subject is the largest person, favouring the centre. The people with them are those of about
their size (standing at about their distance from the camera: a group stays a group) who are
mostly inside the frame, and anyone whose outline touches theirs (a child on a lap, a hug). A
stranger's arm or shoulder cut by the frame edge, and small people further back, go.
"""

from __future__ import annotations

import cv2
import numpy as np

from segmentation.engines.people import Person
from segmentation.pixels import disk

# Someone at least this share of the subject's size, by any of three measures (`Person.sizes`:
# body height, torso, head), stands roughly beside them. Measured on bench/people.py's pair and
# group scenes: companions 0.69–1.0 of the subject by the best measure, passers-by behind them
# 0.13–0.4 by every measure.
SAME_DISTANCE = 0.6
# A companion shows at least this share of their body's landmarks inside the frame; a stranger
# cut by the edge shows a third or less (a shoulder and an arm).
MOSTLY_INSIDE = 0.5
TOUCHING = 0.02  # of the subject's height: outlines this close touch


def main_person(people: list[Person]) -> Person:
    """The largest person, favouring the centre: someone at a corner must be twice the size of
    someone at the centre to count as the subject."""
    width, height = people[0].image_size
    half_diagonal = np.hypot(width, height) / 2

    def weight(person: Person) -> float:
        x, y = person.centre
        off_centre = np.hypot(x - width / 2, y - height / 2) / half_diagonal
        return person.area * (1 - 0.5 * off_centre)

    return max(people, key=weight)


def subject_group(people: list[Person]) -> list[Person]:
    """The people a cutout keeps, the main subject first; empty when there is nobody."""
    if not people:
        return []
    subject = main_person(people)
    near = _grown(subject, max(1, round(TOUCHING * subject.height)))
    group = [subject]
    for person in people:
        if person is subject:
            continue
        alike = any(theirs >= SAME_DISTANCE * ours for theirs, ours in zip(person.sizes, subject.sizes, strict=True))
        beside = alike and person.share_in_frame >= MOSTLY_INSIDE
        if beside or _touches(person, near):
            group.append(person)
    return group


def touches(person: Person, subject: Person) -> bool:
    """Whether the person's outline touches the subject's (a hug, a child on a lap, or a second
    reading of part of the subject)."""
    return _touches(person, _grown(subject, max(1, round(TOUCHING * subject.height))))


def _grown(person: Person, reach: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The person's solid outline grown by `reach` pixels, with its origin."""
    solid = np.pad((person.mask >= 128).astype(np.uint8), reach)
    return cv2.dilate(solid, disk(reach)) > 0, (person.origin[0] - reach, person.origin[1] - reach)


def _touches(person: Person, near: tuple[np.ndarray, tuple[int, int]]) -> bool:
    grown, (gx, gy) = near
    left, top = max(gx, person.origin[0]), max(gy, person.origin[1])
    right = min(gx + grown.shape[1], person.origin[0] + person.mask.shape[1])
    bottom = min(gy + grown.shape[0], person.origin[1] + person.mask.shape[0])
    if right <= left or bottom <= top:
        return False
    theirs = person.mask[
        top - person.origin[1] : bottom - person.origin[1], left - person.origin[0] : right - person.origin[0]
    ]
    ours = grown[top - gy : bottom - gy, left - gx : right - gx]
    return bool(np.any(ours & (theirs >= 128)))
