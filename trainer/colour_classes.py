"""Training a distribution head (Zhang, Isola and Efros 2016): the colour prior of the training photos, soft-encoded
targets and the class-rebalanced cross-entropy.

- The prior: how often each in-gamut ab bin (runtime/model/ab_distribution.py) occurs in the training photos, from
  every 4th pixel of each, smoothed by a Gaussian (sigma 5 Lab units) over the ab plane.
- Rebalancing: each pixel's loss is weighted by w(q*) = 1 / ((1 - lam) p(q*) + lam / Q), normalised so that the
  prior's expected weight is 1 (lam = 0.5); q* is the bin nearest to the pixel's true ab. Without it the most
  likely colour of nearly everything is a near-neutral bin and a lower temperature makes the output greyer.
- Targets: the true ab (average-pooled to the head's grid) spread over its 5 nearest bins with Gaussian weights
  (sigma 5 Lab units), which keeps neighbouring bins related.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from runtime.image import color

SIGMA = 5.0  # Lab units: soft-encoding and prior smoothing
NEIGHBOURS = 5
REBALANCE = 0.5


def estimate_prior(images: Iterable[np.ndarray], centres: np.ndarray, stride: int = 4) -> np.ndarray:
    """(Q,) bin frequencies of the uint8 RGB ``images`` (every ``stride``-th pixel), smoothed, summing to 1."""
    counts = np.zeros(len(centres), np.float64)
    c = torch.tensor(np.asarray(centres, np.float32))
    for rgb in images:
        ab = color.rgb_to_lab(rgb[::stride, ::stride].astype(np.float32) / 255)[..., 1:].reshape(-1, 2)
        nearest = torch.cdist(torch.from_numpy(ab), c).argmin(1).numpy()
        counts += np.bincount(nearest, minlength=len(centres))
    p = counts / max(counts.sum(), 1.0)
    d2 = ((centres[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    kernel = np.exp(-d2 / (2 * SIGMA**2))
    smooth = kernel @ p
    return smooth / smooth.sum()


def rebalance_weights(prior: np.ndarray | torch.Tensor, lam: float = REBALANCE) -> torch.Tensor:
    """(Q,) per-bin loss weights with sum(prior * w) = 1; ``lam`` 1 = no rebalancing, towards 0 = inverse frequency."""
    p = torch.as_tensor(prior, dtype=torch.float32)
    w = 1.0 / ((1 - lam) * p + lam / p.numel())
    return w / (p * w).sum()


class DistributionLoss:
    """Rebalanced cross-entropy of the head's logits against the true ab (normalised, full resolution)."""

    def __init__(self, centres: torch.Tensor, log_prior: torch.Tensor, ab_scale: float, lam: float = REBALANCE):
        self.centres = centres.float()  # (Q, 2) normalised
        self.weights = rebalance_weights(log_prior.float().exp(), lam).to(centres.device)
        self.inv_two_sigma2 = 1.0 / (2 * (SIGMA / ab_scale) ** 2)

    def targets(self, ab: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(soft targets (N, K) over the K nearest bins, their bin indices (N, K), pixel weights (N,)) with pixels
        flattened in (n, y, x) order on the head's grid."""
        if ab.shape[-2:] != size:
            ab = F.adaptive_avg_pool2d(ab, size)
        flat = ab.float().permute(0, 2, 3, 1).reshape(-1, 2)
        d2 = torch.cdist(flat, self.centres).square()
        near, idx = d2.topk(NEIGHBOURS, dim=1, largest=False)
        soft = torch.softmax(-near * self.inv_two_sigma2, dim=1)
        return soft, idx, self.weights[idx[:, 0]]

    def __call__(self, logits: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        soft, idx, w = self.targets(ab, tuple(logits.shape[-2:]))
        logp = torch.log_softmax(logits.float(), dim=1).permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
        ce = -(soft * logp.gather(1, idx)).sum(1)
        return (w * ce).mean()  # Zhang et al.: the weights' prior expectation is 1, no renormalisation per batch


def setup(G, dataset, spec, has_prior: bool, log) -> None:
    """A new distribution head: its prior from this run's training photos (saved with the weights; a resumed run,
    or one initialised from a model that has the head, keeps the prior its logits learned against). Every process
    computes the same prior (deterministic), one photo at a time."""
    if spec.ab_head == "regression" or has_prior:
        return
    images = dataset.arrays if dataset.arrays is not None else (dataset._image(i) for i in range(len(dataset.paths)))
    prior = estimate_prior(images, G.distribution.centres.cpu().numpy() * spec.ab_scale)
    G.distribution.log_prior.copy_(torch.from_numpy(np.log(np.maximum(prior, 1e-12))).float())
    log(f"colour prior: {G.distribution.bins} bins, the 5 most frequent hold {np.sort(prior)[-5:].sum():.0%} of the pixels")
