"""Measure chroma flicker of per-frame vs temporally stabilized colorization, and colour accuracy.

Two clips:

* **vtest**: ../shared/data/video/vtest.avi (fixed camera, pedestrians; no colour truth).
* **synthetic**: a moving-camera clip cut from held-out colour photos (not in the training split of
  trainer/data.py with seed 0): two shots of ``--shot-frames`` frames, a pan with a slow zoom and a
  seeded hand-held jitter, then a hard cut to the second photo. The grey frames go through an H.264
  round trip (CRF 23) like real footage; the true colours and the true motion are known.

The model runs once per frame; its ab feeds every variant (per-frame, stabilized at each
``--strengths``, and stabilized without motion compensation), so variants differ only by the filter.

Metrics (lower is steadier):

* **CDC** (TCVC, Liu et al. 2021): Jensen-Shannon divergence (natural log) of the 256-bin histograms
  of each RGB channel of output frames t and t+d, averaged over channels, frames and d in {1, 2, 4}.
  It is blind to where colours are, so it also rises with honest content change: on the synthetic
  clip the truth's own CDC is the floor.
* **tAB static** (vtest): mean |ab_t - ab_t-1| (Lab units, Euclidean over a, b) at model resolution
  over pixels whose L changed by less than 1.5 (5x5 mean) between the frames: colour change where
  nothing moved.
* **warp error** (synthetic): the same difference after warping ab_t-1 by the known camera motion,
  over all pixels seen in both frames (Lai et al. 2018's warping error with exact flow); the truth's
  own warp error (resampling only) is the floor. Frame pairs across the cut are skipped.
* **accuracy** (synthetic): PSNR of output vs true sRGB, and mean chroma error |ab_out - ab_true|
  at full resolution; the grey output (ab = 0) is given for scale.

    python tools/measure_flicker.py [--model M (default: the embedded model)] [--frames 300] [--json out.json]
"""
from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.image.color import lab_to_rgb, rgb_to_lab  # noqa: E402
from runtime.video.temporal import TemporalStabilizer, box_filter, sample_separable  # noqa: E402
from runtime.image.fastcolor import GREY8_L as _L_OF_GREY  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SHOTS = ("beacon-street-sunset.jpg", "kite.jpg")  # both in the held-out validation split (seed 0)
DILATIONS = (1, 2, 4)


# ---------------------------------------------------------------------------------------------
# metrics
def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (nats) of two normalised histograms, as scipy.stats.entropy computes it."""
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log(a[nz] / m[nz])))

    return 0.5 * kl(p) + 0.5 * kl(q)


def rgb_histograms(rgb8: np.ndarray) -> np.ndarray:
    n = rgb8.shape[0] * rgb8.shape[1]
    return np.stack([np.bincount(rgb8[..., c].ravel(), minlength=256) / n for c in range(3)])


def cdc_per_dilation(hists: list[np.ndarray], cuts: set[int] = frozenset()) -> list[float]:
    """TCVC's colour-distribution consistency at each of DILATIONS; pairs spanning a cut are skipped."""
    per_d = []
    for d in DILATIONS:
        vals = [
            np.mean([js_divergence(hists[t][c], hists[t + d][c]) for c in range(3)])
            for t in range(len(hists) - d)
            if not any(t < k <= t + d for k in cuts)
        ]
        per_d.append(float(np.mean(vals)) if vals else math.nan)
    return per_d


def cdc(hists: list[np.ndarray], cuts: set[int] = frozenset()) -> float:
    """TCVC's CDC over a list of per-frame (3, 256) histograms: the mean over the dilations."""
    return float(np.mean(cdc_per_dilation(hists, cuts)))


@dataclass
class Track:
    """Running metrics of one variant."""

    hists: list = field(default_factory=list)
    tab: list = field(default_factory=list)  # per-pair temporal ab difference
    sq_err: list = field(default_factory=list)  # per-frame RGB MSE vs truth
    chroma_err: list = field(default_factory=list)
    chroma: list = field(default_factory=list)  # mean output chroma (colourfulness proxy)
    prev_ab: np.ndarray | None = None

    def summary(self, cuts: set[int]) -> dict:
        out = {"cdc": cdc(self.hists, cuts), "mean_chroma": float(np.mean(self.chroma))}
        if self.tab:
            out["temporal_ab"] = float(np.mean(self.tab))
        if self.sq_err:
            out["psnr"] = float(10 * np.log10(1.0 / np.mean(self.sq_err)))
            out["chroma_err"] = float(np.mean(self.chroma_err))
        return out


