#!/usr/bin/env python3
"""Ways of decoding a distribution head's colour, compared on the same photos with one network pass each (issue 17).

A distribution-head model (``spec.ab_head == "distribution"``) predicts, per pixel of its H/2 grid, a distribution
over the in-gamut ab bins; the served colour is its annealed mean (runtime/model/ab_distribution.py): softmax((logits
- alpha * log prior) / T) times the bin centres. This script runs the network once per photo (and once for its mirror
image, as the runtime does) and decodes the same logits in every way asked for, so that settings differ by the
decoding only; tools/calibrate_chroma.py and tools/frontier.py instead run a served model per setting. Kinds:

- ``ann T a``: the served annealed mean at temperature T and prior correction alpha a (``--temperatures`` x
  ``--prior-alphas``).
- ``blend a p``: saturation following the head's confidence: the plain mean (T 1, prior correction a) where the
  distribution is flat, the annealed mean (T 0.38, no correction) where it is peaked, mixed by confidence^p
  (``--blend-alphas`` x ``--blend-powers``).
- ``sat m``: the annealed mean (T 0.38, no correction) times a chroma factor from m (flat) to 1 (peaked)
  (``--sat-mins``).
- ``mix a w g`` (a blend: a regression decoder beside the distribution): w times the annealed mean (T of
  ``--mix-temperature``, prior correction a) plus (1 - w) times g times the regression, as the graph serves it
  (``--mix-alphas`` x ``--mix-shares`` x ``--mix-gains``).
- ``spread a w g s`` (a blend): as ``mix``, but the annealed mean's share falls from w to 0 where its distribution is
  spread over distant colours: w where the standard deviation of the annealed distribution (over the bin centres,
  Lab units) is at most s, 0 from 2s on, linear between. An annealed mean between two distant modes is a colour
  neither (between blue and red: magenta); there the regression's answer serves instead
  (``--mix-alphas`` x ``--spread-shares`` x ``--mix-gains`` x ``--spreads``).

Confidence is the distribution's concentration at T 1: 1 - entropy / log(bins), divided by ``CONCENTRATION_FULL``
and clipped to [0, 1]. Choose settings on TRAINING photos (the default); ``--held-out`` scores the validation split.
The embedded default model, served as it ships, is scored on the same photos for reference; the model's own served
decoding is both scored and checked against this script's decoding of the same setting (exit 1 if they differ).

    python tools/decode_sweep.py --model runs/campaign/dist --data ../shared/data/mix ../shared/data/photos \
        --val-count 1000 10 --count 60 [--json out.json]
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's runtime/trainer, not an installed copy
sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrate_chroma import add_sample_args, sample_photos  # noqa: E402

from trainer.evaluate import grey_baseline, load_colour  # noqa: E402
from trainer.metrics import colourfulness, score_image  # noqa: E402

CONCENTRATION_FULL = 0.5  # a concentration at or above this counts as fully confident
VIVID_T = 0.38  # the annealed mean the confidence-driven kinds move towards (Zhang et al. 2016's temperature)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="trainer checkpoint or run folder of a distribution-head model")
    add_sample_args(ap)
    ap.add_argument("--held-out", action="store_true", help="score the validation split instead of training photos")
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.25, 0.38])
    ap.add_argument("--prior-alphas", type=float, nargs="+", default=[0.0, -0.1, -0.2])
    ap.add_argument("--blend-alphas", type=float, nargs="*", default=[-0.3, -0.6])
    ap.add_argument("--blend-powers", type=float, nargs="*", default=[0.5, 1.0, 2.0])
    ap.add_argument("--sat-mins", type=float, nargs="*", default=[0.5, 0.7])
    ap.add_argument("--mix-alphas", type=float, nargs="*", default=[-0.1, -0.2, -0.3])
    ap.add_argument("--mix-shares", type=float, nargs="*", default=[0.5])
    ap.add_argument("--mix-gains", type=float, nargs="*", default=[1.3, 1.6, 1.9, 2.2])
    ap.add_argument("--mix-temperature", type=float, default=0.25)
    ap.add_argument("--spreads", type=float, nargs="*", default=[], help="spread kinds' s, Lab units (none: no spread kinds)")
    ap.add_argument("--spread-shares", type=float, nargs="*", default=[0.5])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    from runtime import Colorizer
    from runtime.image.color import rgb_to_l
    from runtime.model.ab_distribution import upsample2
    from runtime.model.effnet_unet import mix
    from trainer import checkpoint

    torch.set_num_threads(args.threads)
    g = checkpoint.load_generator(args.model).eval()
    head = getattr(g, "distribution", None)
    if head is None:
        print(f"decode_sweep: error: {args.model} has no distribution head", file=sys.stderr)
        return 2
    spec = g.spec
    served = Colorizer.load(args.model, backend="torch-cpu")  # its prepare/finish, and its decoding to agree with
    default = Colorizer.load(None)
    log_bins = float(np.log(head.bins))

    kinds: dict[str, tuple] = {}
    for t, a in itertools.product(args.temperatures, args.prior_alphas):
        kinds[f"ann T {t:g} a {a:g}"] = ("ann", t, a)
    for a, p in itertools.product(args.blend_alphas, args.blend_powers):
        kinds[f"blend a {a:g} p {p:g}"] = ("blend", a, p)
    for m in args.sat_mins:
        kinds[f"sat m {m:g}"] = ("sat", m)
    if spec.ab_head == "blend":  # a regression decoder beside the distribution
        for a, w, gain in itertools.product(args.mix_alphas, args.mix_shares, args.mix_gains):
            kinds[f"mix a {a:g} w {w:g} g {gain:g}"] = ("mix", a, w, gain)
        for a, w, gain, sd in itertools.product(args.mix_alphas, args.spread_shares, args.mix_gains, args.spreads):
            kinds[f"spread a {a:g} w {w:g} g {gain:g} s {sd:g}"] = ("spread", a, w, gain, sd)

    def spread_share(logits: torch.Tensor, alpha: float, share: float, sd: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(the annealed mean, its per-pixel share) at H/2: the share falls from ``share`` to 0 as the annealed
        distribution's standard deviation (Lab units) goes from ``sd`` to 2 ``sd``."""
        z = logits.float()
        if alpha:
            z = z - alpha * head.log_prior.float()[None, :, None, None]
        p = torch.softmax(z / args.mix_temperature, dim=1)
        c = head.centres.float()
        mean = torch.einsum("nqhw,qc->nchw", p, c)
        second = torch.einsum("nqhw,q->nhw", p, (c * c).sum(1))[:, None]
        std = (second - (mean * mean).sum(1, keepdim=True)).clamp_min(0).sqrt() * spec.ab_scale
        return mean, share * (2.0 - std / sd).clamp(0, 1)

    def confidence(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(confidence, the annealed mean at VIVID_T) of one photo's logits: shared by every blend and sat kind."""
        p1 = torch.softmax(logits, dim=1)
        entropy = -(p1 * torch.log(p1.clamp_min(1e-12))).sum(1, keepdim=True)
        return ((1 - entropy / log_bins) / CONCENTRATION_FULL).clamp(0, 1), head.decode(logits, VIVID_T)

    def variant(logits: torch.Tensor, kind: tuple, conf: torch.Tensor, vivid: torch.Tensor) -> torch.Tensor:
        if kind[0] == "mix":  # at full resolution, where the regression is
            return mix(upsample2(head.decode(logits, args.mix_temperature, kind[1])), regression, kind[2], kind[3])
        if kind[0] == "spread":
            mean, share = spread_share(logits, kind[1], kind[2], kind[4])
            return mix(upsample2(mean), regression, upsample2(share), kind[3])
        if kind[0] == "ann":
            return head.decode(logits, kind[1], kind[2])
        if kind[0] == "blend":
            mean = head.decode(logits, 1.0, kind[1])
            return mean + conf ** kind[2] * (vivid - mean)
        return vivid * (kind[1] + (1 - kind[1]) * conf)

    names = ["embedded default (served)", f"served (T {spec.ab_temperature:g}, alpha {spec.ab_prior_alpha:g})", *kinds]
    scores: dict[str, list[dict]] = {k: [] for k in names}
    cf_truth = []
    photos = sample_photos(args, held_out=args.held_out)
    worst = 0.0  # this script's decoding of the model's own setting against the runtime's: must agree
    for i, path in enumerate(photos):
        truth = load_colour(path)
        if truth is None:
            continue
        cf_truth.append(colourfulness(truth))
        L = rgb_to_l(grey_baseline(truth))
        d_L, d_geom = default.prepare(L)
        scores[names[0]].append(score_image(default.finish(L, default.predict_ab(d_L)[0], d_geom), truth))
        net_L, geom = served.prepare(L)
        ab_served = served.predict_ab(net_L)[0]
        scores[names[1]].append(score_image(served.finish(L, ab_served, geom), truth))
        x = torch.from_numpy(np.concatenate([net_L, net_L[..., ::-1]]).copy()) / spec.l_scale - spec.l_shift

        def full(ab: torch.Tensor) -> np.ndarray:  # the runtime's scaling and mirror averaging
            ab = ((ab if ab.shape[-1] == x.shape[-1] else upsample2(ab)) * spec.ab_scale * spec.ab_gain).numpy()
            return ((ab[:1] + ab[1:, :, :, ::-1]) * np.float32(0.5))[0]
        with torch.inference_mode():
            logits = g(x, None, return_logits=True)
            logits, regression = logits if isinstance(logits, tuple) else (logits, None)
            own = head.decode(logits, spec.ab_temperature, spec.ab_prior_alpha)
            own = full(own if regression is None else g.blend(upsample2(own), regression))
            worst = max(worst, float(np.abs(own - ab_served).max()))
            conf, vivid = confidence(logits)
            for name, kind in kinds.items():
                scores[name].append(score_image(served.finish(L, full(variant(logits, kind, conf, vivid)), geom), truth))
        print(f"\r{i + 1}/{len(photos)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    cf_mean = float(np.mean(cf_truth))
    rows = {k: {"psnr": float(np.mean([s["psnr"] for s in v])), "ciede2000": float(np.mean([s["ciede2000"] for s in v])),
                "cf_ratio": float(np.mean([s["cf_pred"] for s in v])) / cf_mean} for k, v in scores.items()}
    if worst > 0.05:
        print(f"decode_sweep: error: its decoding differs from the runtime's by {worst:.3f} ab units", file=sys.stderr)
        return 1
    split_name = "held-out" if args.held_out else "training"
    print(f"{len(cf_truth)} {split_name} photos, model {args.model} (the sweep's decoding of its served setting agrees "
          f"with the runtime's to {worst:.1e} ab units)")
    print("| decoding | PSNR dB | CIEDE2000 | CF ratio |\n|---|---:|---:|---:|")
    for k, r in rows.items():
        print(f"| {k} | {r['psnr']:.2f} | {r['ciede2000']:.2f} | {r['cf_ratio']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "split": split_name, "photos": len(cf_truth),
                                         "concentration_full": CONCENTRATION_FULL, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
