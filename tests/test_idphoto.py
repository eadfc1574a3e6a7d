"""ID photos, tool by tool: the face finder, the framing of each spec, the refusals, the edge
colours, the print sheet and the size-capped JPEG."""

import hashlib
import io

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from segmentation.engines import EngineError, faces, runtime
from segmentation.engines.idphoto import IdPhoto
from segmentation.engines.local import LocalCutout
from segmentation.idphoto import compose, downloads
from segmentation.idphoto.framing import CHIN_BELOW_MOUTH, Refused, the_face
from segmentation.idphoto.specs import SPECS
from segmentation.intake import accept_upload
from tests.photos import encode, id_portrait

MODEL_SHA256 = "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"


def photo_of(image: Image.Image):
    return accept_upload(encode(image, "JPEG", quality=92))


def make(spec: str, image: Image.Image) -> Image.Image:
    """The stored result of an ID-photo job (upload phase, then unlock phase), decoded."""
    engine = IdPhoto(LocalCutout(), spec, "local")
    photo = photo_of(image)
    draft = engine.start(photo)
    result = engine.finish(photo, draft.carry)
    return Image.open(io.BytesIO(result.data))


def test_the_face_model_is_the_file_its_source_note_names():
    blob = (runtime.WEIGHTS / faces.MODEL_FILE).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == MODEL_SHA256
    assert MODEL_SHA256 in (runtime.WEIGHTS / "SOURCE.md").read_text()


def test_the_astronauts_eyes_are_found_where_they_are():
    # Pupils read by hand on skimage's astronaut: (203.8, 101.3) and (245.6, 103.1).
    found = faces.detect_faces(data.astronaut())
    assert len(found) == 1
    face = found[0]
    assert np.hypot(*(face.right_eye - (203.8, 101.3))) < 6
    assert np.hypot(*(face.left_eye - (245.6, 103.1))) < 6
    assert face.landmarks[faces.MOUTH][1] > face.landmarks[faces.NOSE][1] > face.right_eye[1]


def measure(result: Image.Image) -> dict:
    """Head height, eye line and top margin of a finished ID photo, read from its pixels: the face
    found again, the hair's top from its transparency."""
    rgba = np.asarray(result)
    (face,) = faces.detect_faces(np.asarray(compose.on_background(result, "FFFFFF")))
    eye_y = float(face.eye_centre[1])
    mouth_y = float(face.landmarks[faces.MOUTH][1])
    chin = mouth_y + CHIN_BELOW_MOUTH * (mouth_y - eye_y)
    band = rgba[:, int(face.eye_centre[0]) - 20 : int(face.eye_centre[0]) + 20, 3]
    top = int(np.flatnonzero((band > 127).any(axis=1))[0])
    return {"head": chin - top, "top": top, "eyes_from_bottom": result.height - eye_y, "tilt": face}


@pytest.mark.parametrize("key", list(SPECS))
def test_each_spec_is_framed_by_its_authoritys_rules(key):
    spec = SPECS[key]
    result = make(key, id_portrait())
    assert result.size == (spec.width_px, spec.height_px) and result.mode == "RGBA"
    seen = measure(result)
    # Within the published range, with a margin of 4 % for reading the chin from the landmarks.
    low, high = (spec.px(mm) for mm in spec.head_mm)
    assert low * 0.96 <= seen["head"] <= high * 1.04, (seen["head"], low, high)
    if spec.top_margin_mm:
        low, high = (spec.px(mm) for mm in spec.top_margin_mm)
        assert low - 4 <= seen["top"] <= high + 4, (seen["top"], low, high)
    else:
        low, high = (spec.px(mm) for mm in spec.eyes_from_bottom_mm)
        assert low - 4 <= seen["eyes_from_bottom"] <= high + 4, (seen["eyes_from_bottom"], low, high)
        assert seen["top"] > 0, "the hair must not touch the top edge"
    # The eyes are level (within what the landmarks can tell: re-read on the framed photo they move
    # by about ±3° with the cutout's outline, so 5° is the bar) and the face is in the middle.
    face = seen["tilt"]
    assert abs(face.left_eye[1] - face.right_eye[1]) < 0.09 * face.eye_distance
    assert abs(face.eye_centre[0] - spec.width_px / 2) < 0.05 * spec.width_px
    # Shoulders reach the bottom edge: the last row is mostly the person.
    assert (np.asarray(result)[-1, :, 3] > 127).mean() > 0.4

    # The download: exactly the spec's size, 300 dpi, on the authority's background by default.
    photo, name = downloads.render(compose_png(result), spec, downloads.parse({}, spec))
    jpeg = Image.open(io.BytesIO(photo))
    assert jpeg.format == "JPEG" and jpeg.size == (spec.width_px, spec.height_px)
    assert jpeg.info["dpi"] == (300, 300) and name.endswith(f"{spec.width_px}x{spec.height_px}.jpg")
    corner = np.asarray(jpeg.convert("RGB"))[3, 3].astype(int)
    assert np.abs(corner - [int(spec.background[i : i + 2], 16) for i in (0, 2, 4)]).max() <= 4


def compose_png(image: Image.Image) -> bytes:
    return encode(image, "PNG")


def test_the_specs_defaults_are_their_authorities_colours():
    assert SPECS["us-2x2"].background == "FFFFFF" and SPECS["cn-passport"].background == "FFFFFF"
    assert SPECS["cn-1inch"].background == SPECS["cn-2inch"].background == "438EDB"
    assert SPECS["intl-35x45"].background == "E6E6E6"
    assert all(round(spec.size_mm[1]) in (35, 49, 45, 51, 48) for spec in SPECS.values())