# ---------------------------------------------------------------------------------------------
# clips
def vtest_frames(path: Path, limit: int | None):
    import av

    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if limit and i >= limit:
                break
            yield frame.to_ndarray(format="gray"), None, None


@dataclass
class Camera:
    shot: int
    cx: float  # photo coordinates of the frame centre
    cy: float
    s: float  # photo pixels per frame pixel


def camera_path(shot_frames: int, photos: list[np.ndarray], size: tuple[int, int], seed: int) -> list[Camera]:
    rng = np.random.default_rng(seed)
    W, H = size
    cams = []
    for shot, photo in enumerate(photos):
        ph, pw = photo.shape[:2]
        s0 = 0.8 * min(pw / W, ph / H)  # the frame covers 80% of the photo at the start
        for t in range(shot_frames):
            u = t / max(1, shot_frames - 1)
            s = s0 * (1 - 0.12 * u) if shot == 0 else s0 * (0.88 + 0.12 * u)  # zoom in, then out
            half_w, half_h = s * (W - 1) / 2, s * (H - 1) / 2
            room_x, room_y = pw / 2 - half_w - 2, ph / 2 - half_h - 2
            pan = (2 * u - 1) * 0.9  # sweep across the room left in the photo
            cx = pw / 2 + (pan if shot == 0 else 0.3 * pan) * room_x + rng.normal(0, 0.6)
            cy = ph / 2 + (0.3 * math.sin(3 * u) if shot == 0 else -pan) * room_y + rng.normal(0, 0.6)
            cams.append(Camera(shot, cx, cy, s))
    return cams


