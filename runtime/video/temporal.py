"""Temporal stabilization of predicted chroma (ab) across video frames; numpy only, deterministic.

A per-frame colorizer answers each frame afresh, so static things change colour from frame to frame
(flicker: DeOldify's and DDColor's users' first complaint). :class:`TemporalStabilizer` filters the
model's ab at model resolution with a recursive, motion-aware blend:

1. **Scene cuts** reset the filter: the total-variation distance between the luminance histograms of
   consecutive frames above ``cut_threshold`` means a new shot, whose colours owe nothing to the last.
2. **Camera motion** is undone first: a global translation between the previous and current L is
   estimated by phase correlation (sub-pixel), and the previous L and filtered ab are warped by it.
   The warp is kept only if it explains the new frame better than no warp (a fixed camera with
   people walking must not be "panned" by the people).
3. **Per-pixel trust**: where the warped previous L matches the current L (a static or correctly
   tracked surface), the history is blended in with weight ``strength``; where L changed (moving
   objects, occlusions, pixels that slid in from outside the frame) the weight falls to zero and the
   new prediction is taken as it is. The L difference is box-filtered first, so sensor and codec
   noise does not read as motion.

The same object serves the video pipeline and the GIMP frames mode (see docs/CONTRACTS.md):
``st.update(L_net, ab_net) -> ab`` once per frame in display order, ``st.reset()`` between clips.
"""
from __future__ import annotations

import numpy as np

_F32 = np.float32


