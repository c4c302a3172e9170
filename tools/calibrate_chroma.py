"""Measure the served chroma gain (spec.ab_gain) of a model on TRAINING photos, never on validation ones.

    python tools/calibrate_chroma.py --model MODEL --data DIR [DIR...] --val-count 1000 10 [--count 300] [--target 0.85]

A colorizer trained with L1 (and, more gently, with GAN + 100 x L1) predicts the conditional median of the colour, which is
duller than the photos it learned from: where it is unsure of the hue it shrinks the chroma towards grey. A single gain
on the served ab restores the overall colourfulness. This script takes ``--count`` photos of the trainer's TRAINING split
(same --data / --val-count / --seed as the run, so the held-out photos are excluded exactly as the trainer excluded them),
runs the network once per photo at the default render size (as served: with the runtime's mirror averaging), and scores the result for each gain in the grid (the gain
is applied the way the runtime's ``saturation`` is, before the gamut clip): colourfulness ratio CF(pred) / CF(truth),
PSNR and CIEDE2000. It recommends the gain at which the CF ratio reaches ``--target`` (default 0.8, the colourfulness
goal the project set for the default model), linearly interpolated between the grid's gains (the CF ratio is close to
linear in the gain) and rounded to 0.01; write it into a bundle with ``colorize-gan-export RUN -o OUT --ab-gain G``.

A model with a distribution head (spec.ab_head) is calibrated by the temperature of its annealed mean instead
(``--temperatures``, gain 1): lower temperatures are more vivid where the model is sure and change little where it is
not. The network runs once per photo and temperature (torch backend, the temperature written into a copy of the spec);
the recommendation is the highest temperature that reaches the target, for ``--ab-temperature`` at export.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's runtime/trainer, not an installed copy
from trainer.evaluate import grey_baseline, load_colour  # noqa: E402
from trainer.files import split_folders  # noqa: E402
from trainer.metrics import colourfulness, score_image  # noqa: E402


def add_sample_args(ap: argparse.ArgumentParser) -> None:
    """The options that name a training run's split and a sample of its photos (``sample_photos``)."""
    ap.add_argument("--data", nargs="+", required=True, help="the training run's --data folders")
    ap.add_argument("--val-count", type=int, nargs="+", required=True, help="the training run's --val-count")
    ap.add_argument("--seed", type=int, default=0, help="the training run's --seed")
    ap.add_argument("--count", type=int, default=300, help="photos to use (evenly spaced over the split)")


def sample_photos(args: argparse.Namespace, held_out: bool = False) -> list[Path]:
    """The photos that the options of ``add_sample_args`` name: ``--count`` evenly spaced over the TRAINING split
    (calibration), or over the held-out one (``held_out``: tools/frontier.py, tools/contact_sheets.py)."""
    photos = split_folders(args.data, args.val_count, None, args.seed)[1 if held_out else 0]
    return photos[:: max(1, len(photos) // args.count)][: args.count]


def pick_gain(rows: dict[float, dict[str, float]], target: float, reverse: bool = False) -> tuple[float, bool]:
    """(gain reaching CF ratio ``target``, interpolated between grid points; whether the grid reaches it at all).
    ``reverse``: the CF ratio grows as the setting falls (a temperature)."""
    gains = sorted(rows, reverse=reverse)
    cf = [rows[g]["cf_ratio"] for g in gains]
    if cf[0] >= target:
        return gains[0], True
    for (g0, c0), (g1, c1) in zip(zip(gains, cf), zip(gains[1:], cf[1:])):
        if c0 < target <= c1:
            return round(g0 + (target - c0) / (c1 - c0) * (g1 - g0), 2), True
    return gains[-1], False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="model bundle or checkpoint with ab_gain 1.0")
    add_sample_args(ap)
    ap.add_argument("--gains", type=float, nargs="+", default=[1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2.0])
    ap.add_argument("--temperatures", type=float, nargs="+", default=None,
                    help="distribution head: calibrate the annealed-mean temperature over these instead of the gain")
    ap.add_argument("--prior-alpha", type=float, default=None,
                    help="with --temperatures: the decode-time prior correction for every temperature (default: the model's)")
    ap.add_argument("--target", type=float, default=0.8, help="CF ratio the recommended gain reaches")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from tqdm import tqdm

    from runtime import Colorizer
    from runtime.image.color import rgb_to_l
    from runtime.model.bundle import resolve

    gain = resolve(args.model).spec.ab_gain  # the spec alone: no network to load for the check
    if gain != 1.0:
        print(f"calibrate_chroma: error: the model already has ab_gain {gain}; calibrate the raw one", file=sys.stderr)
        return 2
    photos = sample_photos(args)
    knob = "temperature" if args.temperatures else "gain"
    settings = args.temperatures or args.gains
    scores = {g: {"psnr": [], "ciede2000": [], "cf_pred": [], "cf_truth": []} for g in settings}
    with tempfile.TemporaryDirectory() as tmp:
        if args.temperatures:
            from frontier import with_temperature

            models = [(t, with_temperature(args.model, t, Path(tmp), args.prior_alpha)) for t in args.temperatures]
        else:
            models = [(None, args.model)]
        for t, model in models:
            c = Colorizer.load(model)
            used = 0
            for path in tqdm(photos, desc=f"calibrate{f' T {t:g}' if t else ''}", unit="img", file=sys.stderr):
                truth = load_colour(path)
                if truth is None:
                    continue
                used += 1
                L = rgb_to_l(grey_baseline(truth))
                net_L, geom = c.prepare(L)
                ab = c.predict_ab(net_L)[0]
                cf_truth = colourfulness(truth)
                for g in ([t] if t else args.gains):
                    pred = c.finish(L, ab, geom, saturation=1.0 if t else g)
                    s = score_image(pred, truth)
                    for k in ("psnr", "ciede2000", "cf_pred"):
                        scores[g][k].append(s[k])
                    scores[g]["cf_truth"].append(cf_truth)
            c.close()
    rows = {}
    for g, d in scores.items():
        m = {k: float(np.mean(v)) for k, v in d.items()}
        rows[g] = {"psnr": m["psnr"], "ciede2000": m["ciede2000"], "cf_ratio": m["cf_pred"] / m["cf_truth"]}
    pick, reached = pick_gain(rows, args.target, reverse=bool(args.temperatures))
    print(f"{used} training photos (the validation split excluded), model {args.model}")
    print(f"| {knob} | CF ratio | PSNR dB | CIEDE2000 |")
    print("|---:|---:|---:|---:|")
    for g in sorted(rows):
        r = rows[g]
        print(f"| {g:.2f} | {r['cf_ratio']:.3f} | {r['psnr']:.2f} | {r['ciede2000']:.2f} |")
    option = "--ab-temperature" if args.temperatures else "--ab-gain"
    print(f"recommended {option} {pick} " + (f"(CF ratio {args.target}, interpolated between the grid's settings)" if reached
                                            else f"(no {knob} in the grid reaches CF ratio {args.target}: the extreme)"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": args.model, "knob": knob, "photos": used, "target": args.target, "picked": pick,
                                         "rows": {str(k): v for k, v in rows.items()}}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
