"""The trainer's per-epoch validation (PSNR and colourfulness of held-out photos, a contact sheet) and its CSV log."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from runtime.image import color

from .data import pad_to_multiple, to_network


@torch.inference_mode()
def validate(G: torch.nn.Module, images: list[np.ndarray], device: torch.device, sheet_path: Path | None) -> dict[str, float]:
    """Colorize each validation image at its stored size; PSNR and colourfulness vs truth and vs grey."""
    from .metrics import colourfulness, psnr  # numpy-only; imported here to keep start-up light

    spec = G.spec
    was_training = G.training
    G.eval()
    rows, scores = [], {"psnr": [], "psnr_grey": [], "cf_pred": [], "cf_truth": []}
    for rgb in images:
        L_in, _ = to_network(rgb, spec.l_scale, spec.l_shift, spec.ab_scale)
        padded, (h, w) = pad_to_multiple(L_in, spec.size_multiple)
        ab = G(torch.from_numpy(padded)[None].to(device)).float().cpu().numpy()[0, :, :h, :w] * spec.ab_scale
        truth = rgb.astype(np.float32) / 255
        L = (L_in[0] + spec.l_shift) * spec.l_scale
        pred = color.lab_to_rgb(np.concatenate([L[..., None], ab.transpose(1, 2, 0)], -1))
        grey = color.lab_to_rgb(np.stack([L, np.zeros_like(L), np.zeros_like(L)], -1))
        scores["psnr"].append(psnr(pred, truth))
        scores["psnr_grey"].append(psnr(grey, truth))
        scores["cf_pred"].append(colourfulness(pred))
        scores["cf_truth"].append(colourfulness(truth))
        rows.append((grey, pred, truth))
    G.train(was_training)
    out = {k: float(np.mean(v)) for k, v in scores.items()}
    out["cf_ratio"] = out["cf_pred"] / max(out["cf_truth"], 1e-6)
    if sheet_path is not None:
        from .contact_sheet import contact_sheet

        sheet_path.parent.mkdir(parents=True, exist_ok=True)
        contact_sheet(rows[:12], sheet_path)
    return out


FIELDS = ["epoch", "step", "phase", "seconds", "img_per_s", "loss_l1", "loss_g_gan", "loss_d", "val_psnr", "val_psnr_grey",
          "val_cf_pred", "val_cf_truth", "val_cf_ratio", "loss_ce"]


def log_csv(path: Path, row: dict) -> None:
    """Append ``row``; a log that exists keeps its own columns (a run resumed by a newer trainer stays aligned)."""
    new = not path.exists() or path.stat().st_size == 0
    if new:
        fields = FIELDS
    else:
        with path.open() as f:
            fields = f.readline().strip().split(",")
    with path.open("w" if new else "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)
