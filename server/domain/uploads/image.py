"""The image pipeline: sniff, bounded decode, orientation, metadata strip, thumbnail.

Everything here is synchronous and CPU-bound: callers run ``process_image`` in a
worker thread (``asyncio.to_thread``) under a semaphore that bounds how many
images are decoded at once.

Rules:
- The type comes from the file's first bytes (``sniff``), never from a header or
  a file name. JPEG, PNG, WebP, and HEIC/HEIF when ``pillow-heif`` is installed.
  Anything else: ``UnsupportedImage`` (HTTP 415).
- The pixel count is checked from the header, before any pixel is decoded;
  above ``max_pixels``: ``ImageTooLarge`` (HTTP 413). Pillow's own
  decompression-bomb error maps to the same.
- EXIF orientation is applied to the pixels, then the image is re-encoded from
  pixels alone: no EXIF (GPS included), XMP, IPTC, comments or ICC profile
  survive. An embedded ICC profile is first converted to sRGB so colours stay
  right without it. Only PNG palette transparency is carried over.
- Output format: JPEG, PNG and WebP keep their format; HEIC becomes JPEG (most
  browsers cannot show HEIC). Animated images keep their first frame.
- A thumbnail (WebP, longest side ``thumb_px``) is written beside the image.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

try:  # HEIC decoding is optional: only with the maintained pillow-heif plugin.
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIC_SUPPORTED = True
except ImportError:  # pragma: no cover - depends on the installation
    HEIC_SUPPORTED = False

SNIFF_BYTES = 32
ORIENTATION = 0x0112  # the EXIF tag


@dataclass(frozen=True)
class ImageKind:
    content_type: str
    pil_format: str  # what Pillow may use to decode it
    out_format: str  # what the clean image is written as
    out_type: str
    ext: str


JPEG = ImageKind("image/jpeg", "JPEG", "JPEG", "image/jpeg", "jpg")
PNG = ImageKind("image/png", "PNG", "PNG", "image/png", "png")
WEBP = ImageKind("image/webp", "WEBP", "WEBP", "image/webp", "webp")
HEIC = ImageKind("image/heic", "HEIF", "JPEG", "image/jpeg", "jpg")

SUPPORTED_TYPES = frozenset(
    k.content_type for k in (JPEG, PNG, WEBP, *([HEIC] if HEIC_SUPPORTED else []))
) | ({"image/heif"} if HEIC_SUPPORTED else set())

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


class ImageRefused(Exception):
    """The bytes are not an image we accept; ``status``/``code`` are the HTTP answer."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedImage(ImageRefused):
    status = 415
    code = "unsupported_media_type"


class ImageTooLarge(ImageRefused):
    status = 413
    code = "too_large"


class CorruptImage(ImageRefused):
    status = 400
    code = "bad_request"


def sniff(head: bytes) -> ImageKind | None:
    """The image kind from the first bytes (``SNIFF_BYTES`` are enough), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if HEIC_SUPPORTED and len(head) >= 12 and head[4:8] == b"ftyp":
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, min(len(head), 32), 4)}
        if head[8:12] in _HEIF_BRANDS and not brands & {b"avif", b"avis"}:
            return HEIC
    return None


def unsupported_message() -> str:
    return "expected a JPEG, PNG, WebP" + (" or HEIC" if HEIC_SUPPORTED else "") + " image"


@dataclass(frozen=True)
class CleanImage:
    path: Path
    content_type: str
    ext: str
    width: int
    height: int
    size: int
    thumb_path: Path
    thumb_size: int


def process_image(src: Path, workdir: Path, *, max_pixels: int, thumb_px: int) -> CleanImage:
    """Validate ``src`` and write ``image.<ext>`` and ``thumb.webp`` into ``workdir``."""
    with src.open("rb") as f:
        kind = sniff(f.read(SNIFF_BYTES))
    if kind is None:
        raise UnsupportedImage(unsupported_message())
    # Everything happens inside the ``with``: closing the file releases the decoded
    # pixels, and working in place avoids full-size copies (memory per image is
    # about one decoded frame, two when a rotation is needed).
    try:
        with Image.open(src, formats=[kind.pil_format]) as opened:
            width, height = opened.size
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"image is {width}x{height} pixels; at most {max_pixels:,} pixels"
                )
            opened.seek(0)
            opened.load()
            return _clean(opened, kind, workdir, thumb_px)
    except ImageRefused:
        raise
    except Image.DecompressionBombError:
        raise ImageTooLarge(f"image has more than {max_pixels:,} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        # Pillow's decoders raise these for truncated or malformed files.
        raise CorruptImage("the file is not a readable image") from None


def _clean(decoded: Image.Image, kind: ImageKind, workdir: Path, thumb_px: int) -> CleanImage:
    image = _to_srgb(_oriented(decoded))
    keep: dict[str | tuple[int, int], Any] = {
        k: image.info[k] for k in ("transparency",) if k in image.info
    }
    image.info = keep  # re-encode from pixels only: no EXIF/XMP/ICC/comments survive

    out = workdir / f"image.{kind.ext}"
    _save(image, out, kind.out_format)
    thumb = workdir / "thumb.webp"
    _save_thumbnail(image, thumb, thumb_px)
    return CleanImage(
        path=out,
        content_type=kind.out_type,
        ext=kind.ext,
        width=image.width,
        height=image.height,
        size=out.stat().st_size,
        thumb_path=thumb,
        thumb_size=thumb.stat().st_size,
    )


def _oriented(image: Image.Image) -> Image.Image:
    if image.getexif().get(ORIENTATION, 1) in (0, 1):
        return image  # nothing to turn: no copy
    transposed = ImageOps.exif_transpose(image)
    return transposed if transposed is not None else image


def _to_srgb(image: Image.Image) -> Image.Image:
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
        converted = ImageCms.profileToProfile(image, source, srgb, outputMode=image.mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        log.info("unusable ICC profile dropped")
        return image
    return converted if converted is not None else image


def _flatten(image: Image.Image) -> Image.Image:
    """RGB for encoders without alpha: transparent areas become white."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _save(image: Image.Image, path: Path, fmt: str) -> None:
    if fmt == "JPEG":
        _flatten(image).save(path, "JPEG", quality=88)
    elif fmt == "PNG":
        image.save(path, "PNG", compress_level=6)
    else:
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        image.save(path, "WEBP", quality=85)


def _save_thumbnail(image: Image.Image, path: Path, px: int) -> None:
    source = image
    if source.mode not in ("RGB", "RGBA"):
        has_alpha = "A" in source.getbands() or "transparency" in source.info
        source = source.convert("RGBA" if has_alpha else "RGB")
    scale = min(1.0, px / max(source.size))
    size = (max(1, round(source.width * scale)), max(1, round(source.height * scale)))
    # reducing_gap: a cheap box reduction first, so no full-size copy is made
    thumb = source.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    thumb.info = {}
    thumb.save(path, "WEBP", quality=80)


def release_freed_pixels() -> bool:
    """Make glibc return freed image buffers to the OS (Linux/glibc only; else a no-op).

    glibc raises its mmap threshold after the first large block is freed, so
    later decoded frames come from the heap and stay in RSS after they are
    freed: the server's memory would ratchet up to its worst moment and stay
    there. A fixed threshold (256 KiB) keeps big pixel buffers in their own
    mappings, released on free. Returns whether the setting was applied.
    """
    import ctypes
    import platform
    import sys

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    m_mmap_threshold = -3
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(m_mmap_threshold, 256 * 1024))
    except (OSError, AttributeError):
        return False
