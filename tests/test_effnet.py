"""The pretrained-encoder generator: EfficientNet-Lite0 definition, ImageNet weights, EffNetUNet with hint
inputs, the spec's encoder/hints fields, the batched Lab conversion and simulated hints of the trainer."""
from __future__ import annotations

import copy
import importlib.util
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from runtime.image import color  # noqa: E402
from runtime.model.efficientnet import EfficientNetLite, SamePadConv  # noqa: E402
from runtime.model.generator import LabColorizer, build_generator, fold_batchnorm  # noqa: E402
from runtime.model.spec import ModelSpec  # noqa: E402

SPEC = ModelSpec(encoder="efficientnet-lite0", hints=True, fusion_dim=16)


def randomize_bn(module):
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)


@pytest.mark.parametrize("k,stride,size,pad", [(3, 2, 64, (0, 1)), (5, 2, 64, (1, 2)), (3, 1, 30, (1, 1)), (5, 1, 30, (2, 2))])
def test_same_padding_is_tensorflows(k, stride, size, pad):
    conv = SamePadConv(1, 1, k, stride)
    assert conv.pad[:2] == pad
    out = conv(torch.zeros(1, 1, size, size))
    assert out.shape[-1] == -(-size // stride)  # TF SAME: ceil(n / stride)


@pytest.mark.parametrize("name,channels,blocks", [("efficientnet-lite0", (16, 24, 40, 112, 320), 16),
                                                   ("efficientnet-lite2", (16, 24, 48, 120, 352), 21)])
def test_encoder_pyramid_shapes(name, channels, blocks):
    enc = EfficientNetLite(name, in_channels=1, num_classes=0).eval()
    assert len(enc._blocks) == blocks
    skips, head = enc.features(enc.stem(torch.zeros(1, 1, 64, 96)))
    assert [s.shape[1] for s in skips] == list(channels)
    assert [tuple(s.shape[2:]) for s in skips] == [(32, 48), (16, 24), (8, 12), (4, 6), (2, 3)]
    assert head.shape[1:] == (1280, 2, 3)
    g = build_generator(ModelSpec(encoder=name, hints=True, hint_levels=True, fusion_dim=16)).eval()
    with torch.no_grad():
        assert g(torch.zeros(1, 1, 64, 96)).shape == (1, 2, 64, 96)


def test_one_channel_stem_equals_rgb_network_on_grey():
    """Summing the RGB stem over its inputs gives exactly the RGB network's output for R = G = B."""
    torch.manual_seed(0)
    rgb = EfficientNetLite("efficientnet-lite0", in_channels=3).eval()
    randomize_bn(rgb)
    state = rgb.state_dict()
    state["_conv_stem.weight"] = state["_conv_stem.weight"].sum(1, keepdim=True)
    grey = EfficientNetLite("efficientnet-lite0", in_channels=1).eval()
    grey.load_state_dict(state)
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    assert torch.allclose(rgb(x.repeat(1, 3, 1, 1)), grey(x), atol=1e-4)


@pytest.mark.parametrize("name", ["efficientnet-lite0", "efficientnet-lite2"])
def test_imagenet_weights_load_strictly_and_classify(name):
    from trainer.pretrained import PACKAGES, imagenet_state_dict, weights_path

    if importlib.util.find_spec(PACKAGES[name][0]) is None:
        pytest.skip(f"{PACKAGES[name][0]} (the train extra) is not installed")
    state = torch.load(weights_path(name), map_location="cpu", weights_only=True)
    net = EfficientNetLite(name).eval()
    net.load_state_dict(state, strict=True)  # every key and shape matches the package's file
    # A constant mid-grey image is not a class; what must hold is a confident, finite distribution and
    # identical answers from the 1-channel stem the generator uses.
    x = torch.full((1, 3, 224, 224), (0.5 * 255 - 127) / 128)
    with torch.no_grad():
        logits = net(x)
        g = EfficientNetLite(name, in_channels=1, num_classes=0).eval()
        g.load_state_dict(imagenet_state_dict(1, name))
        feats = g.features(g.stem(x[:, :1]))[1].mean((2, 3))
        assert torch.allclose(net._fc(feats), logits, atol=1e-4)
    assert torch.isfinite(logits).all() and logits.shape == (1, 1000)


def test_generator_shapes_and_zero_initialised_hint_branch():
    g = build_generator(SPEC).eval()
    x = torch.rand(2, 1, 64, 96) * 2 - 1
    y = g(x)
    assert y.shape == (2, 2, 64, 96) and y.abs().max() <= 1
    h = torch.zeros(2, 3, 64, 96)
    h[:, :2, 10:14, 10:14] = 0.5
    h[:, 2, 10:14, 10:14] = 1
    # Fresh weights: the stem's hint branch is zero, so only the full-resolution head sees the hints.
    assert torch.equal(g.hint_in.weight, torch.zeros_like(g.hint_in.weight))
    assert torch.equal(g(x), g(x, torch.zeros(2, 3, 64, 96)))
    with pytest.raises(RuntimeError):
        g(torch.zeros(1, 1, 48, 40))  # not multiples of 32


def test_hint_levels_pool_per_cell_and_start_as_the_model_without_them():
    from runtime.model.effnet_unet import pool_hints

    h = torch.zeros(1, 3, 64, 64)
    h[0, :, 3, 5] = torch.tensor([0.5, -0.25, 1.0])  # one dot in cell (0, 0) of a 32-px grid
    h[0, :, 40:42, 40:42] = torch.tensor([-0.4, 0.2, 1.0])[:, None, None]  # a 2x2 dot in cell (1, 1)
    p = pool_hints(h, 32)
    assert p.shape == (1, 3, 2, 2)
    assert torch.allclose(p[0, :, 0, 0], torch.tensor([0.5, -0.25, 1.0]))
    assert torch.allclose(p[0, :, 1, 1], torch.tensor([-0.4, 0.2, 1.0]))
    assert torch.equal(p[0, :, 0, 1], torch.zeros(3)) and torch.equal(p[0, :, 1, 0], torch.zeros(3))
    # --hint-levels on a fine-tune: the new convs are zero, so the network starts exactly as the one it came from.
    torch.manual_seed(2)
    base = build_generator(SPEC).eval()
    randomize_bn(base)
    with torch.no_grad():
        base.hint_in.weight.normal_(0, 0.2)
    levels = build_generator(ModelSpec(**{**SPEC.to_dict(), "hint_levels": True})).eval()
    missing, unexpected = levels.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("hint_levels.") for k in missing)
    x = torch.rand(1, 1, 64, 64) * 2 - 1
    assert torch.equal(levels(x, h), base(x, h))
    with torch.no_grad():
        levels.hint_levels[0].weight.normal_(0, 0.5)
    assert not torch.allclose(levels(x, h), base(x, h))
    with pytest.raises(ValueError, match="hint_levels needs hints"):
        ModelSpec(encoder="efficientnet-lite0", hint_levels=True)


