#!/usr/bin/env python3
"""Learn the hint fill's affinity on TRAINING photos (issue 19, item 7): how much each feature counts when the fill
decides that a pixel looks like a hinted part (runtime/image/hint_features.py: FILL_WEIGHTS), its confidence constant
(FILL_EPS) and its reach (FILL_REACH), by gradient descent on the colour error the fill leaves.

For each photo of the trainer's training split (never the validation split; by default photos other than the ones
tools/tune_hint_spread.py scores) two hint scenarios are drawn from the truth: K points sampled all over the photo as
tools/evaluate_hints.py does (K cycles through 2, 5, 10, 20), and a restorer's few dots close together (3 dots within
8 % of the picture's longer side of one place, usually one object: the fill must not carry their colour to whatever
else looks alike). The network's automatic answer and the edge-aware spreading (runtime/image/hint_spread.py's
spread_frame) are computed once and kept fixed; the fill is rebuilt in torch as a function of the learned constants,
and what is minimised is the mean over cases of log(mean squared ab error over the network grid), i.e. the mean PSNR
in ab. A quarter of the photos is kept out of the learning and scored before and after (does it generalise?) as
10 log10 of the mean squared ab error (dB; lower is better), per scenario.

    python tools/learn_hint_fill.py ../shared/data/mix --val-count 1000 --count 240 --steps 120 --shape-only \
        --json docs/hints/fill_learned.json

(without --shape-only the fill's width and reach are learned too: on these photos the fit then makes the fill global,
which docs/hints/README.md explains and rejects).

The result goes into hint_features.py by hand, and is then judged as every other setting: tools/tune_hint_spread.py
(training photos), tools/evaluate_bleed.py (hand-traced objects), tools/evaluate_hints.py (validation, once).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's runtime/trainer, not an installed copy
sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_hints import hint_image, patch_hints  # noqa: E402

from trainer.evaluate import grey_baseline, load_colour  # noqa: E402
from trainer.files import find_images, split  # noqa: E402

POINTS = (2, 5, 10, 20)  # the spread-out scenario's K, cycled over photos
CLUSTER_DOTS, CLUSTER_RADIUS, PATCH = 3, 0.08, 5
PIXELS = 3000  # pixels of the fill zone sampled per case


def cluster_hints(truth: np.ndarray, rng_seed: int) -> np.ndarray:
    """RGBA uint8 hint image: CLUSTER_DOTS patches of the true colour within CLUSTER_RADIUS of one random place."""
    h, w = truth.shape[:2]
    rng = np.random.default_rng(rng_seed)
    r = CLUSTER_RADIUS * max(h, w)
    cy, cx = rng.uniform(r, h - r - PATCH), rng.uniform(r, w - r - PATCH)
    corners = []
    for _ in range(CLUSTER_DOTS):
        angle, dist = rng.uniform(0, 2 * np.pi), r * np.sqrt(rng.uniform())
        corners.append((int(np.clip(cy + dist * np.sin(angle), 0, h - PATCH)),
                        int(np.clip(cx + dist * np.cos(angle), 0, w - PATCH))))
    return patch_hints(truth, corners, PATCH)


def one_case(net_L: np.ndarray, ab: np.ndarray, guide: np.ndarray, truth_ab: np.ndarray, content: np.ndarray,
             net_hints: np.ndarray, rng: np.random.Generator, **info) -> dict | None:
    """What the fill's loss needs for one hinted picture (network grid: L (1, 1, h, w), automatic ab (2, h, w), its
    guide features (hint_features.guide_features), the truth (2, h, w), its content mask, the hint input (3, h, w)),
    the fill zone sampled; None without a zone."""
    from runtime.image import hint_features as hf
    from runtime.image.hint_spread import fill_share, spread_frame

    mask = net_hints[2] > 0
    added, residual, d = spread_frame(ab, net_L[0, 0], net_hints[:2], mask)
    base = ab + added
    base[:, mask] = net_hints[:2][:, mask]
    share = fill_share(d)
    zone = content & (share > 0) & ~mask
    if not zone.any():
        return None
    f, r, centres = hf._samples(guide, residual, mask)
    err = ((base - truth_ab) ** 2).sum(0)
    pick = np.flatnonzero(zone.ravel())
    pick = rng.choice(pick, min(PIXELS, pick.size), replace=False)
    yy, xx = np.divmod(pick, ab.shape[2])
    near2 = hf.nearest_sq(yy, xx, centres)
    return {**info, "g": guide.reshape(7, -1)[:, pick].T, "share": share.ravel()[pick],
            "near2": near2.astype(np.float32), "base": base.reshape(2, -1)[:, pick].T,
            "truth": truth_ab.reshape(2, -1)[:, pick].T, "f": f, "r": r, "side": float(max(ab.shape[1:])),
            "n_zone": int(zone.sum()), "n_content": int(content.sum()), "err_out": float(err[content & ~zone].sum())}


def grid_window(g) -> tuple[slice, slice]:
    """The rows and columns of the network grid that hold the picture (not its reflect padding)."""
    return slice(g.top, g.top + g.h), slice(g.left, g.left + g.w)


def grid_content(ab: np.ndarray, g) -> np.ndarray:
    """The network grid's pixels that hold the picture, as a mask."""
    content = np.zeros(ab.shape[1:], bool)
    content[grid_window(g)] = True
    return content


