"""The colour frontier of a model: colourfulness against fidelity over a range of saturation settings (issue 17).

    python tools/frontier.py --data ../shared/data/mix ../shared/data/photos --val-count 1000 10 \
        [--model BUNDLE] [--count 300] [--saturations 0.6 0.8 1.0 1.2 1.4 1.6] \
        [--temperatures 0.25 0.38 0.5 0.7 1.0] [--json docs/default-model/frontier.json] [--plot docs/default-model/frontier.png]

One served operating point (CF ratio 0.85 at +0.4 dB, say) hides the trade a model makes: more saturation buys
colourfulness with PSNR. For ``--count`` photos evenly spaced over the run's validation split (held out), each
colorized once as served (default render size, mirror averaging) and finished at every saturation of the list
(the runtime's ``saturation``, applied before the gamut clip): PSNR (and its gain over the grey picture), CIEDE2000
and CF ratio (mean colourfulness of the results over that of the truths), for all photos and for the most colourful
quarter (by the truth's colourfulness), where a dull model loses most. ``--plot`` draws CF ratio against PSNR gain,
one line per subset (and one per ``--model`` given twice: e.g. old and new default).

A model with a distribution head (spec.ab_head) has a second knob, the temperature of its annealed mean, which moves
saturation where the model is sure and leaves it where it is not: ``--temperatures`` draws that model's line over
temperatures instead (saturation 1, the network run once per temperature with that temperature in its spec, on the
torch backend). Models may be bundles or trainer checkpoints (run folders).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def with_temperature(model: str | None, temperature: float, folder: Path, prior_alpha: float | None = None) -> str:
    """A trainer-style model folder serving ``model``'s weights at ``temperature`` (and ``prior_alpha``, when given):
    a symlink and a spec.json."""
    import dataclasses

    from runtime.model.bundle import resolve

    files = resolve(model)
    if files.spec.ab_head != "distribution" or files.weights is None:
        raise SystemExit(f"frontier: {model or 'the default'}: --temperatures needs a distribution head and .safetensors weights")
    alpha = files.spec.ab_prior_alpha if prior_alpha is None else prior_alpha
    out = folder / f"t{temperature:g}a{alpha:g}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(dataclasses.replace(files.spec, ab_temperature=temperature, ab_prior_alpha=alpha).to_json())
    link = out / "generator.safetensors"
    if not link.exists():
        link.symlink_to(Path(files.weights).resolve())
    return str(out)


def serve_photo(c, path: Path) -> tuple | None:
    """A colour photo -> (truth, its grey picture, L, the served ab on the network grid, Geometry); None if unreadable."""
    from runtime.image.color import rgb_to_l
    from trainer.evaluate import grey_baseline, load_colour

    truth = load_colour(path)
    if truth is None:
        return None
    grey = grey_baseline(truth)
    L = rgb_to_l(grey)
    net_L, geom = c.prepare(L)
    return truth, grey, L, c.predict_ab(net_L)[0], geom


def frontier(model: str | None, photos: list[Path], saturations: list[float], label: str | None = None) -> dict:
    from tqdm import tqdm

    from runtime import Colorizer
    from trainer.metrics import colourfulness, psnr
    from trainer.metrics import ciede2000 as de2000
    from runtime.image.color import rgb_to_lab

    c = Colorizer.load(model, backend="cpu")
    rows = []  # per photo: cf_truth, psnr_grey, then per saturation (psnr, ciede2000, cf)
    for path in tqdm(photos, desc=f"frontier {model or 'default'}", unit="img", file=sys.stderr):
        served = serve_photo(c, path)
        if served is None:
            continue
        truth, grey, L, ab, geom = served
        lab_truth = rgb_to_lab(truth)
        per = []
        for s in saturations:
            out = c.finish(L, ab, geom, saturation=s)
            per.append((psnr(out, truth), float(de2000(rgb_to_lab(out), lab_truth).mean()), colourfulness(out)))
        rows.append((colourfulness(truth), psnr(grey, truth), per))
    backend = c.backend_name
    c.close()
    cf_truth = np.array([r[0] for r in rows])
    quarter = cf_truth >= np.percentile(cf_truth, 75)
    out: dict = {"model": label or model or "embedded default", "backend": backend, "photos": len(rows),
                 "saturations": saturations, "subsets": {}}
    for name, sel in (("all", np.ones(len(rows), bool)), ("most colourful quarter", quarter)):
        grey_psnr = float(np.mean([r[1] for r, k in zip(rows, sel) if k]))
        points = []
        for i, s in enumerate(saturations):
            p = np.array([r[2][i][0] for r, k in zip(rows, sel) if k])
            d = np.array([r[2][i][1] for r, k in zip(rows, sel) if k])
            cf = np.array([r[2][i][2] for r, k in zip(rows, sel) if k])
            points.append({"saturation": s, "setting": f"{s:g}", "psnr": float(p.mean()), "psnr_gain_over_grey": float(p.mean() - grey_psnr),
                           "ciede2000": float(d.mean()), "cf_ratio": float(cf.mean() / cf_truth[sel].mean())})
        out["subsets"][name] = {"photos": int(sel.sum()), "grey_psnr": grey_psnr, "points": points}
    return out


def is_distribution(model: str | None) -> bool:
    from runtime.model.bundle import resolve

    return resolve(model).spec.ab_head == "distribution"


def temperature_frontier(model: str | None, photos: list[Path], temperatures: list[float],
                         prior_alpha: float | None = None) -> dict:
    """One report whose points are the temperatures (saturation 1; ``prior_alpha`` for all, when given)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        parts = [frontier(with_temperature(model, t, Path(tmp), prior_alpha), photos, [1.0]) for t in temperatures]
    label = f" (temperatures{'' if prior_alpha is None else f', prior alpha {prior_alpha:g}'})"
    out = {**parts[0], "model": f"{model or 'embedded default'}{label}", "temperatures": temperatures,
           "prior_alpha": prior_alpha}
    for name, sub in out["subsets"].items():
        sub["points"] = [{**part["subsets"][name]["points"][0], "temperature": t, "setting": f"T{t:g}"}
                         for t, part in zip(temperatures, parts)]
    return out


