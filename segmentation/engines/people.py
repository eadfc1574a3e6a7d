"""The people finder both embedded tools use: every person in a photo, each with a soft outline.

The pipeline is MediaPipe Pose's, run on every person instead of one:

1. Two detectors propose people. The SSD (Open Images "Person") finds small people and people
   seen from behind, with low scores (0.3–0.6 on real people); the pose detector finds people
   whose face shows, and says which way their body points.
2. Each proposal is cropped square around the person and turned upright; the pose landmark model
   places the body's points in it (`pose.py`).
3. A second look, cropped from those points (hip centre and body-scale point), gives the outline
   and the probability that the crop shows a person at all: the detectors' junk (a chair, a coat
   on a hook) is rejected there.
4. Two looks that landed on the same body are merged (the best kept).

Everything happens on the working image (about 1536 px); each person's outline is kept as the
part of the image around them (`Person.mask` at `Person.origin`), so a dozen people cost little.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from segmentation.engines import pose, runtime
from segmentation.engines.crops import Crop, around, cut, from_points, letterbox, paste, points_to_photo
from segmentation.engines.detection import (
    POSE_ANCHORS,
    SSD_ANCHORS,
    anchors,
    decode_blaze,
    decode_ssd,
    non_max_suppression,
    sigmoid,
)

SSD_FILE = "person_detection_ssd.tflite"
POSE_DETECTOR_FILE = "pose_detection.tflite"
MODEL_FILES = (SSD_FILE, POSE_DETECTOR_FILE, pose.MODEL_FILE, pose.HEAVY_MODEL_FILE)
# The first look only places the body, so the "full" model does (~40 ms); the second draws the
# outline that is kept, with "heavy" (~150 ms). Measured on bench/people.py's composites, outline
# IoU full → heavy: full body 0.954 → 0.963, action 0.897 → 0.927, rotated 0.870 → 0.891, a side
# view cut by two edges 0.50 → 0.82.
OUTLINE_MODEL = pose.HEAVY_MODEL_FILE

SSD_SIDE, POSE_SIDE = 300, 224
SSD_PERSON_CLASS = 4  # in the model's Open Images label map (SOURCE.md)
_SSD_ANCHORS, _POSE_ANCHORS = anchors(SSD_ANCHORS), anchors(POSE_ANCHORS)
# The SSD scores real people 0.3–0.6 (0.59 for the astronaut), while its best "person" on skimage
# photos without anyone is 0.06 (coffee) to 0.09 (rocket): a low bar, since the landmark model's
# presence check behind it rejects what is not a person.
SSD_MIN_SCORE = 0.25
POSE_MIN_SCORE = 0.5  # MediaPipe's pose_detection graph
DETECTION_OVERLAP = 0.4  # boxes overlapping more than this (IoU) are one proposal
MAX_PROPOSALS = 12  # per detector and tile: each may cost two landmark runs (~190 ms)
# The landmark model's presence answer: MediaPipe's pose graph drops a pose below 0.5.
MIN_PRESENCE = 0.5
# Two looks are the same person when their hip centres are within this share of the body's
# height and their heights agree within SAME_HEIGHT.
SAME_PLACE, SAME_HEIGHT = 0.15, 0.3
# Two outlines sharing more than this share of the smaller one are one person read twice (the
# astronaut, read once as a bust and once as a whole figure, shared 0.9); people side by side
# share only where one overlaps the other.
SAME_OUTLINE = 0.6
SURE = 0.9  # presence at which two readings of one body are equally believable
MASK_FLOOR = 8  # of 255: below this a pixel of an outline is dropped (keeps the stored crop tight)


@dataclass(eq=False)  # people are compared by identity: two may look alike
class Person:
    """One person found in the working image."""

    mask: np.ndarray  # uint8 0..255 person probability over the box `origin` + mask.shape
    origin: tuple[int, int]  # (left, top) of `mask` in the working image
    score: float  # the landmark model's presence probability, 0..1
    points: np.ndarray  # 33×2 body landmarks, working pixels (may lie outside the image)
    visibility: np.ndarray  # 33 probabilities that each landmark is visible
    height: float  # the whole body's height in working pixels, however much of it shows
    image_size: tuple[int, int]  # (width, height) of the working image
    area: int = field(init=False)  # pixels at least half a person
    box: tuple[int, int, int, int] = field(init=False)  # left, top, right, bottom of those pixels

    def __post_init__(self) -> None:
        solid = self.mask >= 128
        self.area = int(np.count_nonzero(solid))
        if self.area:
            x, y, w, h = cv2.boundingRect(solid.astype(np.uint8))
            left, top = int(self.origin[0]) + x, int(self.origin[1]) + y
            self.box = (left, top, left + w, top + h)
        else:
            self.box = (self.origin[0], self.origin[1], self.origin[0], self.origin[1])

    @property
    def centre(self) -> tuple[float, float]:
        left, top, right, bottom = self.box
        return (left + right) / 2, (top + bottom) / 2

    @property
    def share_in_frame(self) -> float:
        """How much of the body is inside the picture: the share of the 33 landmarks within it.
        A stranger cut by the frame edge shows a third or less; a portrait cut at the waist half."""
        width, height = self.image_size
        x, y = self.points[:, 0], self.points[:, 1]
        return float(np.mean((x >= 0) & (x < width) & (y >= 0) & (y < height)))

    @property
    def hips_visible(self) -> bool:
        """Both hips inside the picture and seen: a full or three-quarter figure, not a close-up."""
        width, height = self.image_size
        hips = self.points[[pose.LEFT_HIP, pose.RIGHT_HIP]]
        inside = (hips[:, 0] >= 0) & (hips[:, 0] < width) & (hips[:, 1] >= 0) & (hips[:, 1] < height)
        return bool(inside.all() and (self.visibility[[pose.LEFT_HIP, pose.RIGHT_HIP]] > 0.5).all())

    @property
    def sizes(self) -> tuple[float, float, float]:
        """Three measures of how large the person appears, in working pixels: the whole body's
        height, the torso (shoulder centre to hip centre) and the head (nose to shoulder centre).
        Each can fail alone (the body's height of a bust cut by the frame is a guess that varied
        0.9–1.9× on one photo; a footballer bent double has a short head-to-shoulder line), so
        `group.py` compares people by all three."""
        shoulders = (self.points[pose.LEFT_SHOULDER] + self.points[pose.RIGHT_SHOULDER]) / 2
        hips = (self.points[pose.LEFT_HIP] + self.points[pose.RIGHT_HIP]) / 2
        torso = float(np.linalg.norm(shoulders - hips))
        head = float(np.linalg.norm(self.points[pose.NOSE] - shoulders))
        return self.height, torso, head

    def full_mask(self) -> np.ndarray:
        """The outline over the whole working image (uint8)."""
        width, height = self.image_size
        whole = np.zeros((height, width), np.uint8)
        left, top = self.origin
        whole[top : top + self.mask.shape[0], left : left + self.mask.shape[1]] = self.mask
        return whole


def find_people(rgb: np.ndarray, small: bool = False) -> list[Person]:
    """Every person in an H×W×3 uint8 RGB working image, most certain first.

    With `small`, the SSD also looks at tiles two thirds of the frame high, for people under about
    a sixth of the frame's height (passers-by; the cutout has no use for them and saves the time)."""
    height, width = rgb.shape[:2]
    looks: list[pose.Look] = []
    for crop in proposals(rgb, small):
        if any(_covers(other, crop) for other in looks):  # the SSD's box of someone already found
            continue
        first = pose.look(rgb, crop)
        if first.presence < MIN_PRESENCE / 5:  # nothing body-like at all: not worth a second look
            continue
        if any(_same_body(first, other) for other in looks):
            continue
        second = pose.look(rgb, first.next_crop(), OUTLINE_MODEL)
        if second.presence < MIN_PRESENCE:
            continue
        if any(_same_body(second, other) for other in looks):
            continue
        looks.append(second)
    people = [person for person in (_person(found, width, height) for found in looks) if person is not None]
    return merge_duplicates(sorted(people, key=lambda person: -person.score))