def make_cases(c, paths: list[Path], seed: int) -> list[dict]:
    """Everything the fill's loss needs, per (photo, scenario), as numpy arrays (the fill zone sampled)."""
    from PIL import Image

    from runtime.image.color import rgb_to_l, rgb_to_lab
    from runtime.image.geometry import prepare_l
    from runtime.image.hint_features import guide_features

    cases = []
    for i, path in enumerate(paths):
        truth = load_colour(path)
        if truth is None:
            continue
        L_full = rgb_to_l(grey_baseline(truth))
        net_L, g = prepare_l(L_full, c.spec.size_multiple, c.render_size)
        ab = c.predict_ab(net_L)[0]
        small = np.stack([np.asarray(Image.fromarray(truth[..., k], mode="F").resize((g.w, g.h), Image.Resampling.BILINEAR))
                          for k in range(3)], -1)
        truth_ab = np.zeros_like(ab)
        truth_ab[(slice(None), *grid_window(g))] = rgb_to_lab(np.clip(small, 0, 1))[..., 1:].transpose(2, 0, 1)
        guide, content = guide_features(net_L[0, 0], ab), grid_content(ab, g)  # once for both scenarios
        rng = np.random.default_rng(seed + i)
        scenarios = (("points", hint_image(truth, POINTS[i % len(POINTS)], seed + 100_000 + i, PATCH)),
                     ("cluster", cluster_hints(truth, seed + 200_000 + i)))
        for kind, hints in scenarios:
            case = one_case(net_L, ab, guide, truth_ab, content, c.hint_input(hints, g)[0], rng, photo=i, kind=kind)
            if case is not None:
                cases.append(case)
        print(f"\r{i + 1}/{len(paths)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    return cases


def scene(rng: np.random.Generator, h: int = 192, w: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A made-up grey picture for the restorer's case: a smooth sky over textured ground, and 2-4 flat shapes of
    random greys (a sky, a wall, a table and the things on it); shape 0 is the hinted object. Returns the picture
    (h, w) uint8, the object's mask and three dot centres (y, x) inside it."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    horizon = rng.uniform(0.25, 0.6) * h
    sky = rng.uniform(120, 235) + rng.uniform(-40, 40) * yy / h
    f1, f2 = rng.uniform(4, 20, 2)
    ground = (rng.uniform(50, 170) + rng.uniform(10, 50) * np.sin(xx / f1 + rng.uniform(0, 6)) * np.cos(yy / f2)
              + rng.normal(0, rng.uniform(2, 12), (h, w)))
    img = np.where(yy < horizon, sky, ground)
    masks = []
    for _ in range(rng.integers(2, 5)):
        cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.1, 0.9) * w
        ry, rx = rng.uniform(0.08, 0.2) * h, rng.uniform(0.06, 0.18) * w
        m = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1) if rng.uniform() < 0.5 else \
            ((np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx))
        img = np.where(m, rng.uniform(60, 230) + rng.normal(0, 1.5, (h, w)), img)
        masks = [k & ~m for k in masks] + [m]  # later shapes cover earlier ones
    obj = masks[0]
    inner = np.argwhere(obj & (np.abs(np.gradient(img.astype(np.float32))[0]) < 5))
    dots = inner[rng.choice(len(inner), 3, replace=False)] if len(inner) >= 3 else np.zeros((0, 2), int)
    return np.clip(img, 0, 255).astype(np.uint8), obj, dots