def box_filter(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, edges replicated; integral image, so cost does not grow with r."""
    if radius <= 0:
        return x
    k = 2 * radius + 1
    p = np.pad(x.astype(np.float64), radius, mode="edge")
    c = np.cumsum(np.cumsum(p, axis=0), axis=1)
    c = np.pad(c, ((1, 0), (1, 0)))
    s = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    return (s / (k * k)).astype(_F32)


def sample_separable(x: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear samples of the last two axes at rows ``ys`` x columns ``xs`` (an axis-aligned grid:
    any translation + scaling). Returns (samples, valid); ``valid`` marks points inside the image."""
    h, w = x.shape[-2:]
    ys = np.asarray(ys, dtype=np.float64)
    xs = np.asarray(xs, dtype=np.float64)
    valid = ((ys >= 0) & (ys <= h - 1))[:, None] & ((xs >= 0) & (xs <= w - 1))[None, :]
    y0 = np.clip(np.floor(ys).astype(np.int64), 0, h - 1)
    x0 = np.clip(np.floor(xs).astype(np.int64), 0, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    fy = np.clip(ys - np.floor(ys), 0, 1).astype(_F32)[:, None]
    fx = np.clip(xs - np.floor(xs), 0, 1).astype(_F32)[None, :]
    rows = x[..., y0, :] * (1 - fy) + x[..., y1, :] * fy
    out = rows[..., x0] * (1 - fx) + rows[..., x1] * fx
    return out.astype(_F32), valid


def shift_image(x: np.ndarray, dy: float, dx: float) -> tuple[np.ndarray, np.ndarray]:
    """Translate the last two axes by (dy, dx) with bilinear sampling: out[y, x] = x[y - dy, x - dx].

    Returns (shifted, valid) where ``valid`` marks pixels whose source lay inside the image.
    """
    h, w = x.shape[-2:]
    return sample_separable(x, np.arange(h) - dy, np.arange(w) - dx)


def estimate_translation(prev: np.ndarray, cur: np.ndarray, max_frac: float = 0.25) -> tuple[float, float]:
    """Global translation (dy, dx) with cur ~= shift_image(prev, dy, dx), by phase correlation.

    A Hann window keeps the image borders from dominating the spectrum; the peak is refined to
    sub-pixel by a parabola through its neighbours. Shifts beyond ``max_frac`` of the frame are
    not trusted (returned as 0, 0): that much motion in one frame is a cut or a whip pan.
    """
    h, w = cur.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    a = np.fft.rfft2((prev - prev.mean()) * win)
    b = np.fft.rfft2((cur - cur.mean()) * win)
    r = b * np.conj(a)
    r /= np.abs(r) + 1e-9
    corr = np.fft.irfft2(r, s=(h, w))
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)

    def refine(cm: float, c0: float, cp: float) -> float:
        d = cm - 2 * c0 + cp
        return 0.0 if d >= 0 else float(np.clip(0.5 * (cm - cp) / d, -0.5, 0.5))

    dy = iy + refine(corr[iy - 1, ix], corr[iy, ix], corr[(iy + 1) % h, ix])
    dx = ix + refine(corr[iy, ix - 1], corr[iy, ix], corr[iy, (ix + 1) % w])
    dy = dy - h if dy > h / 2 else dy
    dx = dx - w if dx > w / 2 else dx
    if abs(dy) > max_frac * h or abs(dx) > max_frac * w:
        return 0.0, 0.0
    return float(dy), float(dx)


def luminance_histogram(L: np.ndarray, bins: int = 32) -> np.ndarray:
    hist, _ = np.histogram(L, bins=bins, range=(0.0, 100.0))
    return hist / max(1, L.size)


def shot_changed(hist: np.ndarray, previous: np.ndarray, threshold: float) -> bool:
    """Whether two frames' luminance histograms are too far apart to be one shot (total-variation distance)."""
    return 0.5 * float(np.abs(hist - previous).sum()) > threshold


class CutDetector:
    """Scene cuts in a stream of frames: ``detector(L)`` is True when ``L`` (the model input's L, (h, w)) starts a
    new shot: the total-variation distance between its luminance histogram and the previous frame's is above
    ``threshold`` (or the frame size changed). The first frame starts no cut. Shared by the stabilizer and by the
    video pipeline's key frames (a key frame's colour holds until the next cut)."""

    def __init__(self, threshold: float = 0.3):
        self.threshold = float(threshold)
        self.cuts = 0  # cuts seen since construction
        self.reset()

    def reset(self) -> None:
        self._hist: np.ndarray | None = None
        self._shape: tuple[int, ...] | None = None

    def __call__(self, L: np.ndarray) -> bool:
        hist = luminance_histogram(L)
        cut = self._hist is not None and (self._shape != L.shape or shot_changed(hist, self._hist, self.threshold))
        self._hist, self._shape = hist, L.shape
        self.cuts += cut
        return cut


class GateSmoother:
    """A reference's gate (runtime/image/reference.py: how much of its colour a frame takes, 0..1, from the fraction of
    mutual matches) smoothed over the frames of a shot: ``smoother(gate)`` is the gate to apply. The first frame after
    ``reset()`` (a cut, a new key frame) takes its own gate, as a still would; later frames move ``rate`` of the way
    towards theirs, so a gate that flicks with the motion within a shot does not make the colour pulse. A shot's
    frames hold the same things, so the gate is meant to be steady; a real change still comes through in a few
    frames (0.35 per frame: 90 % after 6). Frames where the reference matches nothing are not fed to it."""

    def __init__(self, rate: float = 0.35):
        self.rate = float(rate)
        self.reset()

    def reset(self) -> None:
        self.value: float | None = None

    def __call__(self, gate: float) -> float:
        self.value = gate if self.value is None else self.value + self.rate * (gate - self.value)
        return self.value if self.value >= 1e-3 else 0.0  # faded out: skip the spreading


class TemporalStabilizer:
    """Recursive, luminance-similarity-weighted, motion-compensated filter of ab at model resolution.

    ``strength`` in [0, 1]: the weight the (warped) history gets where the frame is unchanged;
    0 turns the filter off (output == input). ``sigma_l`` (L units) sets how fast trust falls as the
    local L difference grows: at a difference of ``sigma_l`` the weight is e^-1 of the full weight.
    """

    def __init__(
        self,
        strength: float = 0.6,
        *,
        sigma_l: float = 4.0,
        radius: int = 2,
        cut_threshold: float = 0.3,
        motion: bool = True,
    ):
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        if sigma_l <= 0:
            raise ValueError(f"sigma_l must be > 0, got {sigma_l}")
        self.strength = float(strength)
        self.sigma_l = float(sigma_l)
        self.radius = int(radius)
        self.cut_threshold = float(cut_threshold)
        self.motion = bool(motion)
        self.cuts = 0  # scene cuts seen since construction (for logs and tests)
        self.last_shift = (0.0, 0.0)
        self.reset()

    def reset(self) -> None:
        """Forget the history; the next frame is passed through as it is."""
        self._L: np.ndarray | None = None
        self._ab: np.ndarray | None = None
        self._hist: np.ndarray | None = None

    def update(self, L: np.ndarray, ab: np.ndarray) -> np.ndarray:
        """Filter one frame. ``L``: (h, w) Lab L of the model input; ``ab``: (2, h, w) prediction."""
        L = np.asarray(L, dtype=_F32)
        ab = np.asarray(ab, dtype=_F32)
        if L.ndim != 2 or ab.shape != (2, *L.shape):
            raise ValueError(f"expected L (h, w) and ab (2, h, w), got {L.shape} and {ab.shape}")
        hist = luminance_histogram(L)
        if self.strength == 0.0 or self._L is None or self._L.shape != L.shape:
            return self._remember(L, ab, hist)
        if shot_changed(hist, self._hist, self.cut_threshold):
            self.cuts += 1
            return self._remember(L, ab, hist)

        prev_L, prev_ab, valid = self._L, self._ab, np.ones(L.shape, dtype=bool)
        self.last_shift = (0.0, 0.0)
        if self.motion:
            dy, dx = estimate_translation(prev_L, L)
            if dy or dx:
                warped_L, warped_valid = shift_image(prev_L, dy, dx)
                # Keep the warp only if it explains this frame better than standing still.
                m = warped_valid
                if m.any() and np.abs(warped_L - L)[m].mean() < np.abs(prev_L - L)[m].mean():
                    prev_L, valid = warped_L, warped_valid
                    prev_ab, _ = shift_image(self._ab, dy, dx)
                    self.last_shift = (dy, dx)

        diff = box_filter(np.abs(L - prev_L), self.radius)
        weight = (self.strength * np.exp(-((diff / self.sigma_l) ** 2)) * valid).astype(_F32)
        out = weight * prev_ab + (1 - weight) * ab
        return self._remember(L, out.astype(_F32), hist)

    def _remember(self, L: np.ndarray, ab: np.ndarray, hist: np.ndarray) -> np.ndarray:
        self._L, self._ab, self._hist = L.copy(), ab.copy(), hist
        return ab