def test_hints_are_scaled_by_the_served_gain():
    from runtime.model.generator import scale_hints

    h = torch.tensor([[[[44.0]], [[-22.0]], [[1.0]]]])
    s = scale_hints(h, ModelSpec(ab_scale=110.0, ab_gain=1.1))
    assert torch.allclose(s.flatten(), torch.tensor([44 / 121, -22 / 121, 1.0]))


def test_encoder_batchnorm_stays_frozen_in_training():
    g = build_generator(SPEC)
    g.train()
    enc_bn = [m for m in g.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    dec_bn = [m for m in g.up.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert enc_bn and all(not m.training for m in enc_bn)
    assert dec_bn and all(m.training for m in dec_bn)
    before = enc_bn[0].running_mean.clone()
    g(torch.rand(2, 1, 64, 64))
    assert torch.equal(before, enc_bn[0].running_mean)


def test_fold_batchnorm_covers_the_encoder():
    torch.manual_seed(1)
    g = build_generator(SPEC).eval()
    randomize_bn(g)
    with torch.no_grad():
        g.hint_in.weight.normal_(0, 0.2)
    x = torch.rand(1, 1, 64, 64) * 100
    h = torch.zeros(1, 3, 64, 64)
    h[:, :2, 5:9, 5:9] = 40.0
    h[:, 2, 5:9, 5:9] = 1
    ref = LabColorizer(g)(x, h)
    folded = copy.deepcopy(g)
    n = fold_batchnorm(folded)
    assert n >= 50 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert torch.allclose(LabColorizer(folded)(x, h), ref, atol=1e-3)


def test_spec_encoder_and_hints_fields():
    assert ModelSpec(encoder="efficientnet-lite0").size_multiple == 32
    assert ModelSpec(depth=5).size_multiple == 32 and ModelSpec(depth=6).size_multiple == 64
    with pytest.raises(ValueError, match="unknown encoder"):
        ModelSpec(encoder="resnet")
    with pytest.raises(ValueError, match="hint inputs need"):
        build_generator(ModelSpec(hints=True))
    # A version-1 spec (before these fields) loads as a hint-less U-Net.
    old = json.loads(ModelSpec().to_json())
    for k in ("encoder", "hints", "hint_name"):
        del old[k]
    old["spec_version"] = 1
    s = ModelSpec.from_dict(old)
    assert s.encoder == "unet" and s.hints is False
    with pytest.raises(ValueError, match="newer than this runtime"):
        ModelSpec.from_dict({**old, "spec_version": 99})


def test_batched_lab_matches_runtime_colour_science():
    from trainer.labtorch import batch_to_network, rgb8_to_lab

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 3, 17, 23), dtype=np.uint8)
    ref = color.rgb_to_lab(rgb.transpose(0, 2, 3, 1).astype(np.float32) / 255)
    got = rgb8_to_lab(torch.from_numpy(rgb)).numpy().transpose(0, 2, 3, 1)
    assert np.abs(got - ref).max() < 2e-3
    L, ab = batch_to_network(torch.from_numpy(rgb))
    assert L.shape == (3, 1, 17, 23) and ab.shape == (3, 2, 17, 23)
    assert np.allclose(L.numpy()[:, 0], color.l_to_input(ref[..., 0]), atol=1e-4)
    assert np.allclose(ab.numpy(), color.ab_to_target(ref[..., 1:]).transpose(0, 3, 1, 2), atol=1e-4)


