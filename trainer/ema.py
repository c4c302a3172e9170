"""Exponential moving average (EMA) of the generator's weights, the copy that validation, export and
inference use when ``--ema`` is on.

With 90 training photos the generator's colours swing from one epoch to the next (validation PSNR moves by
+-0.6 dB between epochs of the same run); an average over the last ~1/(1 - decay) steps is a steadier model
than any single step's weights (Polyak averaging; standard for GAN generators since Karras et al. 2018).
Every floating tensor of the state dict is averaged, BatchNorm's running statistics included; integer
buffers (BatchNorm's batch counter) are copied. The decay ramps up as min(decay, (1 + n) / (10 + n)) so the
first steps do not drag the random or initialising weights along for thousands of steps.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, module: nn.Module, decay: float, updates: int = 0):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.module = copy.deepcopy(module).eval().requires_grad_(False)
        self.decay, self.updates = decay, updates

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        src = module.state_dict()
        mine, theirs = [], []
        for name, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                mine.append(value)
                theirs.append(src[name].detach())
            else:
                value.copy_(src[name])
        torch._foreach_lerp_(mine, theirs, 1.0 - d)
