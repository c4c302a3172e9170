"""Simulated user colour hints for training (Zhang et al. 2017, "Real-Time User-Guided Image
Colorization with Learned Deep Priors", section 3.3).

For each image: with probability ``p_none`` no hints at all (so the automatic result keeps being
trained); otherwise a geometric number of points (mean ``1 / p_geom``), each a small square patch at a
uniformly random place whose hint is the patch's mean ground-truth ab, and whose mask is 1 there.
A user's painted dot is exactly this: one colour over a few pixels. The tensor layout is the
generator's hint input: (N, 3, H, W) = [a, b, mask] with a, b normalized like the target.
"""
from __future__ import annotations

import torch


def sample_hints(ab: torch.Tensor, p_none: float = 0.5, p_geom: float = 0.125, max_points: int = 32,
                 sizes: tuple[int, ...] = (1, 3, 5, 7, 9), generator: torch.Generator | None = None) -> torch.Tensor:
    """ab (N, 2, H, W) normalized target -> hints (N, 3, H, W). Deterministic for a given ``generator``."""
    n, _, h, w = ab.shape
    hints = ab.new_zeros(n, 3, h, w)
    g = generator
    for i in range(n):
        if float(torch.rand(1, generator=g)) < p_none:
            continue
        # Geometric on {1, 2, ...}: number of Bernoulli(p_geom) trials up to the first success.
        u = float(torch.rand(1, generator=g))
        count = min(max_points, 1 + int(torch.log(torch.tensor(1.0 - u)) / torch.log(torch.tensor(1.0 - p_geom))))
        for _ in range(count):
            s = sizes[int(torch.randint(len(sizes), (1,), generator=g))]
            s = min(s, h, w)
            y = int(torch.randint(h - s + 1, (1,), generator=g))
            x = int(torch.randint(w - s + 1, (1,), generator=g))
            mean = ab[i, :, y:y + s, x:x + s].mean(dim=(1, 2))
            hints[i, :2, y:y + s, x:x + s] = mean[:, None, None]
            hints[i, 2, y:y + s, x:x + s] = 1.0
    return hints
