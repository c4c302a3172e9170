"""Colour for what looks like a hinted part: the feature-space fill of hint spreading beyond the dots' reach.

Hint spreading (runtime/image/hint_spread.py) carries a dot's colour along paths of even lightness and fades it over
a fifth of the picture; what lies beyond, or behind an edge, keeps its automatic colour even when it is plainly the
same thing as a hinted part (the rest of a wall cut by a post, the other sleeve). Here a pixel is described by seven
features: its lightness, its lightness averaged near and farther, its texture (the spread and the gradient of
lightness around it) and what the network makes of it (its automatic a and b: pixels the network colours alike are,
to it, the same kind of thing). Where the spreading has faded, a pixel takes the hint residuals of the hinted parts
that look like it (``fill``; the non-local half of edit propagation: An and Pellacini, "AppProp", SIGGRAPH 2008): a
kernel-weighted mean in feature space, with a confidence that is high only where some hinted part matches closely
and that fades with the distance to the nearest hint (``FILL_REACH``), so a few dots on one object leave unrelated
parts of the picture mostly alone (tools/evaluate_bleed.py measures how much colour leaves a hand-traced object).

Features are scaled so that a difference of 1 is about what separates two objects (the scales of
runtime/image/reference.py's matcher, which describes cells the same way); windows scale with the grid (their sizes
are for a 256-pixel grid). The constants were chosen on training photos (tools/tune_hint_spread.py) under the bleed
out of hand-traced objects; the numbers, and what was tried and dropped (among them the network's decoder features
in place of these, links between neighbours weakened by feature differences, and feature weights learned with
tools/learn_hint_fill.py), are in docs/hints/README.md.
Numpy only; deterministic.
"""
from __future__ import annotations

import numpy as np

# Scales: lightness, its means near and farther, texture (standard deviation, gradient), automatic a, b.
SCALES = np.array([8.0, 10.0, 15.0, 4.0, 3.0, 6.0, 6.0], np.float32)
NEAR, FAR, TEXTURE = 4, 10, 2  # window radii (pixels of a 256-pixel grid) of the lightness means and the texture
FILL_SIGMA = 0.7  # feature distance at which a hint's pull in the fill falls to exp(-1/2)
# Each scaled feature's weight in the fill's distance (SCALES' order): all 1, the hand-set metric. Weights learned on
# training photos (tools/learn_hint_fill.py) gained 0.06 dB but painted flat skies like a hinted flat object, so
# they are not used (docs/hints/README.md).
FILL_WEIGHTS = np.ones(7, np.float32)
FILL_EPS = 1.0  # the fill's confidence is s / (s + FILL_EPS), s the summed pull of the hinted cells (one cell: 1)
FILL_REACH = 0.3  # the fill fades with the distance to the nearest hint, over this fraction of the grid's longer side
CELL = 4  # hinted pixels are pooled into CELL x CELL cells (or larger, see MAX_SAMPLES): the fill's samples
MAX_SAMPLES = 256  # at most this many samples (cells grow until no more are hinted): the fill's cost stays bounded
CHUNK = 8192  # pixels whose distances to the samples are computed at a time


def box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean of x (..., h, w) over (2 radius + 1)^2 windows (clipped at the borders: a box sum over a box count)."""
    def box_sum(a: np.ndarray) -> np.ndarray:
        pad = [(0, 0)] * (a.ndim - 2) + [(radius + 1, radius), (radius + 1, radius)]
        c = np.pad(a, pad).cumsum(-2).cumsum(-1)
        k = 2 * radius + 1
        return c[..., k:, k:] - c[..., :-k, k:] - c[..., k:, :-k] + c[..., :-k, :-k]
    ones = np.ones(x.shape[-2:], np.float64)
    return (box_sum(x.astype(np.float64)) / box_sum(ones)).astype(np.float32)


def guide_features(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Network-grid L (h, w) in [0, 100] and the automatic ab (2, h, w) -> scaled features (7, h, w) float32."""
    L = np.asarray(L, np.float32)
    k = max(L.shape) / 256.0

    def radius(r: int) -> int:
        return max(1, round(r * k))
    t = radius(TEXTURE)
    mean = box_mean(L, t)
    sd = np.sqrt(np.maximum(box_mean(L * L, t) - mean * mean, 0))
    gy, gx = np.gradient(L)
    grad = box_mean(np.hypot(gy, gx) * np.float32(k), t)  # per 256-grid pixel, so the scale holds at any size
    f = np.stack([L, box_mean(L, radius(NEAR)), box_mean(L, radius(FAR)), sd, grad,
                  np.asarray(ab[0], np.float32), np.asarray(ab[1], np.float32)])
    return (f / SCALES[:, None, None]).astype(np.float32)


