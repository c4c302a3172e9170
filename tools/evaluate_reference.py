"""Colour from a reference, measured on photos with known colour (issue 19's stills protocol).

    python tools/evaluate_reference.py --data ../shared/data/mix ../shared/data/photos --val-count 1000 10 \
        [--count 200] [--split validation|training] [--json docs/default-model/reference_stills.json]
    python tools/evaluate_reference.py ... --split training --tune     # sweep the matcher's constants

For ``--count`` photos evenly spaced over the run's validation split (``--split training`` for tuning), each
colorized from its grey three ways: automatic; with a **related** reference: the true photo moved so that no
pixel lines up (a 70 % crop at a random place, scaled by 0.8-1.25, mirrored on every other photo; seeded); with an
**unrelated** reference: another photo of the same set (fixed pairing: photo i takes photo i + n/2). PSNR and
CIEDE2000 against the truth, the mean gain over automatic and the worst photo's, the fraction of photos whose
reference counted at all (gate > 0), and the time: preparing a reference, and colorizing with a prepared one
against automatic (the runtime's default settings: render size 256, mirror averaging).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def moved(rgb8: np.ndarray, rng: np.random.Generator, mirror: bool) -> np.ndarray:
    from PIL import Image

    h, w = rgb8.shape[:2]
    ch, cw = int(h * 0.7), int(w * 0.7)
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    s = float(rng.uniform(0.8, 1.25))
    im = Image.fromarray(rgb8[y:y + ch, x:x + cw]).resize((max(8, round(cw * s)), max(8, round(ch * s))),
                                                         Image.Resampling.BICUBIC)
    a = np.asarray(im)
    return np.ascontiguousarray(a[:, ::-1]) if mirror else a


def run(colorizer, truths: list[np.ndarray], seed: int = 0, timing: bool = False) -> dict:
    from runtime.image import reference as refmod
    from runtime.image.color import grey_to_l
    from trainer.evaluate import grey_baseline
    from trainer.metrics import score_image

    rng = np.random.default_rng(seed)
    n = len(truths)
    rows = {"auto": [], "related": [], "unrelated": []}
    gates = {"related": [], "unrelated": []}
    t_prep, t_auto, t_ref = [], [], []
    for i, truth in enumerate(truths):
        grey = grey_baseline(truth)
        rgb8 = (truth * 255 + 0.5).astype(np.uint8)
        refs = {"related": moved(rgb8, rng, mirror=i % 2 == 1),
                "unrelated": (truths[(i + n // 2) % n] * 255 + 0.5).astype(np.uint8)}
        t = time.perf_counter()
        auto = colorizer.colorize_array(grey)
        t_auto.append(time.perf_counter() - t)
        rows["auto"].append(score_image(auto, truth))
        net_L, _ = colorizer.prepare(grey_to_l(grey[..., 0]))  # for the gate each reference gets (the same net input)
        auto_ab = colorizer.network(net_L)[0]
        encoder = colorizer.scene_encoder()
        scene = None if encoder is None else encoder(net_L)
        for kind, ref_img in refs.items():
            t = time.perf_counter()
            ref = colorizer.reference(ref_img)
            t_prep.append(time.perf_counter() - t)
            t = time.perf_counter()
            out = colorizer.colorize_array(grey, reference=ref)
            t_ref.append(time.perf_counter() - t)
            rows[kind].append(score_image(out, truth))
            gates[kind].append(refmod.reference_hints(ref, net_L[0, 0], auto_ab, scene)[1])
    out: dict = {"photos": n}
    for kind in rows:
        psnr = np.array([s["psnr"] for s in rows[kind]])
        de = np.array([s["ciede2000"] for s in rows[kind]])
        out[kind] = {"psnr": float(psnr.mean()), "ciede2000": float(de.mean())}
        if kind != "auto":
            gain = psnr - np.array([s["psnr"] for s in rows["auto"]])
            out[kind].update(gain_db=float(gain.mean()), worst_gain_db=float(gain.min()),
                             counted=float(np.mean(np.array(gates[kind]) > 0)), mean_gate=float(np.mean(gates[kind])))
    if timing:
        out["seconds"] = {"prepare_reference": float(np.median(t_prep)), "automatic": float(np.median(t_auto)),
                          "with_prepared_reference": float(np.median(t_ref))}
    return out


def photo_arguments(ap: argparse.ArgumentParser, count: int, split: str) -> None:
    """The photo set's options: --model, --data, --val-count, --seed, --count, --split (see ``photo_set``)."""
    ap.add_argument("--model", default=None)
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--val-count", type=int, nargs="+", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--count", type=int, default=count)
    ap.add_argument("--split", choices=("validation", "training"), default=split)


