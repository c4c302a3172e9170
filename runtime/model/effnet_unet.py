"""The generator with a pretrained encoder: EfficientNet-Lite0 under a U-Net decoder, Iizuka fusion
from the classifier's pooled features, and optional colour-hint inputs (Zhang et al. 2017).

Layout (H, W multiples of 32):

    L (N,1,H,W) in [-1,1] -> as the ImageNet weights expect a grey photo ((v*255-127)/128, v = L/100)
      -> stem (1-channel: the pretrained RGB stem summed over its inputs, exact for R=G=B)
         (+ hint branch: 3x3 stride-2 conv of [a, b, mask], zero-initialised, added before the ReLU6)
      -> EfficientNet-Lite0 blocks: skips 16@H/2, 24@H/4, 40@H/8, 112@H/16, 320@H/32; head 1280@H/32
      -> fusion: the head pooled over the image (the classifier's global feature) -> MLP -> broadcast,
         concatenated with the 320@H/32 map, mixed by a 1x1 conv
      -> decoder: per level bilinear x2 upsampling + concat skip + two 3x3 conv/BN/ReLU
         (resize-convolutions: no checkerboard), widths 256, 128, 64, 48, 32
         (+ with ``spec.hint_levels``: the hints pooled to each level's grid (masked mean colour of the cell and
            whether the cell holds a hint) through a zero-initialised 1x1 conv, added to that level's features,
            so a dot reaches the coarse levels that spread colour over whole objects)
      -> full resolution: concat [L, hints], 3x3 conv/BN/ReLU, 3x3 conv -> tanh -> ab in [-1, 1]
         (or, with ``spec.ab_head == "distribution"``: at H/2 a 1x1 conv to logits over the in-gamut ab bins,
          decoded to ab in the graph (the annealed mean, runtime/model/ab_distribution.py), bilinear x2;
          with "blend": both heads, their two ab mixed in the graph by spec.ab_blend and spec.ab_regression_gain)

Hints (when ``spec.hints``): (N,3,H,W) = [a / ab_scale, b / ab_scale, mask]; zeros = no hints, which is
what the network sees for the automatic result. The encoder's BatchNorm statistics stay frozen in
training (``freeze_encoder_bn``): small CPU batches would only blur the ImageNet statistics.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .ab_distribution import DistributionHead
from .efficientnet import HEAD_CHANNELS, STEM_CHANNELS, EfficientNetLite
from .spec import HINT_CHANNELS, ModelSpec

DECODER_WIDTHS = (256, 128, 64, 48, 32)  # at H/32, H/16, H/8, H/4, H/2
HEAD_WIDTH = 16  # full resolution
SCENE_PARTS_LEVEL = 2  # the encoder level the scene graph's ``parts`` come from: 40 channels at H/8


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UpBlock(nn.Module):
    def __init__(self, cin: int, skip: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(conv_bn_relu(cin + skip, cout), conv_bn_relu(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], 1))


def pool_hints(hints: torch.Tensor, stride: int) -> torch.Tensor:
    """Hints (N,3,H,W) -> (N,3,H/stride,W/stride): per cell the mask-weighted mean [a, b] of the hints in it
    and 1 where the cell holds any hint (0 elsewhere). Plain arithmetic (no comparisons): exports as is."""
    mask = hints[:, 2:3]
    den = F.avg_pool2d(mask, stride)
    safe = den.clamp_min(1e-6)
    present = den / safe  # 1 where den > 0 (den >= 1/stride^2 for a one-pixel dot), else 0
    ab = F.avg_pool2d(hints[:, :2] * mask, stride) / safe
    return torch.cat([ab, present], 1)


class EffNetUNet(nn.Module):
    """Normalized L (N,1,H,W) [+ hints (N,3,H,W)] -> normalized ab (N,2,H,W) in [-1, 1]."""

    freeze_encoder_bn = True
    # Module names (e.g. ("head",)) the trainer's --train-only trains; every other module stays in eval mode in
    # training too (its BatchNorm statistics and dropout as served). None: all train.
    trainable: tuple[str, ...] | None = None

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        self.encoder = EfficientNetLite(spec.encoder, in_channels=1, num_classes=0)
        skip_channels = self.encoder.skip_channels
        self.hint_in = nn.Conv2d(HINT_CHANNELS, STEM_CHANNELS, 3, 2, 1) if spec.hints else None
        bottleneck = skip_channels[-1]
        w0 = DECODER_WIDTHS[0]
        if spec.fusion:
            self.global_mlp = nn.Sequential(nn.Linear(HEAD_CHANNELS, spec.fusion_dim), nn.ReLU(inplace=True))
            self.fuse = nn.Sequential(nn.Conv2d(bottleneck + spec.fusion_dim, w0, 1, bias=False), nn.BatchNorm2d(w0), nn.ReLU(inplace=True))
        else:
            self.global_mlp = None
            self.fuse = nn.Sequential(nn.Conv2d(bottleneck, w0, 1, bias=False), nn.BatchNorm2d(w0), nn.ReLU(inplace=True))
        skips = skip_channels[-2::-1]  # 112, 40, 24, 16 (Lite0)
        self.up = nn.ModuleList(UpBlock(DECODER_WIDTHS[i], skips[i], DECODER_WIDTHS[i + 1]) for i in range(len(skips)))
        extra = 1 + (HINT_CHANNELS if spec.hints else 0)
        self.hint_levels = (nn.ModuleList(nn.Conv2d(HINT_CHANNELS, w, 1) for w in DECODER_WIDTHS)
                            if spec.hints and spec.hint_levels else None)
        self.distribution = DistributionHead(DECODER_WIDTHS[-1], spec) if spec.ab_head != "regression" else None
        self.head = (nn.Sequential(conv_bn_relu(DECODER_WIDTHS[-1] + extra, HEAD_WIDTH), nn.Conv2d(HEAD_WIDTH, 2, 3, 1, 1), nn.Tanh())
                     if spec.ab_head != "distribution" else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in [*self.up.modules(), *self.fuse.modules(), *(self.head.modules() if self.head is not None else []),
                  *(self.global_mlp.modules() if self.global_mlp is not None else [])]:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.head is not None:
            last = self.head[1]
            nn.init.normal_(last.weight, 0.0, 1e-3)  # start near ab = 0 (grey), the L1 optimum of knowing nothing
            nn.init.zeros_(last.bias)
        if self.hint_in is not None:  # no effect until trained: the pretrained encoder starts exactly as on ImageNet
            nn.init.zeros_(self.hint_in.weight)
            nn.init.zeros_(self.hint_in.bias)
        for conv in self.hint_levels or ():  # likewise: a model fine-tuned from one without them starts unchanged
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def train(self, mode: bool = True) -> "EffNetUNet":
        super().train(mode)
        if mode and self.freeze_encoder_bn:
            for m in self.encoder.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        if mode and self.trainable is not None:
            for name, m in self.named_modules():
                if not any(True for _ in m.children()) and not any(name == t or name.startswith(t + ".") for t in self.trainable):
                    m.eval()
        return self

    def add_hints(self, y: torch.Tensor, hints: torch.Tensor | None, level: int, stride: int) -> torch.Tensor:
        if self.hint_levels is None:
            return y
        return y + self.hint_levels[level](pool_hints(hints, stride))

    def _stem(self, x: torch.Tensor, hints: torch.Tensor | None) -> torch.Tensor:
        # L in [-1, 1] -> v = L/100 in [0, 1] -> (v*255 - 127)/128, the weights' input scaling.
        stem = self.encoder.stem((x + 1.0) * (127.5 / 128.0) - (127.0 / 128.0))
        return stem if self.hint_in is None or hints is None else stem + self.hint_in(hints)

    def scene(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the encoder sees, no hints: (the whole picture (N, 1280): its head pooled over the image, the
        classifier's global feature, which the fusion branch also starts from; its parts (N, 40, H/8, W/8): the
        features at 1/8 scale). The reference matcher compares a picture's with a reference's: the first to judge
        whether they show the same kind of scene, the second to find which part is which (runtime/image/reference.py)."""
        hints = None if self.hint_in is None else x.new_zeros(x.shape[0], HINT_CHANNELS, x.shape[2], x.shape[3])
        skips, head = self.encoder.features(self._stem(x, hints))
        return head.mean(dim=(2, 3)), skips[SCENE_PARTS_LEVEL]

    def decoder_features(self, x: torch.Tensor, hints: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The decoder's last level (N, 32, H/2, W/2) and the hints as the network saw them (zeros when none)."""
        if self.hint_in is not None and hints is None:
            hints = x.new_zeros(x.shape[0], HINT_CHANNELS, x.shape[2], x.shape[3])
        skips, head = self.encoder.features(self._stem(x, hints))
        y = skips[-1]
        if self.global_mlp is not None:
            g = self.global_mlp(head.mean(dim=(2, 3)))
            y = torch.cat([y, g[:, :, None, None].expand(-1, -1, y.shape[2], y.shape[3])], 1)
        y = self.fuse(y)
        stride = 32
        y = self.add_hints(y, hints, 0, stride)
        for i, (block, skip) in enumerate(zip(self.up, skips[-2::-1])):
            y = block(y, skip)
            stride //= 2
            y = self.add_hints(y, hints, i + 1, stride)
        return y, hints

    def forward(self, x: torch.Tensor, hints: torch.Tensor | None = None,
                return_logits: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The served ab (normalized; the regression's in [-1, 1]). ``return_logits`` (training): a distribution
        head's logits (N, Q, H/2, W/2) instead, and for a blend head the pair (logits, the regression's ab)."""
        y, hints = self.decoder_features(x, hints)
        logits = None
        if self.distribution is not None:
            if return_logits:  # training: the head in float32 even under autocast (a low temperature magnifies its errors)
                with torch.autocast(y.device.type, enabled=False):
                    logits = self.distribution(y)
                if self.head is None:
                    return logits
            elif self.head is None:
                return self.distribution.serve(y, self.spec)  # float32 even in an FP16 graph
        up = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
        extra = [x, hints] if self.hint_in is not None else [x]
        regression = self.head(torch.cat([up, *extra], 1))
        if self.distribution is None:
            return regression
        if return_logits:
            return logits, regression
        return self.blend(self.distribution.serve(y, self.spec), regression)

    def blend(self, annealed: torch.Tensor, regression: torch.Tensor) -> torch.Tensor:
        """A blend head's served ab from its two parts (float32)."""
        s = self.spec
        return s.ab_blend * annealed + ((1.0 - s.ab_blend) * s.ab_regression_gain) * regression.float()
