"""The image pipeline on its own: sniffing, bombs, metadata, orientation, thumbnails."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from server.domain.uploads import image as pipeline
from tests.uploads import images


def run(tmp_path: Path, data: bytes, max_pixels: int = 40_000_000) -> pipeline.CleanImage:
    src = tmp_path / "upload.bin"
    src.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    return pipeline.process_image(src, out, max_pixels=max_pixels, thumb_px=32)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (images.jpeg_with_gps(), "image/jpeg"),
        (images.png(), "image/png"),
        (images.webp(), "image/webp"),
        (images.heic(), "image/heic"),
        (b"GIF89a" + b"\0" * 40, None),
        (b"<html><body>not an image</body></html>", None),
        (b"RIFF\0\0\0\0WAVEfmt ", None),
        (b"", None),
    ],
)
def test_sniff_reads_the_bytes(data: bytes, expected: str | None) -> None:
    kind = pipeline.sniff(data[: pipeline.SNIFF_BYTES])
    assert (kind.content_type if kind else None) == expected


def test_gps_and_all_exif_are_gone(tmp_path: Path) -> None:
    raw = images.jpeg_with_gps()
    assert b"PetCam" in raw and b"Exif" in raw  # the fixture really has them
    clean = run(tmp_path, raw)
    stored = clean.path.read_bytes()
    assert b"Exif" not in stored and b"PetCam" not in stored
    with Image.open(clean.path) as im:
        assert not im.getexif()
        assert images.GPS_IFD not in im.getexif()
        assert "exif" not in im.info and "icc_profile" not in im.info


def test_orientation_is_applied_to_the_pixels(tmp_path: Path) -> None:
    # Orientation 6 = rotate 90° clockwise to display: 64x32 becomes 32x64, red on top.
    clean = run(tmp_path, images.jpeg_with_gps((64, 32), orientation=6))
    with Image.open(clean.path) as im:
        assert im.size == (32, 64)
        top, bottom = im.getpixel((16, 4)), im.getpixel((16, 60))
        assert isinstance(top, tuple) and isinstance(bottom, tuple)
        assert top[0] > 200 and top[2] < 60  # red
        assert bottom[2] > 200 and bottom[0] < 60  # blue
    assert (clean.width, clean.height) == (32, 64)


def test_thumbnail_is_written_beside(tmp_path: Path) -> None:
    clean = run(tmp_path, images.png((400, 100)))
    with Image.open(clean.thumb_path) as th:
        assert th.format == "WEBP" and th.size == (32, 8) and th.mode == "RGBA"


def test_heic_becomes_jpeg(tmp_path: Path) -> None:
    clean = run(tmp_path, images.heic())
    assert clean.content_type == "image/jpeg" and clean.path.suffix == ".jpg"
    with Image.open(clean.path) as im:
        assert im.format == "JPEG" and im.size == (48, 32)


def test_text_named_jpg_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(pipeline.UnsupportedImage) as info:
        run(tmp_path, b"just some text, although the file is called photo.jpg\n")
    assert info.value.status == 415


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    data = images.bomb_png(20_000)  # 400 MP in ~50 KB
    assert len(data) < 100_000
    with pytest.raises(pipeline.ImageTooLarge) as info:
        run(tmp_path, data)
    assert info.value.status == 413


def test_pixel_bound_is_configurable(tmp_path: Path) -> None:
    with pytest.raises(pipeline.ImageTooLarge):
        run(tmp_path, images.png((100, 100)), max_pixels=9_999)


def test_truncated_image_is_bad_request(tmp_path: Path) -> None:
    data = images.noise_jpeg(200, 200)
    with pytest.raises(pipeline.CorruptImage) as info:
        run(tmp_path, data[: len(data) // 2])
    assert info.value.status == 400