def photo_set(args: argparse.Namespace) -> list[np.ndarray]:
    """``--count`` colour photos (float RGB) evenly spaced over the run's split, greyscale ones left out."""
    from trainer.evaluate import load_colour
    from trainer.files import split_folders

    train, val = split_folders(args.data, args.val_count, None, args.seed)
    pool = val if args.split == "validation" else train
    step = max(1, len(pool) // args.count)
    return [t for t in (load_colour(p) for p in pool[::step]) if t is not None][: args.count]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    photo_arguments(ap, 200, "validation")
    ap.add_argument("--tune", action="store_true", help="sweep TAU and the gate (use with --split training)")
    ap.add_argument("--tune-scene", action="store_true",
                    help="sweep the scene similarity ramp SCENE_LOW-SCENE_HIGH (use with --split training)")
    ap.add_argument("--tune-parts", action="store_true",
                    help="sweep PARTS_WEIGHT and the mutual-match gate (use with --split training)")
    ap.add_argument("--parts-weights", type=float, nargs="+", default=[0.7, 1.0, 1.4], help="--tune-parts: the weights")
    ap.add_argument("--gates", type=float, nargs="+", default=[0.25, 0.4, 0.35, 0.55],
                    help="--tune-parts: the gates, as LOW HIGH pairs")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from runtime import Colorizer
    from runtime.image import reference as refmod

    truths = photo_set(args)
    c = Colorizer.load(args.model, backend="onnxruntime")
    if args.tune:
        results = []
        for tau, (low, high) in itertools.product((0.7, 1.0, 1.3), ((0.15, 0.3), (0.2, 0.35), (0.25, 0.4))):
            refmod.TAU, refmod.GATE_LOW, refmod.GATE_HIGH, refmod.COLOUR_GATE = tau, low, high, (low, high)
            r = run(c, truths, args.seed)
            results.append({"tau": tau, "gate": [low, high], **r})
            print(f"tau {tau} gate {low}-{high}: related {r['related']['gain_db']:+.2f} dB, unrelated "
                  f"{r['unrelated']['gain_db']:+.2f} dB (worst {r['unrelated']['worst_gain_db']:+.2f})", flush=True)
        report = {"split": args.split, "sweep": results}
    elif args.tune_scene:
        results = []
        for low, high in ((-2.0, -1.0), (0.15, 0.25), (0.2, 0.3), (0.25, 0.35), (0.2, 0.4), (0.3, 0.45)):
            refmod.SCENE_LOW, refmod.SCENE_HIGH = low, high  # (-2, -1): every scene counts fully, as without the ramp
            r = run(c, truths, args.seed)
            results.append({"scene": [low, high], **r})
            print(f"scene {low}-{high}: related {r['related']['gain_db']:+.2f} dB (worst {r['related']['worst_gain_db']:+.2f}), "
                  f"unrelated {r['unrelated']['gain_db']:+.2f} dB (worst {r['unrelated']['worst_gain_db']:+.2f})", flush=True)
        report = {"split": args.split, "sweep_scene": results}
    elif args.tune_parts:
        results = []
        gates = list(zip(args.gates[::2], args.gates[1::2]))
        for weight, (low, high) in itertools.product(args.parts_weights, gates):
            refmod.PARTS_WEIGHT, refmod.GATE_LOW, refmod.GATE_HIGH = weight, low, high
            r = run(c, truths, args.seed)
            results.append({"parts_weight": weight, "gate": [low, high], **r})
            print(f"parts {weight} gate {low}-{high}: related {r['related']['gain_db']:+.2f} dB, unrelated "
                  f"{r['unrelated']['gain_db']:+.2f} dB (worst {r['unrelated']['worst_gain_db']:+.2f})", flush=True)
        report = {"split": args.split, "sweep_parts": results}
    else:
        report = {"split": args.split, "constants": {"cell": refmod.CELL, "tau": refmod.TAU,
                                                     "gate": [refmod.GATE_LOW, refmod.GATE_HIGH],
                                                     "colour_gate": list(refmod.COLOUR_GATE),
                                                     "scene": [refmod.SCENE_LOW, refmod.SCENE_HIGH],
                                                     "parts_weight": refmod.PARTS_WEIGHT,
                                                     "scene_graph": c.scene_encoder() is not None},
                  **run(c, truths, args.seed, timing=True)}
        print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
