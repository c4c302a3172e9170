"""Self-describing, resumable checkpoints with nothing that runs code on load (no pickle).

A checkpoint is a directory:
    spec.json                  the ModelSpec (rebuilds the generator without the training script)
    generator.safetensors      unwrapped state dict (no ``module.`` / ``_orig_mod.`` prefixes)
    generator_ema.safetensors  the weights' moving average (only with ``--ema``); inference prefers it
    discriminator.safetensors
    optimizer.safetensors      every tensor of both optimizers' states and the RNG state
    state.json                 step, epoch, phase, the training arguments, optimizer param groups
It is written to a temporary sibling and renamed, so a crash never leaves half a checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from runtime.model.generator import build_generator
from runtime.model.bundle import CHECKPOINT_WEIGHTS, checkpoint_weights
from runtime.model.spec import ModelSpec

LATEST = "latest"


def unwrap(module: nn.Module) -> nn.Module:
    """Strip DDP (``.module``) and torch.compile (``._orig_mod``) wrappers."""
    while True:
        if hasattr(module, "_orig_mod"):
            module = module._orig_mod
        elif isinstance(module, nn.parallel.DistributedDataParallel):
            module = module.module
        else:
            return module


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in unwrap(module).state_dict().items()}


def _flatten_optimizer(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, entry in sd["state"].items():
        for key, value in entry.items():
            name = f"{prefix}.{idx}.{key}"
            if torch.is_tensor(value):
                tensors[name] = value.detach().cpu().contiguous()
            else:
                scalars[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(prefix: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    items = [(k, v) for k, v in tensors.items() if k.startswith(prefix + ".")] + list(meta["scalars"].items())
    for name, value in items:
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save(path: str | Path, spec: ModelSpec, generator: nn.Module, discriminator: nn.Module | None,
         opt_g: torch.optim.Optimizer | None, opt_d: torch.optim.Optimizer | None, state: dict[str, Any],
         ema: nn.Module | None = None) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "spec.json").write_text(spec.to_json())
    save_file(_state(generator), str(tmp / "generator.safetensors"), metadata={"spec": spec.to_json()})
    if ema is not None:
        save_file(_state(ema), str(tmp / "generator_ema.safetensors"), metadata={"spec": spec.to_json()})
    if discriminator is not None:
        save_file(_state(discriminator), str(tmp / "discriminator.safetensors"))
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    meta: dict[str, Any] = {}
    for prefix, opt in (("opt_g", opt_g), ("opt_d", opt_d)):
        if opt is not None:
            t, m = _flatten_optimizer(prefix, opt)
            tensors.update(t)
            meta[prefix] = m
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({**state, "optimizers": meta}, indent=2, default=str))
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def write_latest(run_dir: Path, ckpt: Path) -> None:
    tmp = run_dir / (LATEST + ".tmp")
    tmp.write_text(ckpt.name + "\n")
    os.replace(tmp, run_dir / LATEST)


def resolve(path: str | Path) -> Path:
    """A checkpoint dir, or a run dir (its ``latest`` checkpoint)."""
    path = Path(path)
    if (path / "spec.json").is_file():
        return path
    if (path / LATEST).is_file():
        return path / "checkpoints" / (path / LATEST).read_text().strip()
    raise FileNotFoundError(f"{path}: neither a checkpoint (no spec.json) nor a run folder (no '{LATEST}' file)")


def load_spec(path: str | Path) -> ModelSpec:
    return ModelSpec.from_json((resolve(path) / "spec.json").read_text())


def init_source(path: str | Path) -> tuple[ModelSpec, Path, Path | None]:
    """What ``--init`` starts from: a checkpoint or run folder, or a model bundle (e.g. the embedded default's
    ``runtime/model/weights/default.json``, whose weights are float16 safetensors) -> (spec, weights, checkpoint
    folder or None)."""
    try:
        folder = resolve(path)
    except FileNotFoundError:
        from runtime.model.bundle import ModelError
        from runtime.model.bundle import resolve as resolve_bundle

        try:
            files = resolve_bundle(path)
        except ModelError as exc:
            raise FileNotFoundError(str(exc)) from None
        if files.weights is None:
            raise FileNotFoundError(f"{path}: the bundle has no .safetensors weights to start from") from None
        return files.spec, Path(files.weights), None
    return load_spec(folder), inference_weights(folder), folder


def inference_weights(path: str | Path) -> Path:
    """The weights to colorize with: the EMA copy when the checkpoint has one, else the trained weights."""
    path = resolve(path)
    weights = checkpoint_weights(path)
    if weights is not None:
        return weights
    raise FileNotFoundError(f"{path}: no {' or '.join(CHECKPOINT_WEIGHTS)}")


def load_generator(path: str | Path, device: str | torch.device = "cpu", ema: bool = True) -> nn.Module:
    """Rebuild the generator from a checkpoint alone (eval mode); ``ema`` prefers the moving average."""
    path = resolve(path)
    g = build_generator(load_spec(path))
    weights = inference_weights(path) if ema else path / "generator.safetensors"
    g.load_state_dict(load_file(str(weights), device=str(device)))
    return g.to(device).eval()


def load_training_state(path: str | Path, generator: nn.Module, discriminator: nn.Module,
                        opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, device: torch.device,
                        ema: nn.Module | None = None) -> dict[str, Any]:
    """Restore weights, optimizers and RNG into already-built objects; return state.json's content.
    ``ema`` gets the checkpoint's moving average (or, where it has none, the trained weights)."""
    path = resolve(path)
    unwrap(generator).load_state_dict(load_file(str(path / "generator.safetensors"), device=str(device)))
    if ema is not None:
        ema.load_state_dict(load_file(str(inference_weights(path)), device=str(device)))
    if (path / "discriminator.safetensors").is_file():
        unwrap(discriminator).load_state_dict(load_file(str(path / "discriminator.safetensors"), device=str(device)))
    state = json.loads((path / "state.json").read_text())
    tensors = load_file(str(path / "optimizer.safetensors"))
    for prefix, opt in (("opt_g", opt_g), ("opt_d", opt_d)):
        if prefix in state["optimizers"]:
            opt.load_state_dict(_unflatten_optimizer(prefix, tensors, state["optimizers"][prefix]))
    torch.set_rng_state(tensors["rng.torch"])
    return state
