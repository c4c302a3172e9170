"""Colour as a distribution (Zhang, Isola and Efros 2016): quantised in-gamut ab bins, the head that predicts a
probability over them, and its decoding into one ab per pixel, all inside the network so every backend serves the
same colour.

An L1-trained regression predicts the median of every colour a thing could be: a car that may be red, blue or green
comes out grey-brown. A distribution keeps the alternatives apart, and the annealed mean
``softmax((logits - alpha * log prior) / T) . centres`` (T < 1) moves towards the most probable colour where the
network is sure and stays muted where it is not, so saturation follows the network's confidence instead of one
global factor.

The bins: a square grid of ``spec.ab_bin_size`` on a and b (Lab units) within +-ab_scale, kept where the bin's
square reaches an sRGB colour at some lightness (the in-gamut bins; 10 gives 260). The grid is computed, not
learned, so trainer, exporter and runtime agree on it from the spec alone. The prior (how often each bin occurs in
the training photos) is a buffer of the head, saved with its weights; training sets it (trainer/colour_classes.py).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .spec import ModelSpec


# XYZ from linear sRGB (D65) and the D65 white: runtime/image/color.py's constants (the model room may not import it;
# tests/test_distribution.py checks both agree). A colour is in gamut when its sRGB is in [-1e-3, 1 + 1e-3]: in
# linear light, [-1e-3 / 12.92, ((1 + 1e-3 + 0.055) / 1.055) ** 2.4].
_RGB_FROM_XYZ = np.linalg.inv(np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                                        [0.019334, 0.119193, 0.950227]]))
_WHITE = np.array([0.95047, 1.0, 1.08883])
_LOW, _HIGH = -1e-3 / 12.92, ((1 + 1e-3 + 0.055) / 1.055) ** 2.4


def _linear_rgb(lab: np.ndarray) -> np.ndarray:
    """Lab (..., 3) -> linear sRGB (unclipped; in gamut exactly where every channel is in [0, 1])."""
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    xyz = np.where(f > 6 / 29, f**3, (f - 4 / 29) * 3 * (6 / 29) ** 2) * _WHITE
    return xyz @ _RGB_FROM_XYZ.T


@lru_cache(maxsize=8)
def _gamut_bins(bin_size: float, ab_scale: float) -> np.ndarray:
    half = int(ab_scale // bin_size)
    axis = np.arange(-half, half + 1, dtype=np.float64) * bin_size
    a, b = np.meshgrid(axis, axis, indexing="ij")
    ab = np.stack([a.ravel(), b.ravel()], 1)
    # A bin is kept when any of 5 x 5 points spread over its square is an sRGB colour at some lightness.
    offsets = np.linspace(-0.5, 0.5, 5) * bin_size
    oa, ob = np.meshgrid(offsets, offsets, indexing="ij")
    points = (ab[:, None, :] + np.stack([oa.ravel(), ob.ravel()], 1)[None]).reshape(-1, 2)
    L = np.linspace(1.0, 99.0, 34)
    lab = np.concatenate([np.repeat(L, len(points))[:, None], np.tile(points, (len(L), 1))], 1)
    rgb = _linear_rgb(lab).reshape(len(L), len(ab), -1, 3)
    inside = np.all((rgb >= _LOW) & (rgb <= _HIGH), axis=3)
    return ab[inside.any(axis=(0, 2))].astype(np.float32)


def gamut_bins(spec: ModelSpec) -> np.ndarray:
    """(Q, 2) float32: the centres of the in-gamut ab bins in Lab units (a read-only array shared by callers)."""
    out = _gamut_bins(float(spec.ab_bin_size), float(spec.ab_scale))
    out.flags.writeable = False
    return out


class DistributionHead(nn.Module):
    """Features (N, C, h, w) -> logits (N, Q, h, w) over the in-gamut bins; ``decode`` -> normalised ab (N, 2, h, w).

    Buffers: ``centres`` (Q, 2) in the network's ab range (Lab / ab_scale) and ``log_prior`` (Q,) (uniform until
    training sets it). The logits and their decoding run in float32 whatever the features' dtype."""

    def __init__(self, channels: int, spec: ModelSpec):
        super().__init__()
        centres = torch.from_numpy(np.array(gamut_bins(spec))) / spec.ab_scale
        q = centres.shape[0]
        self.logits = nn.Conv2d(channels, q, 1)
        self.register_buffer("centres", centres)
        self.register_buffer("log_prior", torch.full((q,), -float(np.log(q))))
        nn.init.normal_(self.logits.weight, 0.0, 0.5 / np.sqrt(channels))  # logits of order 1: a start that can learn
        nn.init.zeros_(self.logits.bias)

    @property
    def bins(self) -> int:
        return self.centres.shape[0]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits in float32: in an FP16 graph the features and weights are FP16, the sum is not (the softmax at a
        low temperature magnifies every error of the logits)."""
        return F.conv2d(features.float(), self.logits.weight.float(), self.logits.bias.float())

    def serve(self, features: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
        """Features -> the served ab at full resolution: ``decode_full(forward(features))`` written channels-last, as
        (pixels x C) @ (C x Q) -> softmax over the last axis -> @ (Q x 2), so that only the 32- and 2-channel maps are
        transposed; ONNX Runtime runs it ~10x faster than a Softmax over the channel axis of NCHW logits and an Einsum
        (the same exact softmax, with its maximum subtracted)."""
        t, alpha = spec.ab_temperature, spec.ab_prior_alpha
        w = self.logits.weight.float()[:, :, 0, 0].t() * (1.0 / t)  # (C, Q)
        b = self.logits.bias.float()
        if alpha:
            b = b - alpha * self.log_prior.float()
        z = torch.matmul(features.float().permute(0, 2, 3, 1), w) + b * (1.0 / t)
        ab = torch.matmul(torch.softmax(z, dim=-1), self.centres.float())
        return upsample2(ab.permute(0, 3, 1, 2))

    def decode(self, logits: torch.Tensor, temperature: float, prior_alpha: float = 0.0) -> torch.Tensor:
        """The annealed mean of softmax((logits - prior_alpha * log prior) / temperature) on the head's grid."""
        z = logits.float()
        if prior_alpha:
            z = z - prior_alpha * self.log_prior.float()[None, :, None, None]
        p = torch.softmax(z * (1.0 / temperature), dim=1)
        return torch.einsum("nqhw,qc->nchw", p, self.centres.float())

    def decode_full(self, logits: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
        """The served output from logits (``spec``'s temperature and prior correction) at full resolution."""
        return upsample2(self.decode(logits, spec.ab_temperature, spec.ab_prior_alpha))


def upsample2(ab: torch.Tensor) -> torch.Tensor:
    return F.interpolate(ab, scale_factor=2.0, mode="bilinear", align_corners=False)
