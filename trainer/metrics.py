"""Image-quality metrics for colorization that need no pretrained network: PSNR, SSIM, CIEDE2000, colourfulness.

Numpy only (the training loop imports this for validation; the colour maths comes from runtime.image.color).
Conventions, so numbers are comparable with published tables:

* PSNR and SSIM are computed on sRGB float arrays in [0, 1] (H, W, 3), ``data_range`` 1.
* SSIM is Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5, truncated at 3.5 sigma), K1 0.01,
  K2 0.03, population covariances, computed per RGB channel and averaged over channels; the border
  where the window does not fit is left out of the mean. This is exactly
  ``skimage.metrics.structural_similarity(..., channel_axis=-1, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1.0)``, which the tests check.
* CIEDE2000 follows Sharma, Wu & Dalal (2005) with kL = kC = kH = 1, per pixel.
* Colourfulness is Hasler & Suesstrunk (2003), ``sigma_rgyb + 0.3 * mu_rgyb`` on RGB scaled to 0..255.
"""
from __future__ import annotations

import math
from typing import TypedDict

import numpy as np

from runtime.image.color import rgb_to_lab

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scipy.ndimage.gaussian_filter's default: radius int(3.5 * 1.5 + 0.5) = 5, an 11x11 window
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _same_shape(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape:
        raise ValueError(f"shape mismatch: prediction {pred.shape} vs truth {truth.shape}")
    return pred, truth


def psnr(pred: np.ndarray, truth: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels; identical images give ``math.inf``."""
    pred, truth = _same_shape(pred, truth)
    mse = float(np.mean((pred - truth) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def _gaussian_kernel(sigma: float, truncate: float) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _filter_axis(img: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """Correlate ``img`` with a symmetric 1-D kernel along ``axis``, mirroring edges (scipy's 'reflect')."""
    r = len(kernel) // 2
    pad = [(0, 0)] * img.ndim
    pad[axis] = (r, r)
    padded = np.pad(img, pad, mode="symmetric")
    n = img.shape[axis]
    out = np.zeros_like(img)
    for i, w in enumerate(kernel):
        out += w * np.take(padded, np.arange(i, i + n), axis=axis)
    return out


def _blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return _filter_axis(_filter_axis(img, kernel, 0), kernel, 1)


def ssim(pred: np.ndarray, truth: np.ndarray, data_range: float = 1.0) -> float:
    """Mean structural similarity, per RGB channel then averaged (see the module docstring). Also takes (H, W)."""
    pred, truth = _same_shape(pred, truth)
    kernel = _gaussian_kernel(SSIM_SIGMA, SSIM_TRUNCATE)
    win = len(kernel)
    if min(pred.shape[:2]) < win:
        raise ValueError(f"SSIM needs images of at least {win}x{win} pixels, got {pred.shape[:2]}")
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    ux, uy = _blur(pred, kernel), _blur(truth, kernel)
    vx = _blur(pred * pred, kernel) - ux * ux
    vy = _blur(truth * truth, kernel) - uy * uy
    vxy = _blur(pred * truth, kernel) - ux * uy
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    r = win // 2
    # Mean over the valid region of each channel, then over channels (equal sizes, so one mean does both).
    return float(s[r:-r, r:-r].mean())


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """Per-pixel CIEDE2000 colour difference of two Lab arrays shaped (..., 3) -> shape (...), float64."""
    lab1, lab2 = _same_shape(lab1, lab2)
    L1, a1, b1 = np.moveaxis(lab1, -1, 0)
    L2, a2, b2 = np.moveaxis(lab2, -1, 0)
    pow25_7 = 25.0**7

    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + pow25_7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360  # atan2(0, 0) = 0, the paper's convention for neutral colours
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360

    chroma_zero = (c1p * c2p) == 0
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(chroma_zero, 0.0, dh)
    d_L = L2 - L1
    d_C = c2p - c1p
    d_H = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2)

    l_bar = (L1 + L2) / 2
    cp_bar = (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_bar = np.where(
        np.abs(h1p - h2p) <= 180, h_sum / 2, np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2)
    )
    h_bar = np.where(chroma_zero, h_sum, h_bar)

    t = (
        1
        - 0.17 * np.cos(np.radians(h_bar - 30))
        + 0.24 * np.cos(np.radians(2 * h_bar))
        + 0.32 * np.cos(np.radians(3 * h_bar + 6))
        - 0.20 * np.cos(np.radians(4 * h_bar - 63))
    )
    d_theta = 30 * np.exp(-(((h_bar - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(cp_bar**7 / (cp_bar**7 + pow25_7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * cp_bar
    s_h = 1 + 0.015 * cp_bar * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    tl, tc, th = d_L / s_l, d_C / s_c, d_H / s_h
    return np.sqrt(tl**2 + tc**2 + th**2 + r_t * tc * th)


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colourfulness of an (..., 3) RGB image.

    Float input is taken as [0, 1] and scaled to 0..255; integer input (uint8) is used as is.
    A neutral image (R = G = B everywhere) scores 0.
    """
    arr = np.asarray(rgb)
    if arr.shape[-1] != 3:
        raise ValueError(f"colourfulness needs an RGB array (..., 3), got shape {arr.shape}")
    scale = 1.0 if np.issubdtype(arr.dtype, np.integer) else 255.0
    arr = arr.astype(np.float64) * scale
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    sigma = math.hypot(float(rg.std()), float(yb.std()))
    mu = math.hypot(float(rg.mean()), float(yb.mean()))
    return sigma + 0.3 * mu


class ImageScores(TypedDict):
    """One prediction scored against its ground truth."""

    psnr: float  # dB, RGB
    ssim: float  # RGB, channel mean
    ciede2000: float  # mean per-pixel dE00
    cf_pred: float  # colourfulness of the prediction
    cf_truth: float  # colourfulness of the ground truth


SCORE_KEYS: tuple[str, ...] = tuple(ImageScores.__annotations__)


def score_image(pred: np.ndarray, truth: np.ndarray) -> ImageScores:
    """Score a prediction against the truth; both sRGB float (H, W, 3) in [0, 1]."""
    pred, truth = _same_shape(pred, truth)
    if pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"expected RGB arrays (H, W, 3), got {pred.shape}")
    return ImageScores(
        psnr=psnr(pred, truth),
        ssim=ssim(pred, truth),
        ciede2000=float(ciede2000(rgb_to_lab(pred), rgb_to_lab(truth)).mean()),
        cf_pred=colourfulness(pred),
        cf_truth=colourfulness(truth),
    )


def summarize(scores: list[ImageScores]) -> dict[str, float]:
    """Means over a set, plus ``cf_ratio`` = mean CF(pred) / mean CF(truth) (a ratio of means, not a mean of ratios)."""
    if not scores:
        raise ValueError("no scores to summarize")
    out = {k: float(np.mean([s[k] for s in scores])) for k in SCORE_KEYS}
    out["cf_ratio"] = out["cf_pred"] / out["cf_truth"] if out["cf_truth"] > 0 else math.nan
    return out
