"""Shared fixtures: a tiny random-weight model bundle (JSON + safetensors + FP32/FP16 ONNX), built
once per session with the real exporter, and small synthetic images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.model.spec import ModelSpec

# Depth 4 (size multiple 16), a few thousand parameters: exports in seconds, runs in milliseconds.
TINY_SPEC = ModelSpec(name="tiny-test", depth=4, ngf=8, max_mult=2, fusion_dim=16, fusion_level=2, dropout=0.0)


def make_checkpoint(path: Path, spec: ModelSpec = TINY_SPEC, seed: int = 0) -> Path:
    """A trainer-style checkpoint dir (spec.json + generator.safetensors) with random weights. The
    init is scaled up so the tiny net outputs visible, varied colour (pix2pix's N(0, 0.02) init
    gives ab ~ 0, which would make colour tests vacuous)."""
    import torch

    from runtime.model.generator import UNetGenerator

    torch.manual_seed(seed)
    gen = UNetGenerator(spec)
    with torch.no_grad():
        for name, p in gen.named_parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.15)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.1)
        spread_bn_statistics(gen)
    return save_checkpoint(path, gen)


def spread_bn_statistics(gen) -> None:
    """Random BatchNorm running statistics, so that eval mode (and BN folding) is exercised for real."""
    import torch

    for m in gen.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)


def save_checkpoint(path: Path, gen) -> Path:
    """A trainer-style checkpoint dir: spec.json + generator.safetensors of ``gen``."""
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    (path / "spec.json").write_text(gen.spec.to_json(), encoding="utf-8")
    save_file({k: v.contiguous() for k, v in gen.state_dict().items()}, str(path / "generator.safetensors"))
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


def export_test_bundle(folder: Path, checkpoint: Path, stem: str) -> Path:
    """Export ``checkpoint`` with the real exporter into ``folder``/``stem``.*; returns the bundle's JSON path."""
    from trainer.export_onnx import export_bundle

    out = folder / stem
    export_bundle(checkpoint, out, weights_dtype="float32", render_size=128)
    return out.with_suffix(".json")


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_checkpoint) -> Path:
    """Path of the bundle's JSON (stem 'tiny'); .onnx, _fp16.onnx and .safetensors lie beside it."""
    return export_test_bundle(tmp_path_factory.mktemp("bundle"), tiny_checkpoint, "tiny")


@pytest.fixture
def grey_image() -> np.ndarray:
    """A 8-bit grey test picture (gradients + discs) of a size that is no multiple of anything."""
    rng = np.random.default_rng(1)
    h, w = 123, 187
    yy, xx = np.mgrid[0:h, 0:w]
    img = (xx * 255 // w + 20 * np.sin(yy / 7)).astype(np.float32)
    img[(yy - 60) ** 2 + (xx - 90) ** 2 < 900] = 230
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


# The pretrained-encoder generator with hint inputs, random weights (export and parity tests, hint plumbing).
HINT_SPEC = ModelSpec(name="tiny-hints", encoder="efficientnet-lite0", hints=True, hint_levels=True, fusion_dim=16)


def random_hint_generator(spec: ModelSpec = HINT_SPEC, seed: int = 0):
    """The efficientnet-lite0 generator with hint inputs and random weights, in eval mode: BN statistics spread, and
    the hint branch (zero-initialised for training) and the last conv widened so hints visibly change the output."""
    import torch

    from runtime.model.generator import build_generator

    torch.manual_seed(seed)
    gen = build_generator(spec)
    with torch.no_grad():
        spread_bn_statistics(gen)
        gen.hint_in.weight.normal_(0.0, 0.5)
        for conv in gen.hint_levels or ():
            conv.weight.normal_(0.0, 0.5)
        gen.head[1].weight.normal_(0.0, 0.05)
    return gen.eval()


def make_hint_checkpoint(path: Path, spec: ModelSpec = HINT_SPEC, seed: int = 0) -> Path:
    """As make_checkpoint, for the efficientnet-lite0 generator with hint inputs (random_hint_generator)."""
    return save_checkpoint(path, random_hint_generator(spec, seed))


@pytest.fixture(scope="session")
def hint_checkpoint(tmp_path_factory) -> Path:
    return make_hint_checkpoint(tmp_path_factory.mktemp("hckpt") / "hints")


@pytest.fixture(scope="session")
def hint_bundle(tmp_path_factory, hint_checkpoint) -> Path:
    """JSON path of an exported efficientnet-lite0 + hints bundle (random weights)."""
    return export_test_bundle(tmp_path_factory.mktemp("hbundle"), hint_checkpoint, "hints")