def big_astronaut() -> np.ndarray:
    return cv2.resize(data.astronaut(), (1536, 1536), interpolation=cv2.INTER_LANCZOS4)


def refusal(rgb: np.ndarray) -> Refused:
    with pytest.raises(Refused) as refused:
        the_face(rgb)
    return refused.value


def test_no_face_is_refused():
    assert refusal(np.full((1600, 1200, 3), 180, np.uint8)).reason == "no face"


def test_two_faces_are_refused():
    face = data.astronaut()[0:300, 120:380]
    assert refusal(np.hstack([face, face])).reason == "2 faces"


def test_a_face_turned_away_is_refused():
    # skimage's cameraman looks into his camera, his face turned three-quarters from ours.
    cameraman = np.dstack([data.camera()] * 3)
    assert "nose offset" in refusal(cameraman).reason


def test_a_tilted_head_is_refused_and_a_slight_tilt_is_levelled():
    turn = cv2.getRotationMatrix2D((768, 500), 25, 1.0)
    tilted = cv2.warpAffine(big_astronaut(), turn, (1536, 1536), borderMode=cv2.BORDER_REPLICATE)
    assert "tilt" in refusal(tilted).reason
    # Turned 6° the other way, the photo is levelled: the eye line of its ID photo tilts like
    # the untouched photo's (within the ~3.5° the landmarks can tell), not 6° more.
    turn = cv2.getRotationMatrix2D((768, 500), -6, 1.0)
    slight = Image.fromarray(cv2.warpAffine(big_astronaut(), turn, (1536, 1536), borderMode=cv2.BORDER_REPLICATE))

    def tilt(image: Image.Image) -> float:
        face = measure(make("us-2x2", image))["tilt"]
        return float(np.degrees(np.arctan2(*(face.left_eye - face.right_eye)[::-1])))

    assert abs(tilt(slight) - tilt(Image.fromarray(big_astronaut()))) < 3.5


def test_a_photo_too_dark_is_refused():
    assert "brightness" in refusal((big_astronaut() * 0.18).astype(np.uint8)).reason


@pytest.mark.parametrize(
    ("name", "image", "reason"),
    [
        ("too small for the spec", lambda: Image.fromarray(data.astronaut()), "upscale"),
        ("head cut by the frame", lambda: Image.fromarray(big_astronaut()[150:]), "head cut"),
        ("no shoulders", lambda: Image.fromarray(big_astronaut()[:600]), "bottom overhang"),
    ],
)
def test_framing_refusals_say_what_to_change(name, image, reason):
    with pytest.raises(EngineError) as refused:
        IdPhoto(LocalCutout(), "us-2x2", "local").start(photo_of(image()))
    assert reason in refused.value.operator_detail
    assert refused.value.visitor_message.count("Please") == 1


def test_edge_colours_lose_the_old_background():
    # A red person whose soft edge (8 px) was photographed against a green wall: I = αF + (1−α)B.
    height, width = 400, 400
    ramp = np.clip((np.arange(width) - 200) / 8, 0, 1).astype(np.float32)
    alpha = np.broadcast_to(ramp, (height, width))
    red, green = np.array([200, 40, 40], np.float32), np.array([30, 200, 30], np.float32)
    photo = (alpha[..., None] * red + (1 - alpha[..., None]) * green).astype(np.uint8)
    cleaned = compose.decontaminate(photo, (alpha * 255).astype(np.uint8))
    edge = (alpha > 0.1) & (alpha < 0.9)
    assert photo[edge][:, 1].mean() > 100  # the photo's edge is half green
    assert cleaned[edge][:, 1].mean() < 55 and cleaned[edge][:, 0].mean() > 185  # the estimate is red


def test_the_print_sheet_holds_as_many_copies_as_fit_with_cut_lines():
    for spec in SPECS.values():
        copy = Image.new("RGB", (spec.width_px, spec.height_px), (67, 142, 219))
        sheet = compose.sheet(copy)
        assert sheet.size == (1800, 1200)
        pixels = np.asarray(sheet)
        blue = np.all(pixels == (67, 142, 219), axis=2)
        count, _labels = cv2.connectedComponents(blue.astype(np.uint8))
        assert count - 1 == compose.copies_per_sheet(spec) >= 2
        columns = round(blue.any(axis=0).sum() / spec.width_px)
        rows = round(blue.any(axis=1).sum() / spec.height_px)
        # One more copy, with its gap, fits neither across nor down.
        assert (columns + 1) * spec.width_px + columns * compose.SHEET_GAP > 1800 - 2
        assert (rows + 1) * spec.height_px + rows * compose.SHEET_GAP > 1200 - 2
        # Cut lines: grey rows and columns along the copies' edges, across the sheet.
        grey = np.all(pixels == compose.CUT_LINE, axis=2)
        assert grey.all(axis=1).sum() == 2 * rows and grey.all(axis=0).sum() == 2 * columns


def test_a_size_capped_download_lowers_quality_never_pixels():
    spec = SPECS["us-2x2"]
    portrait = Image.fromarray(cv2.resize(data.astronaut(), (600, 600))).convert("RGBA")
    stored = compose_png(portrait)
    best, _name = downloads.render(stored, spec, downloads.parse({}, spec))
    for kb in (50, 100):
        capped, _name = downloads.render(stored, spec, downloads.parse({"max_kb": str(kb)}, spec))
        assert len(capped) <= kb * 1000 < len(best)
        image = Image.open(io.BytesIO(capped))
        assert image.size == (600, 600) and image.info["dpi"] == (300, 300)
    with pytest.raises(downloads.BadDownload):
        downloads.render(stored, spec, downloads.parse({"max_kb": "20", "layout": "sheet"}, spec))
