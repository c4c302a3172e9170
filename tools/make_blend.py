"""Put a regression model's decoder beside a distribution model's, on the distribution model's encoder: a blend
(spec.ab_head "blend", runtime/model/effnet_unet.py) to fine-tune and export.

    python tools/make_blend.py runs/campaign2/eval/dist2_step1888 runs/prev/default.json -o runs/blend/init
    python -m trainer.train --init runs/blend/init --train-only regression_decoder ...   # fit it to the new encoder

The two models must be the same kind of network (encoder, hints, hint levels, fusion), as two fine-tunes of one model
are. The new checkpoint holds the distribution model's weights as they are (encoder, its decoder, its head and prior)
and the regression model's decoder and head under ``regression_decoder.``; its encoder is left out. The blend's mix
starts at spec's defaults (ab_blend 0.5, ab_regression_gain 1.0; export sets the served ones). ``sources.json`` names
the two models.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MATCH = ("encoder", "hints", "hint_levels", "fusion", "fusion_dim", "l_scale", "l_shift", "ab_scale")
ENCODER_PARTS = ("encoder.", "hint_in.")


def make_blend(distribution: str, regression: str, out: Path) -> Path:
    from safetensors.torch import load_file, save_file

    from runtime.model.generator import build_generator
    from trainer.checkpoint import init_source

    d_spec, d_weights, _ = init_source(distribution)
    r_spec, r_weights, _ = init_source(regression)
    if d_spec.ab_head != "distribution" or r_spec.ab_head != "regression":
        raise SystemExit(f"make_blend: need a distribution model and a regression model, got {d_spec.ab_head!r} and "
                         f"{r_spec.ab_head!r}")
    differ = [k for k in MATCH if getattr(d_spec, k) != getattr(r_spec, k)]
    if differ:
        raise SystemExit(f"make_blend: the two models differ in {', '.join(differ)}")
    spec = dataclasses.replace(d_spec, ab_head="blend", ab_gain=1.0)
    state = {k: v.float() for k, v in load_file(str(d_weights)).items()}
    state.update({f"regression_decoder.{k}": v.float() for k, v in load_file(str(r_weights)).items()
                  if not k.startswith(ENCODER_PARTS)})
    g = build_generator(spec)
    g.load_state_dict(state, strict=True)  # every weight of the blend comes from one of the two
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(spec.to_json(), encoding="utf-8")
    save_file({k: v.contiguous() for k, v in g.state_dict().items()}, str(out / "generator.safetensors"))
    (out / "sources.json").write_text(json.dumps({"distribution": str(distribution), "regression": str(regression),
                                                  "encoder_from": "distribution"}, indent=2) + "\n", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("distribution", help="checkpoint, run folder or bundle with a distribution head (its encoder is kept)")
    ap.add_argument("regression", help="checkpoint, run folder or bundle with a regression head (its decoder is added)")
    ap.add_argument("-o", "--output", type=Path, required=True, help="the new checkpoint folder")
    args = ap.parse_args(argv)
    try:
        out = make_blend(args.distribution, args.regression, args.output)
    except FileNotFoundError as exc:
        print(f"make_blend: {exc}", file=sys.stderr)
        return 2
    print(f"blend checkpoint: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
