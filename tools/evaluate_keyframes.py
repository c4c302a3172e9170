"""Key-frame propagation measured on clips with real colour (issue 19's video protocol).

    python tools/evaluate_keyframes.py [CLIP ...] [--frames 60] [--model BUNDLE] [--json docs/default-model/keyframes.json]

For each clip (default: ../shared/data/video/*.avi), the true colour of frame 0 is the key frame and the clip is
colorized through the real video pipeline (`colorize_video`: decoder luma, network, reference matching, the
temporal stabilizer at its default strength), once automatic and once with ``--keyframe 0:frame0.png``, into
lossless FFV1 (yuv444p). Each output frame 1..N is compared with the clip's own colour frame: PSNR and CIEDE2000,
key frame against automatic; the mean over frames 1..N and the value at frame N.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CLIPS = sorted((ROOT.parent / "shared" / "data" / "video").glob("*.avi"))


def frames_of(path: Path, limit: int) -> list[np.ndarray]:
    import av

    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            out.append(f.to_ndarray(format="rgb24"))
            if len(out) >= limit:
                break
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="*", type=Path, default=CLIPS)
    ap.add_argument("--frames", type=int, default=60, help="frames after the key frame to score")
    ap.add_argument("--model", default=None, help="bundle or trainer checkpoint (default: the embedded model)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from PIL import Image

    from runtime import Colorizer
    from runtime.image.colorizer import load_backend
    from runtime.image.color import rgb_to_lab
    from runtime.video import VideoOptions, colorize_video
    from trainer.metrics import ciede2000, psnr

    from runtime.model.bundle import resolve

    files = resolve(args.model)  # a bundle runs on ONNX Runtime as the default does; a checkpoint on torch-cpu
    c = Colorizer(load_backend(files, "onnxruntime" if files.onnx else "torch-cpu"), files)
    report = {"frames": args.frames, "model": args.model or "default", "clips": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for clip in args.clips:
            n = args.frames + 1
            truth = frames_of(clip, n)
            key = Path(tmp) / "key.png"
            Image.fromarray(truth[0]).save(key)
            runs = {}
            for name, keyframes in (("automatic", {}), ("keyframe", {0: str(key)})):
                dst = Path(tmp) / f"{name}.mkv"
                opts = VideoOptions(duration=None, codec="ffv1", pix_fmt="yuv444p", progress=False, keyframes=keyframes)
                colorize_video(c, clip, dst, opts, log=lambda m: None)
                runs[name] = frames_of(dst, n)
            rows = {k: {"psnr": [], "ciede2000": []} for k in runs}
            for i in range(1, min(n, len(truth), *(len(v) for v in runs.values()))):
                t = truth[i].astype(np.float32) / 255
                for k, frames in runs.items():
                    o = frames[i].astype(np.float32) / 255
                    rows[k]["psnr"].append(psnr(o, t))
                    rows[k]["ciede2000"].append(float(ciede2000(rgb_to_lab(o), rgb_to_lab(t)).mean()))
            gain = np.array(rows["keyframe"]["psnr"]) - np.array(rows["automatic"]["psnr"])
            report["clips"][clip.name] = {
                "size": list(truth[0].shape[1::-1]), "scored_frames": len(gain),
                **{k: {"psnr_mean": float(np.mean(v["psnr"])), "ciede2000_mean": float(np.mean(v["ciede2000"]))}
                   for k, v in rows.items()},
                "gain_db_mean": float(gain.mean()), "gain_db_last": float(gain[-1]), "gain_db_min": float(gain.min()),
                "gain_db_per_frame": [round(float(g), 3) for g in gain],
            }
            r = report["clips"][clip.name]
            print(f"{clip.name}: +{r['gain_db_mean']:.2f} dB over automatic (frames 1-{len(gain)}), "
                  f"{r['gain_db_last']:+.2f} dB at frame {len(gain)}, min {r['gain_db_min']:+.2f}", flush=True)
    c.close()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