def make_scenes(c, count: int, seed: int) -> list[dict]:
    """The restorer's case on made-up pictures (``scene``): three dots of one vivid colour on the object; the truth
    is that colour on the object and the automatic colour everywhere else (nothing else should change)."""
    from runtime.image.color import grey_to_l, lab_to_rgb
    from runtime.image.geometry import prepare_l
    from runtime.image.hint_features import guide_features

    cases = []
    for i in range(count):
        rng = np.random.default_rng(seed + 300_000 + i)
        grey, obj, dots = scene(rng)
        if len(dots) < 3:
            continue
        L_full = grey_to_l(grey.astype(np.float32) / 255)
        net_L, g = prepare_l(L_full, c.spec.size_multiple, c.render_size)
        ab = c.predict_ab(net_L)[0]
        hue, chroma = rng.uniform(0, 2 * np.pi), rng.uniform(30, 60)
        lab = np.array([float(L_full[obj].mean()), chroma * np.cos(hue), chroma * np.sin(hue)], np.float32)
        colour = np.round(lab_to_rgb(lab[None, None])[0, 0] * 255).astype(np.uint8)
        hints = np.zeros((*grey.shape, 4), np.uint8)
        for y, x in dots:
            hints[max(0, y - 2):y + 3, max(0, x - 2):x + 3] = (*colour, 255)
        net_hints = c.hint_input(hints, g)[0]
        mask = net_hints[2] > 0
        truth_ab = ab.copy()
        on_grid = np.zeros(ab.shape[1:], bool)
        on_grid[grid_window(g)] = obj  # made-up pictures are drawn at the grid's size
        truth_ab[:, on_grid] = net_hints[:2][:, mask].mean(axis=1)[:, None]
        case = one_case(net_L, ab, guide_features(net_L[0, 0], ab), truth_ab, grid_content(ab, g), net_hints, rng,
                        photo=i, kind="scene")
        if case is not None:
            cases.append(case)
    return cases


def torch_fill(g, f, r, near2, side: float, weights, eps, reach, sigma: float):
    """hint_features.fill at pixels with features g (P, F), for the hinted samples f (K, F) with residuals r (K, 2)
    and the pixels' squared distances to the nearest sample near2 (P,), in torch (differentiable in the constants):
    the colour (P, 2) and the confidence (P,)."""
    import torch

    diff = (g[:, None, :] - f[None]) * weights
    kern = torch.exp(-0.5 * (diff * diff).sum(-1) / sigma ** 2)  # (P, K)
    s = kern.sum(1)
    colour = kern @ r / s.clamp_min(1e-12)[:, None]
    return colour, s / (s + eps) * torch.exp(-0.5 * near2 / (reach * side) ** 2)


