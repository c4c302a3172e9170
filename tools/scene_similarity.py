"""How alike the scene graph finds pictures (the reference matcher's scene gate, runtime/image/reference.py).

    python tools/scene_similarity.py --data ../shared/data/mix ../shared/data/photos --val-count 1000 10 \
        [--count 100] [--split training] [--clips ../shared/data/video] [--json docs/default-model/reference_scene_similarity.json]

Cosine similarity of the unit scene vectors (runtime/backends/scene.py, the embedded model unless --model), at the
runtime's render size, for: each of ``--count`` photos of the split and a crop of it (the stills protocol's related
reference: tools/evaluate_reference.py ``moved``); each photo and an unrelated one (photo i and photo i + n/2); and,
for each clip in ``--clips``, frame 0 against every 30th frame of the first 600, and the clips' first frames against
each other's. Percentiles (0, 5, 50, 95, 100) per kind; the clip values in full.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))


def main(argv: list[str] | None = None) -> int:
    from evaluate_reference import moved, photo_arguments, photo_set

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    photo_arguments(ap, 100, "training")
    ap.add_argument("--clips", type=Path, default=None, help="a folder of video clips")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from runtime import Colorizer

    c = Colorizer.load(args.model, backend="onnxruntime")
    enc = c.scene_encoder()
    if enc is None:
        raise SystemExit("scene_similarity: the model has no scene graph")

    def vec(rgb8: np.ndarray) -> np.ndarray:
        return enc(c.prepare_src8(rgb8)[0]).vector  # the reference is seen by its own luminance, as the picture is

    photos = [(t * 255 + 0.5).astype(np.uint8) for t in photo_set(args)]
    rng = np.random.default_rng(args.seed)
    vecs = [vec(p) for p in photos]
    n = len(photos)
    related = [float(vecs[i] @ vec(moved(p, rng, mirror=i % 2 == 1))) for i, p in enumerate(photos)]
    unrelated = [float(vecs[i] @ vecs[(i + n // 2) % n]) for i in range(n)]
    pct = (0, 5, 50, 95, 100)
    report: dict = {"split": args.split, "photos": n, "percentiles": list(pct),
                    "photo_and_a_crop_of_it": np.percentile(related, pct).round(3).tolist(),
                    "photo_and_an_unrelated_one": np.percentile(unrelated, pct).round(3).tolist()}
    if args.clips:
        import av

        firsts = {}
        for clip in sorted(p for p in args.clips.iterdir() if p.is_file()):
            frames = {}
            with av.open(str(clip)) as f:
                for k, fr in enumerate(f.decode(video=0)):
                    if k % 30 == 0:
                        frames[k] = vec(fr.to_ndarray(format="rgb24"))
                    if k >= 600:
                        break
            firsts[clip.name] = frames[0]
            report[f"{clip.name}: frame 0 against frame k"] = {k: round(float(frames[0] @ v), 3) for k, v in frames.items() if k}
        names = sorted(firsts)
        report["first frames of different clips"] = {f"{a} / {b}": round(float(firsts[a] @ firsts[b]), 3)
                                                     for i, a in enumerate(names) for b in names[i + 1:]}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