def plot(reports: list[dict], path: Path) -> None:
    """CF ratio (x) against PSNR gain over grey (y), a polyline per model and subset, saturations marked."""
    from PIL import Image, ImageDraw

    W, H, M = 640, 420, 56
    pts = [(p["cf_ratio"], p["psnr_gain_over_grey"]) for r in reports for sub in r["subsets"].values() for p in sub["points"]]
    x0, x1 = min(p[0] for p in pts) - 0.05, max(p[0] for p in pts) + 0.05
    y0, y1 = min(p[1] for p in pts) - 0.3, max(p[1] for p in pts) + 0.3
    im = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(im)

    def xy(cf: float, g: float) -> tuple[float, float]:
        return M + (cf - x0) / (x1 - x0) * (W - 2 * M), H - M - (g - y0) / (y1 - y0) * (H - 2 * M)

    d.rectangle((M, M, W - M, H - M), outline="black")
    for v in np.arange(np.ceil(x0 * 10) / 10, x1, 0.1):
        d.text((xy(v, y0)[0] - 10, H - M + 6), f"{v:.1f}", fill="black")
    for v in np.arange(np.ceil(y0), y1, 1.0):
        d.text((M - 30, xy(x0, v)[1] - 6), f"{v:+.0f}", fill="black")
    d.line([xy(x0, 0), xy(x1, 0)], fill=(200, 200, 200))
    d.text((W // 2 - 120, H - 24), "CF ratio (colourfulness of results / of truths)", fill="black")
    d.text((6, 8), "PSNR gain over the grey picture, dB", fill="black")
    colours = [(200, 40, 40), (40, 90, 200), (230, 140, 20), (20, 150, 80)]
    k = 0
    for r in reports:
        for name, sub in r["subsets"].items():
            line = [xy(p["cf_ratio"], p["psnr_gain_over_grey"]) for p in sub["points"]]
            d.line(line, fill=colours[k % 4], width=2)
            for (px, py), p in zip(line, sub["points"]):
                d.ellipse((px - 3, py - 3, px + 3, py + 3), fill=colours[k % 4])
                d.text((px + 4, py - 12), p.get("setting", f"{p['saturation']:g}"), fill=colours[k % 4])
            n_lines = sum(len(x["subsets"]) for x in reports)
            d.text((M + 8, H - M - 8 - 14 * (n_lines - k)), f"{r['model']}: {name}", fill=colours[k % 4])
            k += 1
    im.save(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    from calibrate_chroma import add_sample_args, sample_photos

    ap.add_argument("--model", action="append", default=None, help="bundle(s); default: the embedded model")
    add_sample_args(ap)
    ap.add_argument("--saturations", type=float, nargs="+", default=[0.6, 0.8, 1.0, 1.2, 1.4, 1.6])
    ap.add_argument("--temperatures", type=float, nargs="+", default=None,
                    help="distribution-head models: a line over these annealed-mean temperatures (saturation 1) instead")
    ap.add_argument("--prior-alpha", type=float, default=None,
                    help="with --temperatures: the decode-time prior correction for every point (default: the model's)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args(argv)

    photos = sample_photos(args, held_out=True)
    reports = [temperature_frontier(m, photos, args.temperatures, args.prior_alpha) if args.temperatures and is_distribution(m)
               else frontier(m, photos, args.saturations) for m in (args.model or [None])]
    for r in reports:
        for name, sub in r["subsets"].items():
            print(f"{r['model']}, {name} ({sub['photos']} photos, grey {sub['grey_psnr']:.2f} dB):")
            for p in sub["points"]:
                print(f"  {'T' if 'temperature' in p else 'saturation'} {p['setting']}: PSNR {p['psnr']:.2f} ({p['psnr_gain_over_grey']:+.2f} dB), "
                      f"CIEDE2000 {p['ciede2000']:.2f}, CF ratio {p['cf_ratio']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(reports if len(reports) > 1 else reports[0], indent=2) + "\n")
    if args.plot:
        plot(reports, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
