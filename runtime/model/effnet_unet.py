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
          with "blend": the distribution's decoder and a second decoder (regression_decoder: fusion, up blocks, hint
          levels and the regression head) on the one encoder, their two ab mixed in the graph by spec.ab_blend and
          spec.ab_regression_gain)

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
    # Module names (e.g. ("regression_decoder",)) the trainer's --train-only trains; every other module stays in eval mode in
    # training too (its BatchNorm statistics and dropout as served). None: all train.
    trainable: tuple[str, ...] | None = None

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        self.encoder = EfficientNetLite(spec.encoder, in_channels=1, num_classes=0)
        self.hint_in = nn.Conv2d(HINT_CHANNELS, STEM_CHANNELS, 3, 2, 1) if spec.hints else None
        first = self._decoder(spec)
        for name in ("global_mlp", "fuse", "up", "hint_levels"):  # the first decoder's modules (names predate blends)
            setattr(self, name, first.get(name))
        self.distribution = DistributionHead(DECODER_WIDTHS[-1], spec) if spec.ab_head != "regression" else None
        self.head = self._regression_head(spec) if spec.ab_head == "regression" else None
        # A blend: a second decoder on the same encoder, with the regression head (different features from a different
        # loss: what the two get wrong differs more than for two heads on one decoder, so their mix gains).
        self.regression_decoder = (nn.ModuleDict({**self._decoder(spec), "head": self._regression_head(spec)})
                                   if spec.ab_head == "blend" else None)
        self.reset_parameters()

    def _decoder(self, spec: ModelSpec) -> dict[str, nn.Module]:
        skip_channels = self.encoder.skip_channels
        bottleneck, w0 = skip_channels[-1], DECODER_WIDTHS[0]
        parts: dict[str, nn.Module] = {}
        if spec.fusion:
            parts["global_mlp"] = nn.Sequential(nn.Linear(HEAD_CHANNELS, spec.fusion_dim), nn.ReLU(inplace=True))
        parts["fuse"] = nn.Sequential(nn.Conv2d(bottleneck + (spec.fusion_dim if spec.fusion else 0), w0, 1, bias=False),
                                      nn.BatchNorm2d(w0), nn.ReLU(inplace=True))
        skips = skip_channels[-2::-1]  # 112, 40, 24, 16 (Lite0)
        parts["up"] = nn.ModuleList(UpBlock(DECODER_WIDTHS[i], skips[i], DECODER_WIDTHS[i + 1]) for i in range(len(skips)))
        if spec.hints and spec.hint_levels:
            parts["hint_levels"] = nn.ModuleList(nn.Conv2d(HINT_CHANNELS, w, 1) for w in DECODER_WIDTHS)
        return parts

    @staticmethod
    def _regression_head(spec: ModelSpec) -> nn.Module:
        extra = 1 + (HINT_CHANNELS if spec.hints else 0)
        return nn.Sequential(conv_bn_relu(DECODER_WIDTHS[-1] + extra, HEAD_WIDTH), nn.Conv2d(HEAD_WIDTH, 2, 3, 1, 1), nn.Tanh())

    def decoders(self) -> list[nn.Module]:
        """The modules holding a decoder's parts (global_mlp, fuse, up, hint_levels, head): the model, and a blend's second."""
        return [self] if self.regression_decoder is None else [self, self.regression_decoder]

    def reset_parameters(self) -> None:
        for d in self.decoders():
            for part in ("up", "fuse", "head", "global_mlp"):
                for m in (getattr(d, part, None) or nn.Identity()).modules():
                    if isinstance(m, (nn.Conv2d, nn.Linear)):
                        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                        if m.bias is not None:
                            nn.init.zeros_(m.bias)
            head = getattr(d, "head", None)
            if head is not None:
                nn.init.normal_(head[1].weight, 0.0, 1e-3)  # start near ab = 0 (grey), the L1 optimum of knowing nothing
                nn.init.zeros_(head[1].bias)
            for conv in getattr(d, "hint_levels", None) or ():  # no effect until trained: a model fine-tuned from one
                nn.init.zeros_(conv.weight)                      # without them starts unchanged
                nn.init.zeros_(conv.bias)
        if self.hint_in is not None:  # likewise: the pretrained encoder starts exactly as on ImageNet
            nn.init.zeros_(self.hint_in.weight)
            nn.init.zeros_(self.hint_in.bias)

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

    @staticmethod
    def add_hints(decoder: nn.Module, y: torch.Tensor, hints: torch.Tensor | None, level: int, stride: int) -> torch.Tensor:
        levels = getattr(decoder, "hint_levels", None)
        return y if levels is None else y + levels[level](pool_hints(hints, stride))

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

    def decoder_features(self, x: torch.Tensor, hints: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """The last level (N, 32, H/2, W/2) of each decoder (a blend has 2) on one encoder pass, and the hints as the
        network saw them (zeros when none)."""
        if self.hint_in is not None and hints is None:
            hints = x.new_zeros(x.shape[0], HINT_CHANNELS, x.shape[2], x.shape[3])
        skips, head = self.encoder.features(self._stem(x, hints))
        pooled = head.mean(dim=(2, 3))
        out = []
        for d in self.decoders():
            y = skips[-1]
            mlp = getattr(d, "global_mlp", None)
            if mlp is not None:
                g = mlp(pooled)
                y = torch.cat([y, g[:, :, None, None].expand(-1, -1, y.shape[2], y.shape[3])], 1)
            y = d.fuse(y)
            stride = 32
            y = self.add_hints(d, y, hints, 0, stride)
            for i, (block, skip) in enumerate(zip(d.up, skips[-2::-1])):
                y = block(y, skip)
                stride //= 2
                y = self.add_hints(d, y, hints, i + 1, stride)
            out.append(y)
        return out, hints

    def _regress(self, head: nn.Module, y: torch.Tensor, x: torch.Tensor, hints: torch.Tensor | None) -> torch.Tensor:
        up = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
        extra = [x, hints] if self.hint_in is not None else [x]
        return head(torch.cat([up, *extra], 1))

    def forward(self, x: torch.Tensor, hints: torch.Tensor | None = None,
                return_logits: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The served ab (normalized; the regression's in [-1, 1]). ``return_logits`` (training): a distribution
        head's logits (N, Q, H/2, W/2) instead, and for a blend the pair (logits, its regression's ab)."""
        ys, hints = self.decoder_features(x, hints)
        y = ys[0]
        if self.distribution is None:
            return self._regress(self.head, y, x, hints)
        if return_logits:  # training: the head in float32 even under autocast (a low temperature magnifies its errors)
            with torch.autocast(y.device.type, enabled=False):
                logits = self.distribution(y)
        annealed = None if return_logits else self.distribution.serve(y, self.spec)  # float32 even in an FP16 graph
        if self.regression_decoder is None:
            return logits if return_logits else annealed
        regression = self._regress(self.regression_decoder.head, ys[1], x, hints)
        return (logits, regression) if return_logits else self.blend(annealed, regression)

    def blend(self, annealed: torch.Tensor, regression: torch.Tensor) -> torch.Tensor:
        """A blend's served ab from its two parts (float32), at the spec's mix."""
        return mix(annealed, regression, self.spec.ab_blend, self.spec.ab_regression_gain)


def mix(annealed: torch.Tensor, regression: torch.Tensor, share: float, gain: float) -> torch.Tensor:
    """``share`` x the annealed mean + (1 - ``share``) x ``gain`` x the regression, in float32 (tools/decode_sweep.py
    tries other mixes of the same parts)."""
    return share * annealed + ((1.0 - share) * gain) * regression.float()
