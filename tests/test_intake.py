"""Intake: what is accepted, what is refused (with a message a visitor understands), and what a
Photo keeps of a file — upright pixels, no metadata."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from segmentation.intake import ImageRejected, Photo, accept_upload, strip_jpeg_metadata
from tests.photos import encode, gradient


def exif_with(orientation: int | None = None, gps: bool = False) -> bytes:
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    exif[0x010F] = "CameraMaker"
    if gps:
        exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 18.0)}
    return exif.tobytes()


def reopen(photo: Photo) -> Image.Image:
    return Image.open(io.BytesIO(photo.data))


def assert_no_metadata(photo: Photo) -> None:
    image = reopen(photo)
    assert not image.getexif(), "EXIF survived"
    assert "icc_profile" not in image.info
    assert "comment" not in image.info and "xmp" not in image.info
    for marker in (b"Exif\x00", b"http://ns.adobe.com/xap", b"ICC_PROFILE", b"CameraMaker"):
        assert marker not in photo.data


class TestAccepted:
    def test_plain_jpeg_keeps_its_pixel_stream(self):
        data = encode(gradient(640, 480), "JPEG", quality=90, exif=exif_with(gps=True), comment=b"secret note")
        photo = accept_upload(data)
        assert (photo.width, photo.height, photo.orientation) == (640, 480, 1)
        assert_no_metadata(photo)
        assert b"secret note" not in photo.data
        # Cut at the byte level, not re-encoded: the decoded pixels are identical.
        assert np.array_equal(
            np.asarray(reopen(photo).convert("RGB")), np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        )

    def test_exif_orientation_is_applied_on_decode(self):
        # A landscape-stored JPEG that says "rotate 90° clockwise to view": upright it is portrait.
        image = gradient(400, 300)
        photo = accept_upload(encode(image, "JPEG", exif=exif_with(orientation=6)))
        assert (photo.width, photo.height) == (300, 400)
        assert photo.open().size == (300, 400)
        assert photo.open_reduced(200).size == (150, 200)
        assert photo.working.size == (300, 400)
        upright, media_type = photo.upright_bytes()
        assert media_type == "image/jpeg" and Image.open(io.BytesIO(upright)).size == (300, 400)
        assert not Image.open(io.BytesIO(upright)).getexif()

    def test_cmyk_jpeg_becomes_rgb(self):
        photo = accept_upload(encode(gradient(200, 100).convert("CMYK"), "JPEG"))
        assert photo.open().mode == "RGB"
        assert_no_metadata(photo)

    def test_sixteen_bit_png_is_scaled_not_clipped(self):
        ramp = np.linspace(0, 65535, 256, dtype=np.uint16)[None, :] * np.ones((16, 1), np.uint16)
        photo = accept_upload(encode(Image.fromarray(ramp), "PNG"))
        pixels = np.asarray(photo.open())
        assert pixels.dtype == np.uint8 and pixels[0, 0, 0] == 0 and pixels[0, -1, 0] == 255
        assert 120 <= pixels[0, 128, 0] <= 135

    def test_palette_with_transparency_becomes_rgba(self):
        image = Image.new("P", (64, 64), 0)
        image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
        image.paste(1, (0, 0, 32, 64))
        photo = accept_upload(encode(image, "PNG", transparency=0))
        opened = photo.open()
        assert opened.mode == "RGBA" and photo.has_alpha and photo.media_type == "image/png"
        assert opened.getpixel((48, 10))[3] == 0 and opened.getpixel((10, 10)) == (0, 255, 0, 255)

    def test_grey_with_alpha_becomes_rgba(self):
        la = Image.merge("LA", [Image.new("L", (32, 32), 90), Image.linear_gradient("L").resize((32, 32))])
        assert accept_upload(encode(la, "PNG")).open().mode == "RGBA"

    def test_opaque_png_is_stored_as_rgb(self):
        photo = accept_upload(encode(gradient(100, 80).convert("RGBA"), "PNG"))
        assert photo.open().mode == "RGB" and not photo.has_alpha

    def test_webp_is_accepted_and_rebuilt(self):
        photo = accept_upload(encode(gradient(120, 90), "WEBP", exif=exif_with(gps=True)))
        assert (photo.width, photo.height) == (120, 90)
        assert_no_metadata(photo)

    def test_png_text_chunks_are_dropped(self):
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("Author", "Jane Visitor")
        photo = accept_upload(encode(gradient(50, 50), "PNG", pnginfo=info))
        assert b"Jane Visitor" not in photo.data

    def test_iphone_mpo_keeps_the_first_frame_only(self):
        first, second = gradient(300, 200), Image.new("RGB", (300, 200), "red")
        data = encode(first, "MPO", save_all=True, append_images=[second])
        assert Image.open(io.BytesIO(data)).format == "MPO"
        photo = accept_upload(data)
        assert reopen(photo).format == "JPEG" and getattr(reopen(photo), "n_frames", 1) == 1
        assert len(photo.data) < len(data) * 0.75  # the second frame is gone
        assert abs(int(np.asarray(photo.open())[100, 150, 0]) - int(np.asarray(first)[100, 150, 0])) < 8

    def test_name_and_declared_type_do_not_matter(self):
        # Intake sees bytes only; the name the browser sent never reaches it.
        assert accept_upload(encode(gradient(10, 10), "PNG")).media_type == "image/jpeg"


class TestRefused:
    @pytest.mark.parametrize(
        "data, words",
        [
            (b"", "empty"),
            (b"hello, this is text", "not a photo"),
            (b"GIF89a" + b"\x00" * 100, "GIF"),
            (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),
            (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
            (b"%PDF-1.7\n", "PDF"),
            (b"8BPS\x00\x01", "Photoshop"),
            (b"BM" + b"\x00" * 60, "BMP"),
            (b"II*\x00" + b"\x00" * 60, "TIFF"),
        ],
    )
    def test_not_a_supported_photo(self, data, words):
        with pytest.raises(ImageRejected) as refused:
            accept_upload(data)
        assert words.lower() in refused.value.message.lower()
        assert refused.value.status == 400

    def test_truncated_jpeg(self):
        data = encode(gradient(800, 600), "JPEG")
        with pytest.raises(ImageRejected) as refused:
            accept_upload(data[: len(data) // 2])
        assert "incomplete" in refused.value.message or "damaged" in refused.value.message

    def test_truncated_png(self):
        data = encode(gradient(300, 300), "PNG")
        with pytest.raises(ImageRejected):
            accept_upload(data[: len(data) // 2])

    def test_corrupt_header(self):
        data = bytearray(encode(gradient(300, 300), "PNG"))
        data[16:24] = b"\xff" * 8  # width and height of the IHDR chunk
        with pytest.raises(ImageRejected):
            accept_upload(bytes(data))

    def test_too_many_pixels_refused_before_decoding(self, settings):
        settings.MAX_IMAGE_PIXELS = 1_000_000
        with pytest.raises(ImageRejected) as refused:
            accept_upload(encode(gradient(1200, 1000), "JPEG"))
        assert "1200×1000" in refused.value.message

    def test_decompression_bomb_with_tiny_file(self):
        # A PNG that declares 100k×100k pixels in a few hundred bytes.
        width = height = 100_000
        ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)

        def chunk(kind: bytes, body: bytes) -> bytes:
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

        bomb = (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
            + chunk(b"IEND", b"")
        )
        with pytest.raises(ImageRejected) as refused:
            accept_upload(bomb)
        assert "pixels" in refused.value.message

    def test_animated_webp(self):
        frames = [gradient(40, 40), Image.new("RGB", (40, 40), "blue")]
        data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100)
        with pytest.raises(ImageRejected) as refused:
            accept_upload(data)
        assert "Animated" in refused.value.message

    def test_larger_than_the_upload_cap(self, settings):
        settings.MAX_UPLOAD_BYTES = 2048
        noise = np.random.default_rng(0).integers(0, 255, (100, 100, 3), dtype=np.uint8)
        with pytest.raises(ImageRejected) as refused:
            accept_upload(encode(Image.fromarray(noise), "PNG"))
        assert refused.value.status == 413


class TestJpegStripping:
    def test_trailing_bytes_after_the_image_are_dropped(self):
        data = encode(gradient(64, 64), "JPEG") + b"PK\x03\x04 a zip appended to the jpeg"
        assert b"PK\x03\x04" not in strip_jpeg_metadata(data)

    def test_progressive_jpeg_survives_stripping(self):
        data = encode(gradient(256, 128), "JPEG", progressive=True, exif=exif_with(gps=True))
        photo = accept_upload(data)
        assert photo.open().size == (256, 128)
        assert_no_metadata(photo)

    def test_adobe_rgb_profile_is_converted_not_dropped(self):
        from PIL import ImageCms

        profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))  # anything that is not sRGB
        image = gradient(64, 64)
        try:
            data = encode(image, "JPEG", icc_profile=profile.tobytes())
        except Exception:
            pytest.skip("Pillow cannot embed this profile")
        photo = accept_upload(data)
        assert_no_metadata(photo)


def test_a_photo_is_stored_and_rebuilt_through_its_meta():
    """One owner for what a job keeps about the photo: the view stores `meta()`, the job pool
    rebuilds the Photo with `from_meta()`."""
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = accept_upload(encode(gradient(120, 80), "JPEG", exif=exif.tobytes()))
    meta = photo.meta()
    assert meta == {"media_type": "image/jpeg", "width": 80, "height": 120, "orientation": 6, "has_alpha": False}
    rebuilt = Photo.from_meta(photo.data, meta)
    assert rebuilt == photo and rebuilt.working is None
    assert rebuilt.open().size == (80, 120)
