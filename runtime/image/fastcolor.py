"""Full-resolution colour conversion: a small C kernel through cffi, with a pure-numpy fallback.

At 12 MP the per-pixel work (ab upsampling + Lab -> sRGB + quantisation, and RGB -> L on the way
in) dominates everything but decode/encode if done in numpy (many full-size temporaries). The C
kernel (runtime/image/_kernels/fastcolor.c) does it in one pass; rows are split across threads (cffi
releases the GIL during the call).

Build: cffi ABI mode on a shared object compiled on first use with the system C compiler and
cached outside the repo (``kernels/`` in the per-user cache folder of runtime.cache.cache_dir:
``$COLORIZE_GAN_CACHE`` or ``$XDG_CACHE_HOME/colorize-gan``; keyed by a hash of the source
and flags), so installing needs no compiler and no Python headers. No compiler, a failed build or
``COLORIZE_GAN_KERNEL=0`` -> the numpy path, which gives the same result within one 8-bit level
(tests/test_fastcolor.py). ``kernel_status()`` says which is in use and why.
"""
from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import cache_dir  # the project's one per-user cache folder ($COLORIZE_GAN_CACHE honoured)
from .color import _f as lab_f
from .color import grey_to_l, lab_to_rgb, linear_to_l, linear_to_srgb, srgb_to_linear

