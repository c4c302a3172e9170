"""Image files in and out: decoding any supported mode to luminance, and safe, atomic writing.

Reading: EXIF orientation applied, the ICC profile and EXIF kept for the output, a
decompression-bomb guard checked from the header before any pixel is decoded, first frame of
multi-frame files. Modes 1, L, LA, P, PA, RGB, RGBA, RGBX, CMYK, YCbCr, LAB, I;16*, I map to CIE L
(8 or 16 bits) plus an optional alpha. Every failure is an ImageError whose message is one line.

Writing: JPEG, PNG, WebP, TIFF through Pillow, and 16-bit RGB PNG through a small writer here
(Pillow cannot write 16-bit multi-channel images); encoded in memory, then written to a temporary
file in the target folder and renamed over the target only when complete, so no partial output is
ever left.
"""
from __future__ import annotations

import io
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import fastcolor
from .color import grey_to_l
from ..errors import one_line

DEFAULT_MAX_PIXELS = 150_000_000  # ~1.5 GB of working memory at this size; raise with --max-pixels
FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}
_GREY16_L: np.ndarray | None = None


class ImageError(Exception):
    """An input or output problem; ``str()`` is the one-line reason (the caller prefixes the path)."""


@dataclass
class Decoded:
    image: Image.Image  # oriented, loaded, first frame
    format: str | None
    icc: bytes | None
    exif: bytes | None

    def rgb_float(self) -> np.ndarray:
        """sRGB float32 (H, W, 3) in [0, 1] (for parity checks and tests)."""
        im = self.image
        if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            g = np.clip(np.asarray(im, dtype=np.float32) / 65535.0, 0, 1)
            return np.repeat(g[..., None], 3, axis=-1)
        return np.asarray(im.convert("RGB"), dtype=np.float32) / np.float32(255)


@dataclass
class Planes:
    """A decoded picture's luminance. 8-bit grey/RGB sources keep their pixels in ``src8`` and make
    the float L plane only when asked (the colour kernel reads ``src8`` directly)."""

    _L: np.ndarray | None  # float32 (H, W) in [0, 100]
    alpha: Image.Image | None  # mode "L"
    bits: int  # 8 or 16: the precision of the source luminance
    src8: np.ndarray | None = None  # uint8 (H, W) grey or (H, W, 3|4) RGB(A)

    @property
    def L(self) -> np.ndarray:
        if self._L is None:
            src = self.src8
            self._L = fastcolor.src8_to_l(src)
        return self._L

    @property
    def shape(self) -> tuple[int, int]:
        return (self._L if self._L is not None else self.src8).shape[:2]


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Decoded:
    p = Path(path)
    if not p.exists():
        raise ImageError("no such file")
    if p.is_dir():
        raise ImageError("is a directory")
    try:
        if p.stat().st_size == 0:
            raise ImageError("empty file")
    except OSError as exc:
        raise ImageError(f"cannot read ({exc.strerror})") from None
    try:
        im = open_unguarded(p)
    except UnidentifiedImageError:
        raise ImageError("not an image, or a format this program cannot read") from None
    except OSError as exc:
        raise ImageError(f"cannot read ({exc.strerror or exc})") from None
    with im:
        w, h = im.size
        if max_pixels is not None and w * h > max_pixels:
            raise ImageError(f"{w}x{h} = {w * h / 1e6:.0f} MP exceeds the {max_pixels / 1e6:.0f} MP limit "
                             "(a decompression-bomb guard; raise it with --max-pixels)")
        if w == 0 or h == 0:
            raise ImageError("image has zero size")
        try:
            im.seek(0)
            im.load()
            icc = im.info.get("icc_profile")
            oriented = ImageOps.exif_transpose(im)
            oriented.load()
            exif = _exif_bytes(oriented)
        except (OSError, ValueError, SyntaxError, struct.error, EOFError) as exc:
            raise ImageError(f"corrupt or truncated image ({one_line(exc)})") from None
        except Image.DecompressionBombError as exc:  # pragma: no cover - guard above fires first
            raise ImageError(str(exc)) from None
        return Decoded(oriented, im.format, icc, exif)


_OPEN_LOCK = threading.Lock()  # Pillow's bomb limit is a process-wide global: one opener at a time changes it


def open_unguarded(path: str | os.PathLike) -> Image.Image:
    """``Image.open`` (the header only) without Pillow's own decompression-bomb limit: read_image applies its own
    guard with a clear message and an override. Thread-safe: the batch runner reads headers while workers decode."""
    with _OPEN_LOCK:
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = previous


def _exif_bytes(im: Image.Image) -> bytes | None:
    try:
        exif = im.getexif()
        return exif.tobytes() if len(exif) else None
    except Exception:  # malformed EXIF must not cost the user the picture; it is metadata only
        return None


def _grey16_lut() -> np.ndarray:
    global _GREY16_L
    if _GREY16_L is None:
        _GREY16_L = grey_to_l(np.arange(65536, dtype=np.float32) / np.float32(65535))
    return _GREY16_L


