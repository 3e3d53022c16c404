"""Test images made with Pillow: GPS EXIF, orientation, noise, bombs, HEIC."""

from __future__ import annotations

import io
import os

from PIL import Image

GPS_IFD = 0x8825
ORIENTATION = 0x0112
MAKE = 0x010F


def jpeg_with_gps(size: tuple[int, int] = (64, 32), orientation: int | None = None) -> bytes:
    """A JPEG whose EXIF has a camera make, GPS coordinates and optionally an orientation.

    The left half is red and the right half blue, so a rotation is visible in pixels.
    """
    im = Image.new("RGB", size, (255, 0, 0))
    im.paste((0, 0, 255), (size[0] // 2, 0, size[0], size[1]))
    exif = Image.Exif()
    exif[MAKE] = "PetCam"
    if orientation is not None:
        exif[ORIENTATION] = orientation
    gps = exif.get_ifd(GPS_IFD)
    gps[1] = "N"
    gps[2] = (52.0, 31.0, 12.5)
    gps[3] = "E"
    gps[4] = (13.0, 24.0, 36.0)
    out = io.BytesIO()
    im.save(out, "JPEG", exif=exif, quality=95)
    return out.getvalue()


def png(size: tuple[int, int] = (40, 30), mode: str = "RGBA") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (10, 200, 30, 128) if mode == "RGBA" else (10, 200, 30)).save(out, "PNG")
    return out.getvalue()


def webp(size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(out, "WEBP")
    return out.getvalue()


def heic(size: tuple[int, int] = (48, 32)) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    Image.new("RGB", size, (200, 100, 0)).save(out, "HEIF")
    return out.getvalue()


def noise_png(nbytes: int) -> bytes:
    """A PNG of random pixels of at least ``nbytes`` (noise does not compress)."""
    side = int((nbytes / 3) ** 0.5) + 8
    im = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    im.save(out, "PNG", compress_level=1)
    return out.getvalue()


def noise_jpeg(width: int, height: int, quality: int = 95) -> bytes:
    im = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality)
    return out.getvalue()


def bomb_png(side: int = 20_000) -> bytes:
    """A small file (~1 MB) that claims side x side pixels: a decompression bomb."""
    im = Image.new("1", (side, side), 0)
    out = io.BytesIO()
    im.save(out, "PNG", optimize=True)
    return out.getvalue()
