"""The model spec: one small frozen dataclass shared by trainer, exporter and runtime.

Everything needed to rebuild the generator and to feed it correctly lives here: architecture
(channels, depth, widths, fusion), the L/ab scaling, the size multiple and the ONNX I/O names.
It is saved as JSON beside every artifact (checkpoint, weights, ONNX metadata, engine sidecar),
so no artifact is ever ambiguous about what it holds.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

SPEC_VERSION = 5  # 2: encoder and hints fields; 3: hint_levels; 4: ab_head and its decoding; 5: the blend head (older specs load unchanged)
ENCODERS = ("unet", "efficientnet-lite0", "efficientnet-lite2")
HINT_CHANNELS = 3  # the hint input of a model with spec.hints: [a, b, mask]
AB_HEADS = ("regression", "distribution", "blend")


@dataclass(frozen=True)
class ModelSpec:
    """Architecture and I/O contract of a colorization generator.

    ``depth``, ``ngf``, ``max_mult``, ``fusion_level``, ``dropout*``, ``norm`` and ``upsample`` shape the
    ``unet`` encoder only; the ``efficientnet-lite0`` / ``-lite2`` generators have a fixed layout (size multiple 32) and
    uses ``fusion`` / ``fusion_dim``.

    The generator sees L scaled to [-1, 1] (``L / l_scale - l_shift``) and predicts ab in
    [-1, 1] (tanh), which the runtime multiplies by ``ab_scale``.
    """

    name: str = "colorize-gan"
    encoder: str = "unet"  # "unet": the paper's pix2pix U-Net | "efficientnet-lite0" / "-lite2": ImageNet-pretrained encoder (runtime/model/effnet_unet.py)
    hints: bool = False  # takes a second input: user colour hints [a, b, mask] (Zhang et al. 2017)
    hint_levels: bool = False  # the hints also enter every decoder level (masked-mean pooled), not only the stem and head
    depth: int = 6  # stride-2 down levels; H and W must be multiples of 2**depth
    ngf: int = 32  # width of the first encoder level
    max_mult: int = 4  # widths are ngf * min(2**i, max_mult)
    fusion: bool = True  # Iizuka et al. global feature fusion at the bottleneck
    fusion_dim: int = 256  # length of the global feature vector
    fusion_level: int = 3  # encoder level (1-based) the global branch reads from
    dropout: float = 0.5  # dropout in the innermost up blocks (training only)
    dropout_blocks: int = 3
    norm: str = "batch"  # "batch" | "instance" | "none"
    upsample: str = "convtranspose"  # "convtranspose" (pix2pix) | "resize" (bilinear + 3x3 conv)
    l_scale: float = 50.0  # L_in = L / l_scale - l_shift  -> [-1, 1]
    l_shift: float = 1.0
    ab_scale: float = 110.0  # ab = tanh_output * ab_scale
    # Served chroma gain: the served ab is the generator's times ab_gain (1.0 = as trained). Set at export by a calibration
    # on training photos (tools/calibrate_chroma.py): L1-trained colorizers are duller than the truth.
    ab_gain: float = 1.0
    # How the network gives ab (efficientnet-lite encoders only): "regression" = one ab per pixel (tanh), trained with L1;
    # "distribution" = a probability over quantised in-gamut ab bins per pixel at half resolution (Zhang et al. 2016),
    # trained with rebalanced cross-entropy and decoded in the graph (runtime/model/ab_distribution.py):
    # softmax((logits - ab_prior_alpha * log prior) / ab_temperature), its expectation, bilinear x2;
    # "blend" = the distribution's decoder and a second decoder with the regression head on one encoder, served as
    # ab_blend * the annealed mean + (1 - ab_blend) * ab_regression_gain * the regression: the distribution gives vivid
    # colour where it is sure, the L1 regression the median where it is not, and the two errors partly cancel.
    ab_head: str = "regression"
    ab_bin_size: float = 10.0  # distribution: bin spacing on the a and b axes (Lab units)
    ab_temperature: float = 0.38  # distribution: the annealed mean's temperature (1 = the mean, -> 0 the mode)
    ab_prior_alpha: float = 0.0  # distribution: decode-time prior correction: > 0 favours rare colours, < 0 common ones (0 = none)
    ab_blend: float = 0.5  # blend: the annealed mean's share of the served ab (the rest is the regression's)
    ab_regression_gain: float = 1.0  # blend: the regression's chroma gain inside the blend
    input_name: str = "L"
    hint_name: str = "hints"
    output_name: str = "ab"
    spec_version: int = SPEC_VERSION

    def __post_init__(self) -> None:
        if not 0 < self.ab_gain <= 4:
            raise ValueError(f"ab_gain must be in (0, 4], got {self.ab_gain}")
        if self.ab_head not in AB_HEADS:
            raise ValueError(f"unknown ab_head {self.ab_head!r} (expected one of {', '.join(AB_HEADS)})")
        if self.ab_head != "regression" and self.encoder == "unet":
            raise ValueError(f"ab_head {self.ab_head!r} needs an efficientnet-lite encoder")
        if not 0 <= self.ab_blend <= 1:
            raise ValueError(f"ab_blend must be in [0, 1], got {self.ab_blend}")
        if not 0 < self.ab_regression_gain <= 4:
            raise ValueError(f"ab_regression_gain must be in (0, 4], got {self.ab_regression_gain}")
        if not 0.01 <= self.ab_temperature <= 2:
            raise ValueError(f"ab_temperature must be in [0.01, 2], got {self.ab_temperature}")
        if not 2 <= self.ab_bin_size <= 40:
            raise ValueError(f"ab_bin_size must be in [2, 40], got {self.ab_bin_size}")
        if not -1 <= self.ab_prior_alpha <= 1:
            raise ValueError(f"ab_prior_alpha must be in [-1, 1], got {self.ab_prior_alpha}")
        if self.hint_levels and not self.hints:
            raise ValueError("hint_levels needs hints")
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r} (expected one of {', '.join(ENCODERS)})")
        if self.depth < 2 or self.depth > 9:
            raise ValueError(f"depth must be in [2, 9], got {self.depth}")
        if self.ngf < 4:
            raise ValueError(f"ngf must be >= 4, got {self.ngf}")
        if self.fusion and not 1 <= self.fusion_level <= self.depth:
            raise ValueError(f"fusion_level must be in [1, depth], got {self.fusion_level}")
        if self.norm not in ("batch", "instance", "none"):
            raise ValueError(f"unknown norm {self.norm!r}")
        if self.upsample not in ("convtranspose", "resize"):
            raise ValueError(f"unknown upsample {self.upsample!r}")

    @property
    def size_multiple(self) -> int:
        return 2**self.depth if self.encoder == "unet" else 32

    def width(self, level: int) -> int:
        """Channels of encoder level ``level`` (0-based)."""
        return self.ngf * min(2**level, self.max_mult)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        version = int(data.get("spec_version", SPEC_VERSION))
        if version > SPEC_VERSION:
            raise ValueError(f"model spec version {version} is newer than this runtime ({SPEC_VERSION}); upgrade colorize-gan")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model spec fields: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        return cls.from_dict(json.loads(text))
