"""Colour science in one place: sRGB <-> CIELAB (D65), the network's L/ab scaling, gamut clamping.

Trainer, exporter, evaluator and runtime all convert through this module, so the colours a model
learns are the colours it is served. Arrays are float32, RGB in [0, 1], L in [0, 100], a/b in
roughly [-110, 110]. The sRGB transfer curve is the exact piecewise one (IEC 61966-2-1), and the
RGB<->XYZ matrix and white point match scikit-image's, against which the tests check us.
"""
from __future__ import annotations

import numpy as np

# sRGB (linear) -> XYZ, D65; the same constants as scikit-image's rgb2xyz.
_XYZ_FROM_RGB = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]],
    dtype=np.float64,
)
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB)
WHITE_D65 = np.array([0.95047, 1.0, 1.08883], dtype=np.float64)

_EPS = (6.0 / 29.0) ** 3  # CIE epsilon, 0.008856
_KAPPA_INV = 1.0 / (3.0 * (6.0 / 29.0) ** 2)  # slope of the linear part of f(t), 7.787

_F32 = np.float32


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=_F32)
    return np.where(rgb <= 0.04045, rgb / _F32(12.92), ((rgb + _F32(0.055)) / _F32(1.055)) ** _F32(2.4)).astype(_F32)


def linear_to_srgb(lin: np.ndarray) -> np.ndarray:
    lin = np.asarray(lin, dtype=_F32)
    pos = np.maximum(lin, 0)
    return np.where(
        lin <= 0.0031308, lin * _F32(12.92), _F32(1.055) * pos ** _F32(1 / 2.4) - _F32(0.055)
    ).astype(_F32)


def _f(t: np.ndarray) -> np.ndarray:
    return np.where(t > _EPS, np.cbrt(t), t * _F32(_KAPPA_INV) + _F32(4 / 29)).astype(_F32)


def _f_inv(t: np.ndarray) -> np.ndarray:
    return np.where(t > 6 / 29, t**3, (t - _F32(4 / 29)) / _F32(_KAPPA_INV)).astype(_F32)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1], shape (..., 3) -> Lab float32, shape (..., 3)."""
    lin = srgb_to_linear(rgb)
    m = (_XYZ_FROM_RGB / WHITE_D65[:, None]).astype(_F32)  # fold the white point into the matrix
    xyz_n = lin @ m.T
    f = _f(xyz_n)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    lab = np.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], axis=-1)
    return lab.astype(_F32)


def rgb_to_l(rgb: np.ndarray) -> np.ndarray:
    """Only the L channel of :func:`rgb_to_lab` (cheaper: needs only Y), shape (...)."""
    return linear_to_l(srgb_to_linear(rgb))


def linear_to_l(lin: np.ndarray) -> np.ndarray:
    """Linear RGB (..., 3) -> L, shape (...): the second half of :func:`rgb_to_l`."""
    y = np.asarray(lin, dtype=_F32) @ _XYZ_FROM_RGB[1].astype(_F32)
    return (116 * _f(y) - 16).astype(_F32)


def grey_to_l(grey: np.ndarray) -> np.ndarray:
    """A grey sRGB value v in [0, 1] (R = G = B = v) -> its L. Y of a neutral grey is linear(v)."""
    return (116 * _f(srgb_to_linear(grey)) - 16).astype(_F32)


def lab_to_rgb(lab: np.ndarray, clip: bool = True) -> np.ndarray:
    """Lab, shape (..., 3) -> sRGB float32 in [0, 1] (clipped to the gamut unless ``clip=False``)."""
    lab = np.asarray(lab, dtype=_F32)
    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    fy = (L + 16) / _F32(116)
    f = np.stack([fy + a / _F32(500), fy, fy - b / _F32(200)], axis=-1)
    xyz_n = _f_inv(f)
    m = (_RGB_FROM_XYZ * WHITE_D65[None, :]).astype(_F32)
    lin = xyz_n @ m.T
    rgb = linear_to_srgb(lin)
    return np.clip(rgb, 0, 1) if clip else rgb


def l_to_input(L: np.ndarray, l_scale: float = 50.0, l_shift: float = 1.0) -> np.ndarray:
    """L in [0, 100] -> the network's input range [-1, 1]."""
    return (np.asarray(L, dtype=_F32) / _F32(l_scale) - _F32(l_shift)).astype(_F32)


def ab_to_target(ab: np.ndarray, ab_scale: float = 110.0) -> np.ndarray:
    """ab in Lab units -> the network's output range [-1, 1] (clipped)."""
    return np.clip(np.asarray(ab, dtype=_F32) / _F32(ab_scale), -1, 1).astype(_F32)


def apply_saturation(ab: np.ndarray, factor: float) -> np.ndarray:
    """Scale chroma; 1.0 leaves ab unchanged, 0 gives grey."""
    if factor < 0:
        raise ValueError(f"saturation must be >= 0, got {factor}")
    return ab if factor == 1.0 else (np.asarray(ab, dtype=_F32) * _F32(factor))
