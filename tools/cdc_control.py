"""Why stabilization can raise CDC on a moving camera: a chroma-detail-matched control.

TCVC's CDC compares RGB *histograms* of frames t and t+d, so on a moving camera it also measures
honest content change, and how much a given content change costs depends on the histograms' shape:
narrower (less textured) chroma makes the same pan or zoom cost more. A motion-compensated temporal
filter averages away the model's frame-to-frame incoherent fine chroma (that is its job), which
narrows the histograms. This script separates the two effects on the synthetic clip of
tools/measure_flicker.py (same photos, camera path, H.264 round trip): it runs the network once per
frame, then reports, per variant, CDC at each dilation and the fine chroma detail

    fine ab = mean |ab - box3x3(ab)| (Lab units, model resolution),

including **controls with no temporal filtering at all**: the per-frame prediction spatially
smoothed (ab mixed with its 3x3 box mean, weight ``--mix``). If per-frame smoothing to the
stabilizer's fine-ab level raises CDC more than the stabilizer does, the stabilizer's CDC rise is the
narrowing, not added temporal instability.

    python tools/cdc_control.py [--model M] [--mix 0.5,1.0]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import measure_flicker as mf  # noqa: E402
from runtime.video import temporal  # noqa: E402
from runtime.video.temporal import TemporalStabilizer, box_filter  # noqa: E402
from runtime.image.fastcolor import GREY8_L as _L_OF_GREY  # noqa: E402


def box3(ab: np.ndarray) -> np.ndarray:
    return np.stack([box_filter(c, 1) for c in ab])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="bundle or trainer checkpoint (default: the embedded model)")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--render-size", type=int, default=None)
    ap.add_argument("--shot-frames", type=int, default=60)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mix", default="0.5,1.0", help="weights of the 3x3 box mean in the per-frame smoothing controls")
    args = ap.parse_args(argv)

    from runtime.image.colorizer import Colorizer

    c = Colorizer.load(model=args.model, backend=args.backend, render_size=args.render_size)
    size = tuple(int(x) for x in args.size.split("x"))
    frames = []  # (grey8, L_net, geom, cam, ab): the network runs once per frame
    for grey8, _truth, cam in mf.synthetic_frames(args.shot_frames, size, args.seed, codec=True):
        net_L, geom = c.prepare(_L_OF_GREY[grey8])
        frames.append((grey8, net_L[0, 0], geom, cam, c.predict_ab(net_L)[0]))
    cuts = {i for i in range(1, len(frames)) if frames[i][3].shot != frames[i - 1][3].shot}

    def run(pre=lambda ab: ab, st: TemporalStabilizer | None = None) -> tuple[list[float], float]:
        hists, fine = [], []
        for grey8, L, geom, _cam, ab in frames:
            out = pre(ab)
            if st is not None:
                out = st.update(L, out)
            hists.append(mf.rgb_histograms(c.finish_u8(_L_OF_GREY[grey8], out, geom)))
            fine.append(float(np.abs(out - box3(out)).mean()))
        return mf.cdc_per_dilation(hists, cuts), float(np.mean(fine))

    rows = [("per-frame", run())]
    for m in (float(x) for x in args.mix.split(",") if x):
        rows.append((f"per-frame, spatially smoothed (mix {m:g}), no temporal filter",
                     run(lambda ab, m=m: (1 - m) * ab + m * box3(ab))))
    for s in (0.6, 0.8):
        rows.append((f"stabilized {s:g}", run(st=TemporalStabilizer(s))))
    rows.append(("stabilized 0.6, no motion comp.", run(st=TemporalStabilizer(0.6, motion=False))))
    est = temporal.estimate_translation
    try:  # whole-pixel warps: no bilinear resampling blur of the history
        temporal.estimate_translation = lambda a, b: tuple(float(round(v)) for v in est(a, b))
        rows.append(("stabilized 0.6, whole-pixel warp", run(st=TemporalStabilizer(0.6))))
    finally:
        temporal.estimate_translation = est

    print(f"synthetic clip, {len(frames)} frames, cuts at {sorted(cuts)}; backend {c.backend_name}, render size {c.render_size}\n")
    print("| variant | CDC x1e3 | d=1 | d=2 | d=4 | fine ab |")
    print("|---|---|---|---|---|---|")
    for name, (per_d, fine) in rows:
        print(f"| {name} | {1e3 * np.mean(per_d):.3f} | " + " | ".join(f"{1e3 * v:.3f}" for v in per_d) + f" | {fine:.3f} |")
    c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
