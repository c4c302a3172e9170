"""The generator: a pix2pix U-Net with an Iizuka et al. (2016) global fusion layer, in PyTorch.

It lives on the runtime side because the torch backends need it; the trainer imports it from here
(never the other way round). Importing this module imports torch, so the runtime imports it lazily.

Layout (``depth`` = D levels, widths w_i = ngf * min(2**i, max_mult)):

    L -> down_0 .. down_{D-1}  (4x4 stride-2 convs; LeakyReLU 0.2 before all but the first;
                                 norm on all but the first and the innermost)
      -> fusion: global branch on encoder level ``fusion_level`` (two 3x3 stride-2 convs, global
         average pooling, a 2-layer MLP) -> vector broadcast over the bottleneck, concatenated
         with it and mixed by a 1x1 conv
      -> up_{D-1} .. up_0       (ReLU, 4x4 stride-2 transposed conv, norm, dropout in the innermost
                                 blocks; each output concatenated with the matching encoder skip)
      -> tanh -> ab in [-1, 1]

Global average pooling (no fixed-size layer over the map) lets it run at any H, W that are
multiples of 2**depth.
"""
from __future__ import annotations

import torch
from torch import nn

from .spec import ModelSpec


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


def _upconv(kind: str, cin: int, cout: int, bias: bool) -> nn.Module:
    if kind == "convtranspose":
        return nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=bias)
    # Resize-convolution avoids the checkerboard pattern of strided transposed convs.
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.Conv2d(cin, cout, 3, 1, 1, bias=bias))