def _cell_sums(a: np.ndarray, cell: int) -> np.ndarray:
    """(n, h, w) -> (n, cells) sums over cell x cell cells, row-major (the last ones zero-padded)."""
    n, h, w = a.shape
    H, W = -(-h // cell), -(-w // cell)
    a = np.pad(a, ((0, 0), (0, H * cell - h), (0, W * cell - w)))
    return a.reshape(n, H, cell, W, cell).sum(axis=(2, 4)).reshape(n, -1)


def _samples(guide: np.ndarray, residual: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The hinted cells: the mean features (K, F), mean residuals (K, 2) and centroids (K, 2) (y, x) of their hinted
    pixels. Cells are CELL pixels wide, doubled until there are at most MAX_SAMPLES of them: a large painted area
    gets coarser samples and every hinted place keeps at least one."""
    h, w = mask.shape
    m = mask.astype(np.float32)[None]
    cell = CELL
    count = _cell_sums(m, cell)[0]
    while np.count_nonzero(count) > MAX_SAMPLES:
        cell *= 2
        count = _cell_sums(m, cell)[0]
    hinted = np.flatnonzero(count > 0)
    n = count[hinted]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    stacked = np.concatenate([guide, residual[:2], yy[None], xx[None]]) * m
    means = _cell_sums(stacked, cell)[:, hinted] / n
    F = guide.shape[0]
    return (np.ascontiguousarray(means[:F].T), np.ascontiguousarray(means[F:F + 2].T),
            np.ascontiguousarray(means[F + 2:].T))


def nearest_sq(yy: np.ndarray, xx: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared distance from each pixel (yy, xx: (P,)) to the nearest sample centre (K, 2) (y, x): (P,)."""
    return ((yy[:, None] - centres[None, :, 0]) ** 2 + (xx[:, None] - centres[None, :, 1]) ** 2).min(1)


def fill(guide: np.ndarray, residual: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The feature-space fill of hint residuals (2, h, w) given at mask (h, w): the kernel-weighted mean residual of
    the hinted cells (2, h, w) and its confidence (h, w) in [0, 1) (zero everywhere without hints). FILL_SIGMA,
    FILL_WEIGHTS, FILL_EPS and FILL_REACH are read at call time (tools/tune_hint_spread.py tries other sigmas, eps and
    reaches; tools/learn_hint_fill.py learns the weights)."""
    c, h, w = guide.shape
    out = np.zeros((2, h * w), np.float32)
    conf = np.zeros(h * w, np.float32)
    if not mask.any():
        return out.reshape(2, h, w), conf.reshape(h, w)
    guide = guide * np.asarray(FILL_WEIGHTS, np.float32)[:, None, None]
    f, r, centres = _samples(guide, residual, mask)
    reach = np.float32(max(FILL_REACH * max(h, w), 1.0))
    eps = np.float32(max(FILL_EPS, 1e-6))
    yy, xx = np.divmod(np.arange(h * w, dtype=np.float32), np.float32(w))
    G = guide.reshape(c, -1)
    ff = (f * f).sum(1)
    k = np.float32(-0.5 / (FILL_SIGMA * FILL_SIGMA))
    for s in range(0, h * w, CHUNK):
        g = G[:, s:s + CHUNK]
        d2 = np.maximum((g * g).sum(0)[:, None] - 2 * (g.T @ f.T) + ff[None], 0)  # (P, K)
        wgt = np.exp(k * d2)
        total = wgt.sum(1)
        out[:, s:s + CHUNK] = (wgt @ r).T / np.maximum(total, 1e-12)
        # the confidence: how closely some hinted cell matches, faded by the distance to the nearest one
        near2 = nearest_sq(yy[s:s + CHUNK], xx[s:s + CHUNK], centres)
        conf[s:s + CHUNK] = total / (total + eps) * np.exp(-0.5 * near2 / (reach * reach))
    return out.reshape(2, h, w), conf.reshape(h, w)