def frame_grid(cam: Camera, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Photo coordinates (ys, xs) of the frame's pixel centres."""
    W, H = size
    xs = cam.cx + (np.arange(W) - (W - 1) / 2) * cam.s
    ys = cam.cy + (np.arange(H) - (H - 1) / 2) * cam.s
    return ys, xs


def synthetic_frames(shot_frames: int, size: tuple[int, int], seed: int, codec: bool):
    """Yield (grey8, true_rgb float (H, W, 3), camera) for the synthetic clip."""
    from PIL import Image

    photos = []
    for name in SHOTS:
        img = Image.open(DATA / "photos" / name).convert("RGB")
        # Pre-shrink so the camera samples at ~1 photo pixel per frame pixel (no aliasing).
        k = 1.05 * max(size[0] / img.width, size[1] / img.height) / 0.8
        img = img.resize((max(size[0], round(img.width * k)), max(size[1], round(img.height * k))), Image.Resampling.LANCZOS)
        photos.append(np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0)
    photos_hwc = [p.transpose(1, 2, 0) for p in photos]
    cams = camera_path(shot_frames, photos_hwc, size, seed)
    truths, greys = [], []
    for cam in cams:
        ys, xs = frame_grid(cam, size)
        rgb, _ = sample_separable(photos[cam.shot], ys, xs)
        rgb = np.clip(rgb.transpose(1, 2, 0), 0, 1)
        L = rgb_to_lab(rgb)[..., 0]
        grey8 = np.clip(np.searchsorted(_L_OF_GREY, L), 0, 255).astype(np.uint8)  # the grey level whose L is L
        truths.append(rgb)
        greys.append(grey8)
    if codec:
        greys = h264_roundtrip(greys)
    for g, rgb, cam in zip(greys, truths, cams):
        yield g, rgb, cam


def h264_roundtrip(greys: list[np.ndarray], fps: int = 25, crf: int = 23) -> list[np.ndarray]:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.height, vs.width = greys[0].shape
        vs.pix_fmt = "yuv420p"
        vs.codec_context.options = {"crf": str(crf)}
        for i, g in enumerate(greys):
            f = av.VideoFrame.from_ndarray(np.repeat(g[..., None], 3, axis=2), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, fps)
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
    buf.seek(0)
    with av.open(buf) as c:
        return [f.to_ndarray(format="gray") for f in c.decode(video=0)]


# ---------------------------------------------------------------------------------------------
def measure(colorizer, frames, variants: dict[str, TemporalStabilizer | None], size_hint: str,
            batch: int = 4, progress: bool = True) -> dict:
    tracks = {name: Track() for name in variants}
    truth_track = Track()
    cuts: set[int] = set()
    prev = None  # (L_net content, camera, true ab at model res)
    n = 0
    t0 = time.perf_counter()
    pending: list = []

    def flush() -> None:
        nonlocal prev, n
        ab_all = colorizer.predict_ab(np.concatenate([p[1] for p in pending]))
        for (grey8, net_L, geom, truth, cam), ab in zip(pending, ab_all):
            L_full = _L_OF_GREY[grey8]
            sl = (slice(geom.top, geom.top + geom.h), slice(geom.left, geom.left + geom.w))
            L_net = net_L[0, 0][sl]
            if cam is not None and n and cam.shot != prev[1].shot:
                cuts.add(n)
            true_lab = rgb_to_lab(truth) if truth is not None else None
            for name, st in variants.items():
                tr = tracks[name]
                ab_v = st.update(net_L[0, 0], ab) if st is not None else ab
                rgb8 = colorizer.finish_u8(L_full, ab_v, geom)
                tr.hists.append(rgb_histograms(rgb8))
                ab_c = ab_v[:, sl[0], sl[1]]
                tr.chroma.append(float(np.hypot(ab_c[0], ab_c[1]).mean()))
                if prev is not None and n not in cuts:
                    tr.tab.append(_temporal_diff(ab_c, tr.prev_ab, L_net, prev, cam, geom))
                tr.prev_ab = ab_c
                if truth is not None:
                    out = rgb8.astype(np.float32) / 255
                    tr.sq_err.append(float(np.mean((out - truth) ** 2)))
                    tr.chroma_err.append(float(np.hypot(*(rgb_to_lab(out)[..., 1:] - true_lab[..., 1:]).transpose(2, 0, 1)).mean()))
            if truth is not None:  # the truth as a "variant": the floor of each flicker metric
                true8 = (truth * 255 + 0.5).astype(np.uint8)
                truth_track.hists.append(rgb_histograms(true8))
                true_ab = _resize_ab(true_lab[..., 1:].transpose(2, 0, 1), geom)
                truth_track.chroma.append(float(np.hypot(true_ab[0], true_ab[1]).mean()))
                if prev is not None and n not in cuts:
                    truth_track.tab.append(_temporal_diff(true_ab, truth_track.prev_ab, L_net, prev, cam, geom))
                truth_track.prev_ab = true_ab
                grey = lab_to_rgb(np.stack([L_full, np.zeros_like(L_full), np.zeros_like(L_full)], axis=-1))
                truth_track.sq_err.append(float(np.mean((grey - truth) ** 2)))  # "psnr" of the grey output
                truth_track.chroma_err.append(float(np.hypot(true_lab[..., 1], true_lab[..., 2]).mean()))
            prev = (L_net, cam)
            n += 1
        pending.clear()
        if progress:
            print(f"\r  {size_hint}: {n} frames, {n / (time.perf_counter() - t0):.1f} fps", end="", file=sys.stderr)

    for grey8, truth, cam in frames:
        net_L, geom = colorizer.prepare(_L_OF_GREY[grey8])
        pending.append((grey8, net_L, geom, truth, cam))
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    if progress:
        print(file=sys.stderr)
    result = {"frames": n, "cuts": sorted(cuts), "variants": {k: t.summary(cuts) for k, t in tracks.items()}}
    if truth_track.hists:
        s = truth_track.summary(cuts)
        result["truth"] = {"cdc": s["cdc"], "warp_error": s["temporal_ab"], "mean_chroma": s["mean_chroma"]}
        result["grey_output"] = {"psnr": s["psnr"], "chroma_err": s["chroma_err"]}
    return result


def _resize_ab(ab_full: np.ndarray, geom) -> np.ndarray:
    """Full-resolution ab -> model-resolution content grid (pixel-centre aligned bilinear)."""
    ys = (np.arange(geom.h) + 0.5) * geom.full_h / geom.h - 0.5
    xs = (np.arange(geom.w) + 0.5) * geom.full_w / geom.w - 0.5
    # Box-average first so the sample is not aliased (frames are ~1.25x the model resolution).
    k = max(1, int(round(geom.full_h / geom.h / 2)))
    smooth = np.stack([box_filter(c, k) for c in ab_full]) if k > 1 else ab_full
    out, _ = sample_separable(smooth, ys, xs)
    return out


def _temporal_diff(ab: np.ndarray, prev_ab: np.ndarray, L_net: np.ndarray, prev, cam, geom) -> float:
    prev_L, prev_cam = prev
    if cam is None:
        # Fixed camera: compare where the luminance did not change (static regions).
        static = box_filter(np.abs(L_net - prev_L), 2) < 1.5
        if not static.any():
            return 0.0
        return float(np.hypot(*(ab - prev_ab))[static].mean())
    # Known camera motion: map this frame's model-res pixels to the previous frame's and warp.
    H, W = geom.full_h, geom.full_w
    fx = (np.arange(geom.w) + 0.5) * W / geom.w - 0.5  # full-res coords of model pixel centres
    fy = (np.arange(geom.h) + 0.5) * H / geom.h - 0.5
    px = cam.cx + (fx - (W - 1) / 2) * cam.s  # photo coords
    py = cam.cy + (fy - (H - 1) / 2) * cam.s
    qx = (px - prev_cam.cx) / prev_cam.s + (W - 1) / 2  # previous frame, full-res
    qy = (py - prev_cam.cy) / prev_cam.s + (H - 1) / 2
    mx = (qx + 0.5) * geom.w / W - 0.5  # previous frame, model-res
    my = (qy + 0.5) * geom.h / H - 0.5
    warped, valid = sample_separable(prev_ab, my, mx)
    return float(np.hypot(*(ab - warped))[valid].mean())


def table(results: dict) -> str:
    lines = []
    for clip, r in results["clips"].items():
        lines.append(f"\n### {clip} ({r['frames']} frames, render {results['render_size']}, cuts at {r['cuts']})\n")
        has_truth = "truth" in r
        tname = "warp error" if has_truth else "tAB static"
        head = f"| variant | CDC x1e3 | {tname} | mean chroma |" + (" PSNR dB | chroma err |" if has_truth else "")
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        for name, v in r["variants"].items():
            row = f"| {name} | {1e3 * v['cdc']:.3f} | {v['temporal_ab']:.3f} | {v['mean_chroma']:.2f} |"
            if has_truth:
                row += f" {v['psnr']:.2f} | {v['chroma_err']:.2f} |"
            lines.append(row)
        if has_truth:
            t, g = r["truth"], r["grey_output"]
            lines.append(f"| truth (floor) | {1e3 * t['cdc']:.3f} | {t['warp_error']:.3f} | {t['mean_chroma']:.2f} | - | - |")
            lines.append(f"| grey output (ab = 0) | - | - | 0 | {g['psnr']:.2f} | {g['chroma_err']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="bundle or trainer checkpoint (default: the embedded model)")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--render-size", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--video", default=str(DATA / "video" / "vtest.avi"))
    ap.add_argument("--frames", type=int, default=0, help="limit vtest frames (0 = all)")
    ap.add_argument("--shot-frames", type=int, default=60, help="frames per synthetic shot (two shots)")
    ap.add_argument("--size", default="640x360", help="synthetic frame size WxH")
    ap.add_argument("--no-codec", action="store_true", help="skip the H.264 round trip of the synthetic grey frames")
    ap.add_argument("--strengths", default="0.6,0.8", help="stabilizer strengths to compare (first = default)")
    ap.add_argument("--clips", default="synthetic,vtest")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)

    from runtime.image.colorizer import Colorizer

    colorizer = Colorizer.load(model=args.model, backend=args.backend, render_size=args.render_size, threads=args.threads)
    strengths = [float(s) for s in args.strengths.split(",") if s]

    def variants() -> dict:
        v: dict = {"per-frame": None}
        for s in strengths:
            v[f"stabilized {s:g}"] = TemporalStabilizer(s)
        v[f"stabilized {strengths[0]:g}, no motion comp."] = TemporalStabilizer(strengths[0], motion=False)
        return v

    size = tuple(int(x) for x in args.size.split("x"))
    results = {"model": args.model or "default", "backend": colorizer.backend_name, "render_size": colorizer.render_size,
               "strengths": strengths, "clips": {}}
    for clip in args.clips.split(","):
        if clip == "synthetic":
            frames = synthetic_frames(args.shot_frames, size, args.seed, codec=not args.no_codec)
        elif clip == "vtest":
            frames = vtest_frames(Path(args.video), args.frames or None)
        else:
            raise SystemExit(f"unknown clip {clip!r}")
        results["clips"][clip] = measure(colorizer, frames, variants(), clip)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
