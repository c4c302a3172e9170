"""The discriminator and the GAN loss (the generator lives in runtime/model/generator.py, which the
runtime's torch backends share).

PatchGAN (pix2pix, "70x70"): three 4x4 stride-2 conv blocks, one stride-1 block and a 1-channel
stride-1 conv; no norm on the first block and no activation at the end. It judges the (L, ab)
pair, so it sees 3 channels, and returns a map of logits (30x30 on a 256x256 input).
"""
from __future__ import annotations

import torch
from torch import nn

from runtime.model.generator import init_weights, norm_layer


class PatchDiscriminator(nn.Module):
    """(N, 3, H, W) normalized (L, a, b) -> (N, 1, H/8 - 2, W/8 - 2) real/fake logits."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=bias), norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class GANLoss(nn.Module):
    """'vanilla' = BCE on logits (the paper); 'lsgan' = least squares. Targets are broadcast
    to the patch map. ``real_label`` < 1 gives one-sided label smoothing."""

    def __init__(self, mode: str = "vanilla", real_label: float = 1.0, fake_label: float = 0.0):
        super().__init__()
        losses = {"vanilla": nn.BCEWithLogitsLoss, "lsgan": nn.MSELoss}
        if mode not in losses:
            raise ValueError(f"unknown GAN loss {mode!r}; choose from {sorted(losses)}")
        self.mode = mode
        self.loss = losses[mode]()
        self.real_label, self.fake_label = real_label, fake_label

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = torch.full_like(prediction, self.real_label if target_is_real else self.fake_label)
        return self.loss(prediction.float(), target.float())


def build_discriminator(ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> PatchDiscriminator:
    return PatchDiscriminator(3, ndf, n_layers, norm)