def case_losses(cases: list[dict], weights, eps, reach, sigma: float) -> "torch.Tensor":
    """Per case, log(mean squared ab error over the grid's content) with the fill made by these constants."""
    import torch

    out = []
    for case in cases:
        t = case["t"]
        colour, conf = torch_fill(t["g"], t["f"], t["r"], t["near2"], case["side"], weights, eps, reach, sigma)
        pred = t["base"] + (t["share"] * conf)[:, None] * colour
        zone_mse = ((pred - t["truth"]) ** 2).sum(1).mean()
        out.append(torch.log((case["err_out"] + case["n_zone"] * zone_mse) / case["n_content"]))
    return torch.stack(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--model", default=None, help="model bundle or checkpoint (default: the embedded model)")
    ap.add_argument("--val-count", type=int, required=True, help="the trainer's --val-count for FOLDER (never used)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--count", type=int, default=240, help="training photos (evenly spaced, off tune_hint_spread's)")
    ap.add_argument("--tune-count", type=int, default=60, help="tune_hint_spread.py's --count: its photos are left out")
    ap.add_argument("--scenes", type=int, default=0, help="made-up pictures for the restorer's case (scene())")
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--shape-only", action="store_true",
                    help="learn only the features' relative weights (their geometric mean held at 1), with FILL_EPS "
                         "and FILL_REACH as they are: the metric's shape at the fill's present width and reach")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    from runtime import Colorizer
    from runtime.image import hint_features as hf

    train = split(find_images(args.folder), args.val_count, None, args.seed)[0]
    step = max(1, len(train) // args.count)
    tuned = set(train[:: max(1, len(train) // args.tune_count)][: args.tune_count])  # tune_hint_spread.py's photos
    paths = [p for p in train[step // 2::step] if p not in tuned][: args.count]
    c = Colorizer.load(args.model)
    cases = make_cases(c, paths, args.seed) + make_scenes(c, args.scenes, args.seed)
    for case in cases:
        case["t"] = {k: torch.from_numpy(np.ascontiguousarray(case[k], np.float32))
                     for k in ("g", "share", "near2", "base", "truth", "f", "r")}
    check = [case for case in cases if case["photo"] % 4 == 3]
    learn = [case for case in cases if case["photo"] % 4 != 3]
    log_w = torch.zeros(7, requires_grad=True)  # from the hand-set fill (every weight 1), whatever FILL_WEIGHTS holds
    log_eps = torch.tensor(float(np.log(hf.FILL_EPS)), requires_grad=True)
    log_reach = torch.tensor(float(np.log(hf.FILL_REACH)), requires_grad=True)
    params = [log_w] if args.shape_only else [log_w, log_eps, log_reach]

    def weights() -> "torch.Tensor":
        return (log_w - log_w.mean()).exp() if args.shape_only else log_w.exp()

    def error_db(subset: list[dict]) -> dict:
        with torch.no_grad():
            losses = case_losses(subset, weights(), log_eps.exp(), log_reach.exp(), hf.FILL_SIGMA)
        return {kind: float(np.mean([10 * np.log10(np.exp(v)) for v, case in zip(losses.tolist(), subset)
                                     if case["kind"] == kind])) for kind in ("points", "cluster", "scene")
                if any(case["kind"] == kind for case in subset)}
    before = {"learn": error_db(learn), "check": error_db(check)}
    opt = torch.optim.Adam(params, lr=args.lr)
    for it in range(args.steps):
        opt.zero_grad()
        loss = case_losses(learn, weights(), log_eps.exp(), log_reach.exp(), hf.FILL_SIGMA).mean()
        loss.backward()
        opt.step()
        if it % 10 == 0 or it == args.steps - 1:
            print(f"step {it}: loss {loss.item():.4f} weights {np.round(weights().tolist(), 2).tolist()} "
                  f"eps {log_eps.exp().item():.2f} reach {log_reach.exp().item():.3f}", file=sys.stderr)
    after = {"learn": error_db(learn), "check": error_db(check)}
    result = {"photos": len(paths), "scenes": args.scenes, "cases": {"learn": len(learn), "check": len(check)},
              "shape_only": args.shape_only, "weights": [round(v, 3) for v in weights().tolist()], "eps": round(log_eps.exp().item(), 3),
              "reach": round(log_reach.exp().item(), 3), "sigma": hf.FILL_SIGMA,
              "ab_error_db_hand_set": before, "ab_error_db_learned": after}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
