"""Give an exported bundle the scene graph it lacks (NAME_scene.onnx, from its NAME.safetensors).

    python tools/add_scene_graph.py runtime/model/weights/default.json [--parity-images ../shared/data/photos]

Bundles exported before the reference matcher compared whole pictures have no scene graph; the runtime then skips
that comparison. This writes it beside the bundle, checks it against torch and records it in NAME.json (sha256,
parity, exporter); the main graphs and weights are left as they are.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path, help="the bundle's .json")
    ap.add_argument("--parity-images", type=Path, default=None, help="folder of real images for the parity check")
    ap.add_argument("--render-size", type=int, default=256)
    args = ap.parse_args(argv)
    from trainer.export_scene import add_scene_graph, bundle_half_weights, scene_tolerance

    worst = add_scene_graph(args.bundle, args.parity_images, args.render_size)
    tolerance = scene_tolerance(bundle_half_weights(args.bundle))
    print(f"scene graph parity (ORT CPU vs torch, relative): {worst:.1e} (tolerance {tolerance:g})")
    return 0 if worst <= tolerance else 1


if __name__ == "__main__":
    raise SystemExit(main())
