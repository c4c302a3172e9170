"""sRGB -> CIELAB on whole batches in torch: the training data path's colour conversion.

The loader ships uint8 crops (4x less to copy than float32, and cheap to collate); this module turns
a batch into the network's L input and ab target on the training device in one vectorised pass. The
constants and the piecewise curves are runtime/image/color.py's (tests check both agree), so the colours a
model learns are the colours the runtime serves.
"""
from __future__ import annotations

import torch

from runtime.image import color

_M = torch.tensor((color._XYZ_FROM_RGB / color.WHITE_D65[:, None]), dtype=torch.float32)  # white point folded in


def _f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > color._EPS, t.clamp_min(1e-12).pow(1.0 / 3.0), t * color._KAPPA_INV + 4.0 / 29.0)


def rgb8_to_lab(rgb8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) sRGB -> float32 (N, 3, H, W) Lab (L in [0, 100])."""
    rgb = rgb8.float() / 255.0
    lin = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055).pow(2.4))
    xyz = torch.einsum("ij,njhw->nihw", _M.to(lin.device), lin)
    f = _f(xyz)
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], 1)


def batch_to_network(rgb8: torch.Tensor, l_scale: float = 50.0, l_shift: float = 1.0,
                     ab_scale: float = 110.0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 3, H, W) -> (L_in (N, 1, H, W), ab_target (N, 2, H, W)), float32 in [-1, 1]."""
    lab = rgb8_to_lab(rgb8)
    return lab[:, :1] / l_scale - l_shift, (lab[:, 1:] / ab_scale).clamp(-1.0, 1.0)
