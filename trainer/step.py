"""One optimisation step of the conditional GAN, exactly as pix2pix reads:

    fake = G(L)
    D step:  0.5 * (GAN(D(L, fake.detach()), fake) + GAN(D(L, ab), real))
    G step:  GAN(D(L, fake), real) + lambda * L1(fake, ab)

A hint-taking generator gets the simulated hints too (``fake = G(L, hints)``); D still judges (L, ab).

With ``gan=False`` (the pretraining phase) only the L1 term trains G and D is not touched.

A generator with a distribution head (``dist_loss`` given) is trained on its logits with the rebalanced
cross-entropy (trainer/colour_classes.py) times ``lambda_ce``; ``fake`` is their decoding (the served annealed
mean), which D judges and whose L1 is logged (and added times ``lambda_l1``, 0 for a pure distribution loss).
A blend (a second decoder with the regression head) adds the L1 of its regression instead; D judges the served blend.
D is not wrapped in DDP (it runs twice per step, which DDP's reducer does not allow); under
torch.distributed its gradients are averaged by hand instead.
"""
from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
from torch import nn

from .networks import GANLoss


def decode(G: nn.Module, logits: torch.Tensor, regression: torch.Tensor | None = None) -> torch.Tensor:
    """A distribution head's logits (and a blend's regression) -> the served ab of a (maybe DDP-wrapped)
    generator."""
    g = G.module if isinstance(G, nn.parallel.DistributedDataParallel) else G
    annealed = g.distribution.decode_full(logits, g.spec)
    return annealed if regression is None else g.blend(annealed, regression)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class GANStep:
    def __init__(self, generator: nn.Module, discriminator: nn.Module, *, lambda_l1: float = 100.0,
                 gan_mode: str = "vanilla", lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999),
                 lr_d: float | None = None, real_label: float = 1.0, amp_dtype: torch.dtype | None = None,
                 g_params: list | None = None, dist_loss=None, lambda_ce: float = 1.0):
        self.G, self.D = generator, discriminator
        self.lambda_l1 = lambda_l1
        self.gan_loss = GANLoss(gan_mode, real_label=real_label)
        # g_params: parameter groups (e.g. a smaller learning rate for a pretrained encoder, frozen parts left out).
        self.opt_g = torch.optim.Adam(g_params if g_params is not None else self.G.parameters(), lr=lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr_d or lr, betas=betas)
        self.amp_dtype = amp_dtype
        self.dist_loss, self.lambda_ce = dist_loss, lambda_ce

    def _autocast(self, device_type: str):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=self.amp_dtype)

    def set_lr(self, factor: float) -> None:
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * factor

    def _allreduce_d_grads(self) -> None:
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            world = dist.get_world_size()
            for p in self.D.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= world

    def step(self, L: torch.Tensor, ab: torch.Tensor, gan: bool, hints: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One step; the losses come back as detached 0-d tensors on the device (no host sync per step: the
        caller reads them with .item() only when it reports)."""
        losses: dict[str, torch.Tensor] = {}
        regression = None
        with self._autocast(L.device.type):
            if self.dist_loss is None:
                fake = self.G(L) if hints is None else self.G(L, hints)
            else:
                logits = self.G(L, hints, return_logits=True)
                logits, regression = logits if isinstance(logits, tuple) else (logits, None)
                with torch.autocast(L.device.type, enabled=False):
                    fake = decode(self.G, logits, regression)
        if gan:
            set_requires_grad(self.D, True)
            self.opt_d.zero_grad(set_to_none=True)
            with self._autocast(L.device.type):
                pred_fake = self.D(torch.cat([L, fake.detach()], 1))
                pred_real = self.D(torch.cat([L, ab], 1))
            loss_d = 0.5 * (self.gan_loss(pred_fake, False) + self.gan_loss(pred_real, True))
            loss_d.backward()
            self._allreduce_d_grads()
            self.opt_d.step()
            set_requires_grad(self.D, False)
            losses["d"] = loss_d.detach()
        self.opt_g.zero_grad(set_to_none=True)
        l1 = ((fake if regression is None else regression).float() - ab).abs().mean()
        loss_g = self.lambda_l1 * l1
        if self.dist_loss is not None:
            ce = self.dist_loss(logits, ab)
            loss_g = loss_g + self.lambda_ce * ce
            losses["ce"] = ce.detach()
        if gan:
            with self._autocast(L.device.type):
                pred = self.D(torch.cat([L, fake], 1))
            g_gan = self.gan_loss(pred, True)
            loss_g = loss_g + g_gan
            losses["g_gan"] = g_gan.detach()
        loss_g.backward()
        self.opt_g.step()
        losses["l1"] = l1.detach()
        return losses