def merge_duplicates(people: list[Person]) -> list[Person]:
    """People in order of preference, without the later ones whose outline mostly repeats an
    earlier one's: two looks that read one body differently (a close-up read once as a head and
    shoulders and once as a whole figure whose legs are off the frame) give one person. Of two
    sure readings (presence ≥ SURE) the larger outline stays: a small detector box around a
    walker's upper body is read as a whole small person (presence 0.9999, as sure as the whole
    walker's 0.9998), and keeping it left the legs out."""
    kept: list[Person] = []
    for person in people:
        same = next((index for index, other in enumerate(kept) if _shared(person, other) > SAME_OUTLINE), None)
        if same is None:
            kept.append(person)
        elif person.score >= SURE and person.area > kept[same].area:
            kept[same] = person
    return kept


def _shared(a: Person, b: Person) -> float:
    """Overlap of two outlines (at least half a person) as a share of the smaller one."""
    left, top = max(a.box[0], b.box[0]), max(a.box[1], b.box[1])
    right, bottom = min(a.box[2], b.box[2]), min(a.box[3], b.box[3])
    if right <= left or bottom <= top or not a.area or not b.area:
        return 0.0

    def solid(person: Person) -> np.ndarray:
        x, y = left - person.origin[0], top - person.origin[1]
        return person.mask[y : y + bottom - top, x : x + right - left] >= 128

    return np.count_nonzero(solid(a) & solid(b)) / min(a.area, b.area)