class GlobalFusion(nn.Module):
    """Global image feature (strided convs -> GAP -> MLP) fused into the bottleneck by a 1x1 conv."""

    def __init__(self, in_channels: int, bottleneck_channels: int, dim: int, norm: str):
        super().__init__()
        mid = max(in_channels * 2, 64)
        bias = norm == "none"
        self.features = nn.Sequential(
            nn.LeakyReLU(0.2),
            nn.Conv2d(in_channels, mid, 3, 2, 1, bias=bias),
            norm_layer(norm, mid),
            nn.LeakyReLU(0.2),
            nn.Conv2d(mid, mid, 3, 2, 1, bias=bias),
            norm_layer(norm, mid),
            nn.LeakyReLU(0.2),
        )
        self.mlp = nn.Sequential(nn.Linear(mid, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU())
        self.mix = nn.Conv2d(bottleneck_channels + dim, bottleneck_channels, 1)

    def forward(self, source: torch.Tensor, bottleneck: torch.Tensor) -> torch.Tensor:
        g = self.mlp(self.features(source).mean(dim=(2, 3)))
        g = g[:, :, None, None].expand(-1, -1, bottleneck.shape[2], bottleneck.shape[3])
        return self.mix(torch.cat([bottleneck, g], dim=1))


class UNetGenerator(nn.Module):
    """Normalized L (N, 1, H, W) in [-1, 1] -> normalized ab (N, 2, H, W) in [-1, 1]."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        d, bias = spec.depth, spec.norm != "batch"
        w = [spec.width(i) for i in range(d)]
        self.down = nn.ModuleList()
        for i in range(d):
            if i == 0:
                self.down.append(nn.Conv2d(1, w[0], 4, 2, 1, bias=bias))
            else:
                innermost = i == d - 1
                self.down.append(
                    nn.Sequential(
                        nn.LeakyReLU(0.2),
                        nn.Conv2d(w[i - 1], w[i], 4, 2, 1, bias=bias or innermost),
                        nn.Identity() if innermost else norm_layer(spec.norm, w[i]),
                    )
                )
        self.fusion = GlobalFusion(w[spec.fusion_level - 1], w[d - 1], spec.fusion_dim, spec.norm) if spec.fusion else None
        self.up = nn.ModuleList()
        # up[i] undoes down[i]; dropout in the blocks just outside the innermost, as in pix2pix.
        dropout_levels = set(range(max(1, d - 1 - spec.dropout_blocks), d - 1)) if spec.dropout > 0 else set()
        for i in range(d):
            cin = w[i] if i == d - 1 else 2 * w[i]
            if i == 0:
                self.up.append(nn.Sequential(nn.ReLU(), _upconv(spec.upsample, cin, 2, True), nn.Tanh()))
            else:
                layers = [nn.ReLU(), _upconv(spec.upsample, cin, w[i - 1], bias), norm_layer(spec.norm, w[i - 1])]
                if i in dropout_levels:
                    layers.append(nn.Dropout(spec.dropout))
                self.up.append(nn.Sequential(*layers))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)
        if self.fusion is not None:
            x = self.fusion(skips[self.spec.fusion_level - 1], x)
        for i in reversed(range(len(self.up))):
            if i < len(self.up) - 1:
                x = torch.cat([x, skips[i]], dim=1)
            x = self.up[i](x)
        return x


def build_generator(spec: ModelSpec) -> nn.Module:
    """The generator ``spec`` describes (randomly initialised): UNetGenerator or EffNetUNet."""
    if spec.encoder == "unet":
        if spec.hints:
            raise ValueError("hint inputs need an efficientnet-lite encoder")
        return UNetGenerator(spec)
    from .effnet_unet import EffNetUNet

    return EffNetUNet(spec)


def scale_hints(hints: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """Hint input in Lab units [a, b, mask] -> the generator's range [a / s, b / s, mask], s = ab_scale * ab_gain:
    the served output is the generator's times s, so a hinted colour comes out as painted whatever the chroma gain."""
    s = float(spec.ab_scale) * float(spec.ab_gain)
    return torch.cat([hints[:, :2] / s, hints[:, 2:3]], 1)


class LabColorizer(nn.Module):
    """The served model: L in [0, 100] (+ hints [a, b, mask] in Lab units) -> ab in Lab units.
    Scaling lives inside, so exported graphs (ONNX, TensorRT) take and give plain Lab and cannot be
    fed the wrong range. Without hints (or for a hint-less model) it is ``L -> ab``."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator
        s = generator.spec
        self.hints = bool(s.hints)
        self.l_scale, self.l_shift, self.ab_scale = float(s.l_scale), float(s.l_shift), float(s.ab_scale)
        self.ab_out = float(s.ab_scale) * float(s.ab_gain)  # the served chroma gain (spec.ab_gain) rides on the output scale

    def forward(self, L: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        x = L / self.l_scale - self.l_shift
        if not self.hints:
            return self.generator(x) * self.ab_out
        if hints is not None:
            hints = scale_hints(hints, self.generator.spec)
        return self.generator(x, hints) * self.ab_out


class LabScene(nn.Module):
    """The scene graph of a model whose encoder has one (``has_scene``): L in [0, 100] (N, 1, H, W) -> what the
    encoder makes of the whole picture (N, C) and of its parts (N, C', H/8, W/8), ``generator.scene``
    (runtime/model/effnet_unet.py)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        if not has_scene(generator):
            raise ValueError("this generator has no scene features (they need an efficientnet-lite encoder)")
        self.generator = generator
        self.l_scale, self.l_shift = float(generator.spec.l_scale), float(generator.spec.l_shift)

    def forward(self, L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.generator.scene(L / self.l_scale - self.l_shift)


def has_scene(generator: nn.Module) -> bool:
    """Whether the generator describes whole pictures (the pretrained encoder's pooled features; not the plain U-Net)."""
    return callable(getattr(generator, "scene", None))


def init_weights(module: nn.Module) -> None:
    """pix2pix init: conv/linear weights N(0, 0.02), norm weights N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# -- inference preparation (shared by the torch-CUDA backend and the FP16 ONNX export) -----------

def fold_batchnorm(module):
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d / ConvTranspose2d in an
    nn.Sequential, or that a module names in its ``BN_PAIRS`` ((conv attribute, BN attribute), as
    runtime/model/efficientnet.py does), into that conv (in place); the BN becomes an Identity.
    Returns the count folded."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for m in list(module.modules()):
        for conv_name, bn_name in getattr(m, "BN_PAIRS", ()):
            conv, bn = getattr(m, conv_name, None), getattr(m, bn_name, None)
            if isinstance(bn, nn.BatchNorm2d) and isinstance(conv, nn.Conv2d) and bn.track_running_stats:
                setattr(m, conv_name, fuse_conv_bn_eval(conv.eval(), bn.eval()))
                setattr(m, bn_name, nn.Identity())
                folded += 1
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(bn, nn.BatchNorm2d) and isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and bn.track_running_stats:
                seq[i] = fuse_conv_bn_eval(conv.eval(), bn.eval(), transpose=isinstance(conv, nn.ConvTranspose2d))
                seq[i + 1] = nn.Identity()
                folded += 1
    return folded


class FP32Norm(nn.Module):
    """Runs a normalization layer in FP32 inside a half-precision network."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm.float()

    def forward(self, x):
        return self.norm(x.float()).to(x.dtype)

    def _apply(self, fn, recurse=True):
        # Keep the wrapped norm FP32 through model.half()/.to(dtype); still let .to(device) move it.
        super()._apply(fn, recurse)
        self.norm.float()
        return self


def prepare_generator(generator, dtype, channels_last: bool = True):
    """The generator ready for fast inference in ``dtype`` (a torch dtype): eval, BN folded,
    remaining norms FP32, channels_last. Modifies and returns ``generator``."""
    generator.eval()
    fold_batchnorm(generator)
    for seq in [m for m in generator.modules() if isinstance(m, nn.Sequential)]:
        for i, child in enumerate(seq):
            if isinstance(child, (nn.InstanceNorm2d, nn.BatchNorm2d, nn.GroupNorm)):
                seq[i] = FP32Norm(child)
    generator.to(dtype)
    if channels_last:
        generator.to(memory_format=torch.channels_last)
    return generator