def test_simulated_hints_are_patch_means_of_the_truth():
    from trainer.hints import sample_hints

    ab = torch.rand(64, 2, 32, 32) * 2 - 1
    none = sample_hints(ab, p_none=1.0)
    assert torch.count_nonzero(none) == 0
    g1 = sample_hints(ab, p_none=0.5, generator=torch.Generator().manual_seed(3))
    g2 = sample_hints(ab, p_none=0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(g1, g2)
    has = g1[:, 2].flatten(1).amax(1) > 0
    assert 10 < int(has.sum()) < 54  # about half of the samples have hints
    assert set(torch.unique(g1[:, 2]).tolist()) <= {0.0, 1.0}
    assert torch.count_nonzero(g1[:, :2] * (1 - g1[:, 2:3])) == 0  # colour only under the mask
    # A 1-pixel patch carries the truth's exact ab; overlapping patches may overwrite, so check one isolated case.
    one = sample_hints(ab[:1], p_none=0.0, p_geom=1.0, sizes=(1,), generator=torch.Generator().manual_seed(0))
    ys, xs = torch.nonzero(one[0, 2], as_tuple=True)
    assert len(ys) == 1 and torch.allclose(one[0, :2, ys[0], xs[0]], ab[0, :, ys[0], xs[0]])