_SOURCE = Path(__file__).resolve().parent / "_kernels" / "fastcolor.c"
# -fno-trapping-math lets GCC if-convert the clamps/selects of the pixel loop (it vectorises);
# no -march flags: the .so may sit in a home folder shared by machines (see CLONES in the C file).
_CFLAGS = ["-O3", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math"]
_CDEF = """
void finish_rows(const float *L, int W, const float *ab, int nh, int nw,
                 const int32_t *y0, const int32_t *y1, const float *wy,
                 const int32_t *x0, const int32_t *x1, const float *wx,
                 float sat, const uint8_t *gamma_lut, uint8_t *out_u8, float *out_f32, int row0, int row1);
void finish_src_rows(const uint8_t *src, int stride, int W, const float *ab, int nh, int nw,
                     const int32_t *y0, const int32_t *y1, const float *wy,
                     const int32_t *x0, const int32_t *x1, const float *wx,
                     float sat, const float *lin, const float *fy_grey, const float *fy_of_y,
                     const uint8_t *gamma_lut, uint8_t *out, int ostride, int row0, int row1);
void rgb8_to_l(const uint8_t *rgb, long n, int stride, const float *lin, float *out);
void lut8_to_f32(const uint8_t *src, long n, const float *lut, float *out);
"""
_lock = threading.Lock()
_state: dict[str, Any] = {}

# Tables shared by both paths (float32, computed once from runtime.image.color so both agree with it).
# Public: the exact L of each 8-bit grey level (video and tools index it directly).
GREY8_L = grey_to_l(np.arange(256, dtype=np.float32) / np.float32(255))
_LIN8 = srgb_to_linear(np.arange(256, dtype=np.float32) / np.float32(255))
_FY_GREY = ((GREY8_L + np.float32(16)) / np.float32(116)).astype(np.float32)
_FY_OF_Y = lab_f(np.arange(65536, dtype=np.float32) / np.float32(65535))
_GAMMA_U8 = np.round(linear_to_srgb(np.arange(65536, dtype=np.float32) / np.float32(65535)) * 255).astype(np.uint8)


def _build(target: Path) -> None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise RuntimeError("no C compiler found (set CC or install gcc)")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Compile to a temporary name and rename: concurrent processes never load a half-written file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        proc = subprocess.run([cc, *_CFLAGS, "-o", tmp, str(_SOURCE), "-lm"], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"compiler failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load() -> Any:
    """The loaded library, or None (reason in _state['reason'])."""
    with _lock:
        if "lib" in _state:
            return _state["lib"]
        _state["lib"], _state["reason"] = None, ""
        if os.environ.get("COLORIZE_GAN_KERNEL", "1") == "0":
            _state["reason"] = "disabled by COLORIZE_GAN_KERNEL=0"
            return None
        try:
            import cffi

            key = hashlib.sha256(_SOURCE.read_bytes() + " ".join(_CFLAGS).encode() + platform.machine().encode()).hexdigest()[:16]
            path = cache_dir() / "kernels" / f"fastcolor-{key}.so"
            if not path.is_file():
                try:
                    _build(path)
                except PermissionError:  # read-only home: build into a private temp dir instead
                    path = Path(tempfile.mkdtemp(prefix="colorize-gan-")) / path.name
                    _build(path)
            ffi = cffi.FFI()
            ffi.cdef(_CDEF)
            _state["lib"], _state["ffi"], _state["path"] = ffi.dlopen(str(path)), ffi, str(path)
        except Exception as exc:  # any failure (no cffi, no compiler, bad .so) means: use numpy
            _state["reason"] = f"{type(exc).__name__}: {exc}"
        return _state["lib"]


def kernel_status() -> str:
    """'C kernel (path)' or 'numpy fallback (reason)'."""
    lib = _load()
    return f"C kernel ({_state['path']})" if lib is not None else f"numpy fallback ({_state['reason']})"


def _ptr(ffi: Any, ctype: str, a: np.ndarray) -> Any:
    return ffi.cast(ctype, ffi.from_buffer(a))


def _threads(threads: int | None) -> int:
    if threads:
        return max(1, threads)
    try:
        return max(1, min(4, len(os.sched_getaffinity(0))))
    except AttributeError:
        return max(1, min(4, os.cpu_count() or 1))


# -- luminance in ---------------------------------------------------------------------------------
def grey8_to_l(grey: np.ndarray, use_kernel: bool = True) -> np.ndarray:
    """uint8 grey (H, W) -> L float32 via the 256-entry table (exactly color.grey_to_l(v / 255))."""
    grey = np.ascontiguousarray(grey, dtype=np.uint8)
    lib = _load() if use_kernel else None
    if lib is None:
        return GREY8_L[grey]
    ffi = _state["ffi"]
    out = np.empty(grey.shape, np.float32)
    lib.lut8_to_f32(_ptr(ffi, "uint8_t *", grey), grey.size, _ptr(ffi, "float *", GREY8_L), _ptr(ffi, "float *", out))
    return out


def rgb8_to_l(rgb: np.ndarray, use_kernel: bool = True, threads: int | None = None) -> np.ndarray:
    """uint8 RGB or RGBA (H, W, 3|4) -> L float32 (H, W)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    lib = _load() if use_kernel else None
    if lib is None:
        lin = _LIN8[rgb[..., :3]]
        return linear_to_l(lin)
    ffi = _state["ffi"]
    h, w, stride = rgb.shape
    out = np.empty((h, w), np.float32)
    lin = _ptr(ffi, "float *", _LIN8)

    def run(r0: int, r1: int) -> None:
        lib.rgb8_to_l(_ptr(ffi, "uint8_t *", rgb[r0:r1]), (r1 - r0) * w, stride, lin, _ptr(ffi, "float *", out[r0:r1]))

    _split_rows(h, _threads(threads), run)
    return out


def src8_to_l(src: np.ndarray, use_kernel: bool = True) -> np.ndarray:
    """uint8 grey (H, W) or RGB(A) (H, W, 3|4) -> L float32 (H, W): :func:`grey8_to_l` or :func:`rgb8_to_l`."""
    return grey8_to_l(src, use_kernel) if src.ndim == 2 else rgb8_to_l(src, use_kernel)


# -- colour out -----------------------------------------------------------------------------------
def upsample_tables(n_out: int, n_content: int, offset: int, n_net: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear (half-pixel centred) source indices/weights mapping ``n_out`` output pixels onto the
    content region [offset, offset + n_content) of a padded axis of length ``n_net``. Samples past
    the content edge read the reflect padding, not a clamped edge."""
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_content / n_out) - 0.5 + offset
    src = np.clip(src, 0, n_net - 1)
    i0 = np.floor(src).astype(np.int32)
    i1 = np.minimum(i0 + 1, n_net - 1).astype(np.int32)
    return i0, i1, (src - i0).astype(np.float32)


def _split_rows(h: int, n: int, fn: Any) -> None:
    if n <= 1 or h < 64:
        fn(0, h)
        return
    # More chunks than threads (each >= 32 rows): a thread slowed by other load takes fewer chunks.
    chunks = max(n, min(4 * n, h // 32))
    bounds = np.linspace(0, h, chunks + 1).astype(int)
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(lambda i: fn(bounds[i], bounds[i + 1]), range(chunks)))


def finish(L: np.ndarray, ab_net: np.ndarray, geom: Any, saturation: float = 1.0, out: str = "u8",
           threads: int | None = None, use_kernel: bool = True) -> np.ndarray:
    """Full-res L (H, W) + network ab (2, net_h, net_w) -> sRGB (H, W, 3): uint8 (``out="u8"``) or
    float32 in [0, 1] (``out="f32"``). ``geom`` is a runtime.image.geometry.Geometry."""
    if saturation < 0:
        raise ValueError(f"saturation must be >= 0, got {saturation}")
    L = np.ascontiguousarray(L, dtype=np.float32)
    ab = np.ascontiguousarray(ab_net, dtype=np.float32)
    H, W = L.shape
    if (H, W) != (geom.full_h, geom.full_w) or ab.shape != (2, geom.net_h, geom.net_w):
        raise ValueError(f"shape mismatch: L {L.shape}, ab {ab.shape}, geometry {geom}")
    y0, y1, wy = upsample_tables(H, geom.h, geom.top, geom.net_h)
    x0, x1, wx = upsample_tables(W, geom.w, geom.left, geom.net_w)
    lib = _load() if use_kernel else None
    if lib is None:
        return _finish_numpy(L, ab, (y0, y1, wy), (x0, x1, wx), np.float32(saturation), out)
    ffi = _state["ffi"]
    result = np.empty((H, W, 3), np.uint8 if out == "u8" else np.float32)
    args = [_ptr(ffi, "float *", L), W, _ptr(ffi, "float *", ab), geom.net_h, geom.net_w,
            *(_ptr(ffi, t, a) for t, a in (("int32_t *", y0), ("int32_t *", y1), ("float *", wy),
                                           ("int32_t *", x0), ("int32_t *", x1), ("float *", wx))),
            float(saturation), _ptr(ffi, "uint8_t *", _GAMMA_U8)]
    outs = [_ptr(ffi, "uint8_t *", result), ffi.NULL] if out == "u8" else [ffi.NULL, _ptr(ffi, "float *", result)]
    _split_rows(H, _threads(threads), lambda r0, r1: lib.finish_rows(*args, *outs, int(r0), int(r1)))
    return result


def finish_src(src: np.ndarray, ab_net: np.ndarray, geom: Any, saturation: float = 1.0, threads: int | None = None,
               use_kernel: bool = True, channels: int = 3) -> np.ndarray:
    """As ``finish(L, ...)`` with uint8 output, reading 8-bit grey (H, W) or RGB(A) (H, W, 3|4)
    source pixels directly: no full-resolution float L plane is ever made (the 8-bit fast path).
    ``channels=4`` gives RGBX (H, W, 4), the fourth byte 255: the layout Pillow keeps RGB images in, so
    ``imageio.encode_image`` hands it to a JPEG or WebP encoder without repacking (same bytes out)."""
    if saturation < 0:
        raise ValueError(f"saturation must be >= 0, got {saturation}")
    if channels not in (3, 4):
        raise ValueError(f"channels must be 3 or 4, got {channels}")
    src = np.ascontiguousarray(src, dtype=np.uint8)
    lib = _load() if use_kernel else None
    if lib is None:
        L = src8_to_l(src, use_kernel=False)
        rgb = finish(L, ab_net, geom, saturation, out="u8", use_kernel=False)
        return rgb if channels == 3 else np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    ab = np.ascontiguousarray(ab_net, dtype=np.float32)
    H, W = src.shape[:2]
    if (H, W) != (geom.full_h, geom.full_w) or ab.shape != (2, geom.net_h, geom.net_w):
        raise ValueError(f"shape mismatch: source {src.shape}, ab {ab.shape}, geometry {geom}")
    stride = 1 if src.ndim == 2 else src.shape[2]
    y0, y1, wy = upsample_tables(H, geom.h, geom.top, geom.net_h)
    x0, x1, wx = upsample_tables(W, geom.w, geom.left, geom.net_w)
    ffi = _state["ffi"]
    result = np.empty((H, W, channels), np.uint8)
    args = [_ptr(ffi, "uint8_t *", src), stride, W, _ptr(ffi, "float *", ab), geom.net_h, geom.net_w,
            *(_ptr(ffi, t, a) for t, a in (("int32_t *", y0), ("int32_t *", y1), ("float *", wy),
                                           ("int32_t *", x0), ("int32_t *", x1), ("float *", wx))),
            float(saturation), _ptr(ffi, "float *", _LIN8), _ptr(ffi, "float *", _FY_GREY), _ptr(ffi, "float *", _FY_OF_Y),
            _ptr(ffi, "uint8_t *", _GAMMA_U8), _ptr(ffi, "uint8_t *", result), channels]
    _split_rows(H, _threads(threads), lambda r0, r1: lib.finish_src_rows(*args, int(r0), int(r1)))
    return result


def merge(planes: Any, ab_net: np.ndarray, geom: Any, saturation: float = 1.0, bits: int = 8,
          threads: int | None = None, rgbx: bool = False) -> np.ndarray:
    """A decoded picture's planes (runtime.image.imageio.Planes) + network ab -> RGB uint8 (``bits=8``) or uint16:
    ab upsampled to full resolution and merged with the full-resolution L. 8-bit outputs of 8-bit sources
    read the source pixels directly (:func:`finish_src`; with ``rgbx``, RGBX as there); the rest go through
    the L plane (:func:`finish`) and are RGB whatever ``rgbx`` says."""
    if bits == 8 and planes.src8 is not None:
        return finish_src(planes.src8, ab_net, geom, saturation, threads=threads, channels=4 if rgbx else 3)
    if bits == 8:
        return finish(planes.L, ab_net, geom, saturation, out="u8", threads=threads)
    rgb = finish(planes.L, ab_net, geom, saturation, out="f32", threads=threads)
    return (rgb * np.float32(65535) + np.float32(0.5)).astype(np.uint16)


def _finish_numpy(L: np.ndarray, ab: np.ndarray, ys: tuple, xs: tuple, sat: np.float32, out: str,
                  chunk: int = 256) -> np.ndarray:
    """The reference path, in row chunks so temporaries stay small on 24 MP frames."""
    H, W = L.shape
    y0, y1, wy = ys
    x0, x1, wx = xs
    result = np.empty((H, W, 3), np.uint8 if out == "u8" else np.float32)
    for r in range(0, H, chunk):
        sl = slice(r, min(H, r + chunk))
        wyc = wy[sl][None, :, None]
        rows = ab[:, y0[sl], :] * (1 - wyc) + ab[:, y1[sl], :] * wyc  # (2, rows, net_w)
        up = rows[:, :, x0] * (1 - wx) + rows[:, :, x1] * wx  # (2, rows, W)
        lab = np.stack([L[sl], up[0] * sat, up[1] * sat], axis=-1)
        rgb = lab_to_rgb(lab, clip=True)
        result[sl] = np.round(rgb * 255).astype(np.uint8) if out == "u8" else rgb
    return result


def finish_reference(L: np.ndarray, ab_net: np.ndarray, geom: Any, saturation: float = 1.0, out: str = "u8") -> np.ndarray:
    """The numpy path regardless of the kernel (tests, benchmark 'before' numbers)."""
    return finish(L, ab_net, geom, saturation, out=out, use_kernel=False)


__all__ = ["finish", "finish_src", "finish_reference", "grey8_to_l", "rgb8_to_l", "src8_to_l", "kernel_status", "upsample_tables"]