def split_luminance(im: Image.Image) -> Planes:
    """Any supported PIL image -> CIE L (full resolution) + alpha. Colour inputs give their own L."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im)
        if mode == "I":
            a = np.clip(a, 0, 65535)
        return Planes(_grey16_lut()[a.astype(np.uint16)], None, 16)
    if mode == "F":
        raise ImageError("32-bit floating-point images are not supported")
    if mode == "LAB":
        return Planes(np.asarray(im.getchannel("L"), dtype=np.float32) * np.float32(100 / 255), None, 8)
    alpha = None
    if mode in ("LA", "La", "PA", "RGBA", "RGBa") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("LA" if mode in ("LA", "La") else "RGBA")
        alpha = rgba.getchannel("A")
        im = rgba.convert("L") if rgba.mode == "LA" else rgba
    if im.mode == "1":
        im = im.convert("L")
    if im.mode == "L":
        return Planes(None, alpha, 8, np.asarray(im))
    if im.mode not in ("RGB", "RGBA", "RGBX"):
        try:
            im = im.convert("RGB")  # CMYK, YCbCr, HSV, P: Pillow's conversions
        except (ValueError, OSError) as exc:
            raise ImageError(f"unsupported image mode {mode} ({one_line(exc)})") from None
    return Planes(None, alpha, 8, np.asarray(im))


def merge_planes(rgb: np.ndarray, alpha: Image.Image | None) -> Image.Image:
    """uint8 RGB array + optional alpha -> PIL image (RGB or RGBA)."""
    out = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    if alpha is not None:
        out.putalpha(alpha)
    return out


def format_for(path: str | os.PathLike) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ImageError(f"unsupported output format {Path(path).suffix or '(none)'}; use one of {', '.join(sorted(FORMATS))}")
    return fmt


def rgb_icc(icc: bytes | None) -> bytes | None:
    """Keep an ICC profile only if it describes RGB data (a grey or CMYK profile on RGB output is wrong)."""
    return icc if icc and len(icc) >= 20 and icc[16:20] == b"RGB " else None


def encode_image(rgb: np.ndarray, fmt: str, alpha: Image.Image | None = None, quality: int = 92,
                 icc: bytes | None = None, exif: bytes | None = None) -> bytes:
    """uint8 RGB (H, W, 3), uint8 RGBX (H, W, 4; the fourth byte is ignored) or uint16 RGB -> the bytes of a
    ``fmt`` file (a value of FORMATS). uint16 is kept only for PNG. Encoding to memory first means a failing
    encoder never touches the disk, and the bytes are the same as Pillow writes into a file.
    RGBX is the layout Pillow keeps RGB images in: a JPEG or WebP encoder reads it without a repacked copy
    (the same bytes out; tests/test_pipeline.py)."""
    icc = rgb_icc(icc)
    if rgb.dtype == np.uint16 and fmt != "PNG":
        rgb = (rgb >> 8).astype(np.uint8)  # only PNG carries 16-bit RGB here; others get the top byte
    f = io.BytesIO()
    if rgb.dtype == np.uint16:
        a16 = None if alpha is None else (np.asarray(alpha, dtype=np.uint16) * 257)
        write_png16(f, rgb[..., :3], a16, icc)
        return f.getvalue()
    alpha = alpha if fmt in ALPHA_FORMATS else None
    if rgb.shape[-1] == 4 and fmt in ("JPEG", "WEBP") and alpha is None:
        h, w = rgb.shape[:2]
        im = Image.frombuffer("RGB", (w, h), np.ascontiguousarray(rgb), "raw", "RGBX", 0, 1)  # mapped, no copy
    else:
        im = merge_planes(rgb[..., :3], alpha)
    opts: dict = {}
    if icc:
        opts["icc_profile"] = icc
    if exif:
        opts["exif"] = exif
    if fmt in ("JPEG", "WEBP"):
        opts["quality"] = quality
    if fmt == "TIFF":
        opts["compression"] = "tiff_deflate"
    im.save(f, format=fmt, **opts)
    return f.getvalue()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: into a temporary file in the target folder, renamed over the
    target only when complete, so no partial output is ever left (Ctrl-C included)."""
    path = Path(path)
    # The temporary name is fixed before the file exists, so whatever stops us -- a full disk, Ctrl-C between
    # the file's creation and its first byte -- the cleanup below knows what to remove.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}.part")
    try:
        with open(tmp, "xb") as f:  # "x": never an existing file; permissions from the umask, like any new file
            f.write(data)
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt included: no temporary file survives an interrupted write
        tmp.unlink(missing_ok=True)
        raise


def write_image(path: str | os.PathLike, rgb: np.ndarray, alpha: Image.Image | None = None, quality: int = 92,
                icc: bytes | None = None, exif: bytes | None = None) -> None:
    """Write uint8 RGB(X) or uint16 RGB (H, W, 3|4) atomically (:func:`encode_image`, then :func:`write_bytes`).
    uint16 is kept only for PNG."""
    write_bytes(path, encode_image(rgb, format_for(path), alpha, quality, icc, exif))


def write_png16(f, rgb: np.ndarray, alpha: np.ndarray | None = None, icc: bytes | None = None) -> None:
    """A minimal 16-bit RGB(A) PNG writer (filter 'Up' on every row, zlib level 6)."""
    h, w, _ = rgb.shape
    px = rgb if alpha is None else np.concatenate([rgb, alpha[..., None]], axis=-1)
    rows = np.ascontiguousarray(px.astype(">u2")).view(np.uint8).reshape(h, -1)
    up = rows.copy()
    up[1:] -= rows[:-1]  # uint8 wrap-around is the PNG 'Up' filter
    data = np.concatenate([np.full((h, 1), 2, np.uint8), up], axis=1)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    f.write(b"\x89PNG\r\n\x1a\n")
    f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2 if alpha is None else 6, 0, 0, 0)))
    if icc:
        f.write(chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    f.write(chunk(b"IDAT", zlib.compress(data.tobytes(), 6)))
    f.write(chunk(b"IEND", b""))