def proposals(rgb: np.ndarray, small: bool = False) -> list[Crop]:
    """Square crops where someone may be: the pose detector's first (they carry the body's
    direction), then the SSD's, then (with `small`) the SSD's on tiles."""
    found = pose_detections(rgb) + ssd_detections(rgb)
    if small:
        height, width = rgb.shape[:2]
        side = min(width, height) * 2 // 3
        for x, y in tiles(width, height, side):
            for crop in ssd_detections(rgb[y : y + side, x : x + side]):
                found.append(Crop(crop.x + x, crop.y + y, crop.side, crop.angle))
    return found


def tiles(width: int, height: int, side: int) -> list[tuple[int, int]]:
    """Top-left corners of square tiles of `side` spread evenly over the image, neighbours
    overlapping by at least a quarter: a person under a quarter of the side is whole in one.
    A 4:3 frame takes 3×2 tiles of two thirds of its height."""

    def starts(length: int) -> list[int]:
        if length <= side:
            return [0]
        count = int(np.ceil((length - side) / (side * 3 / 4))) + 1
        return [round(i * (length - side) / (count - 1)) for i in range(count)]

    return [(x, y) for y in starts(height) for x in starts(width)]


def pose_detections(rgb: np.ndarray) -> list[Crop]:
    """The pose detector on the whole image (letterboxed, as MediaPipe feeds it)."""
    height, width = rgb.shape[:2]
    square = letterbox(width, height)
    tensor = cut(rgb, square, POSE_SIDE)[None].astype(np.float32) * np.float32(2 / 255) - 1
    outputs = runtime.run(POSE_DETECTOR_FILE, tensor)
    scores = sigmoid(outputs["Identity_1"][0, :, 0])
    boxes, points = decode_blaze(outputs["Identity"][0], _POSE_ANCHORS, POSE_SIDE)
    chosen = np.flatnonzero(scores >= POSE_MIN_SCORE)
    kept = chosen[non_max_suppression(boxes[chosen], scores[chosen], DETECTION_OVERLAP)][:MAX_PROPOSALS]
    crops = []
    for index in kept:
        # Key point 0 is the hip centre, 1 the body-scale point (pose_detection_to_roi).
        hip, scale_point = points_to_photo(square, points[index][:2], 1)
        crops.append(from_points(hip, scale_point, pose.CROP_SCALE))
    return crops


def ssd_detections(rgb: np.ndarray) -> list[Crop]:
    """The SSD on the whole image, stretched to its 300×300 input (as objectron feeds it)."""
    height, width = rgb.shape[:2]
    square = cv2.resize(rgb, (SSD_SIDE, SSD_SIDE), interpolation=cv2.INTER_AREA)
    tensor = square[None].astype(np.float32) * np.float32(2 / 255) - 1
    outputs = runtime.run(SSD_FILE, tensor)
    scores = sigmoid(outputs["raw_outputs/class_predictions"][0, :, SSD_PERSON_CLASS])
    boxes = decode_ssd(outputs["raw_outputs/box_encodings"][0], _SSD_ANCHORS)
    chosen = np.flatnonzero(scores >= SSD_MIN_SCORE)
    kept = chosen[non_max_suppression(boxes[chosen], scores[chosen], DETECTION_OVERLAP)][:MAX_PROPOSALS]
    return [around(*(boxes[index] * (width, height, width, height)), scale=pose.CROP_SCALE) for index in kept]


def _covers(found: pose.Look, crop: Crop) -> bool:
    """Whether a proposed crop is centred on someone already found, at about their size."""
    apart = np.hypot(crop.x - found.crop.x, crop.y - found.crop.y)
    return apart < SAME_PLACE * found.crop.side and abs(crop.side - found.crop.side) < SAME_HEIGHT * found.crop.side


def _same_body(a: pose.Look, b: pose.Look) -> bool:
    size = max(a.height, b.height, 1.0)
    apart = np.linalg.norm(a.points[pose.HIP_CENTRE] - b.points[pose.HIP_CENTRE])
    return apart < SAME_PLACE * size and abs(a.height - b.height) < SAME_HEIGHT * size


def _person(found: pose.Look, width: int, height: int) -> Person | None:
    placed = paste(found.outline, found.crop, width, height)
    if placed is None:
        return None
    probability, (left, top) = placed
    mask = np.clip(probability * 255 + 0.5, 0, 255).astype(np.uint8)
    # Keep only the part of the box that holds the outline.
    x, y, w, h = cv2.boundingRect((mask >= MASK_FLOOR).astype(np.uint8))
    if w == 0 or h == 0:
        return None
    return Person(
        mask=np.ascontiguousarray(mask[y : y + h, x : x + w]),
        origin=(int(left + x), int(top + y)),
        score=found.presence,
        points=found.points[pose.BODY].astype(np.float32),
        visibility=found.visibility[pose.BODY].astype(np.float32),
        height=found.height,
        image_size=(width, height),
    )
