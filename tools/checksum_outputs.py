#!/usr/bin/env python3
"""SHA-256 of what colorize-gan writes for a fixed set of inputs: run it before and after a refactor
and diff the two listings; any line that differs is an output that changed.

The inputs are the bundled sample photo and images generated here (grey 8/16-bit, RGB, RGBA with
alpha, palette, an odd size, a large one), each through the command line (JPEG, PNG, 16-bit PNG,
WebP, TIFF outputs), the Python API with colour hints (an RGBA hint image and a point list), the
array path, and a short generated clip through the video command when PyAV is
installed (FFV1, lossless, in and out). Backends: ONNX Runtime, and torch CPU when torch is installed. Everything runs on the
embedded default model (or --model).

    python tools/checksum_outputs.py > before.txt   ...refactor...   python tools/checksum_outputs.py > after.txt
    diff before.txt after.txt && echo bit-identical
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's runtime, whatever else is installed (before/after comparisons)
SAMPLE = ROOT / "samples" / "chelsea_grey.jpg"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sha_array(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()


def make_inputs(folder: Path) -> list[Path]:
    """Fixed, seeded inputs covering the decoder's branches."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:181, 0:243]
    grey = ((np.sin(xx / 17.0) + np.cos(yy / 11.0) + 2) * 60 + rng.normal(0, 6, xx.shape)).clip(0, 255).astype(np.uint8)
    items = {
        "grey8.png": Image.fromarray(grey, "L"),
        "grey16.png": Image.fromarray((grey.astype(np.uint16) * 257 + rng.integers(0, 200, grey.shape)).astype(np.uint16)),
        "rgb.jpg": Image.fromarray(np.stack([grey, grey[::-1], grey[:, ::-1]], -1), "RGB"),
        "rgba.png": Image.fromarray(np.dstack([grey, grey, grey, (xx * 255 // 242).astype(np.uint8)]), "RGBA"),
        "palette.png": Image.fromarray(grey, "L").convert("P"),
        "large.png": Image.fromarray(np.kron(grey, np.ones((9, 9), np.uint8))[:1600, :2100], "L"),
    }
    paths = []
    for name, im in items.items():
        p = folder / name
        im.save(p)
        paths.append(p)
    if SAMPLE.is_file():
        paths.append(SAMPLE)
    return paths


def run_cli(args: list[str]) -> None:
    entry = ("import sys\ntry:\n    from runtime.cli.main import main\n"
             "except ImportError:  # the layout before runtime/cli/ became a package\n    from runtime.cli import main\n"
             "sys.exit(main())")
    r = subprocess.run([sys.executable, "-c", entry, *args], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"colorize-gan {' '.join(args)} failed: {r.stderr.strip()}")


def cli_outputs(inputs: list[Path], work: Path, backend: str, model: str | None) -> list[tuple[str, str]]:
    rows = []
    extra = ["--model", model] if model else []
    for fmt in ("same", "png", "webp", "tif"):
        out = work / f"cli-{backend}-{fmt}"
        run_cli([*map(str, inputs), "-o", str(out), "--format", fmt, "--backend", backend, "--quiet", *extra])
        for p in sorted(out.iterdir()):
            rows.append((f"cli/{backend}/{fmt}/{p.name}", sha(p)))
    out = work / f"cli-{backend}-sat"  # 16-bit in, 16-bit PNG out, with a saturation factor and another render size
    run_cli([str(inputs[1]), "-o", str(out / "grey16.png"), "--backend", backend, "--quiet", "--saturation", "1.3",
             "--render-size", "192", *extra])
    rows.append((f"cli/{backend}/sat/grey16.png", sha(out / "grey16.png")))
    return rows


def api_outputs(inputs: list[Path], backend: str, model: str | None) -> list[tuple[str, str]]:
    from runtime import Colorizer

    rows = []
    with Colorizer.load(model, backend=backend) as c:
        for p in inputs:
            with Image.open(p) as im:
                rows.append((f"api/{backend}/{p.name}", sha_array(np.asarray(c.colorize(im)))))
        grey = np.asarray(Image.open(inputs[0]))
        rows.append((f"api/{backend}/array-f32", sha_array(c.colorize_array(grey, saturation=0.8, render_size=128))))
        if c.takes_hints:
            h, w = grey.shape
            hint = np.zeros((h, w, 4), np.uint8)
            hint[40:46, 60:66] = (200, 30, 30, 255)
            hint[120:124, 150:154] = (30, 60, 220, 255)
            im = Image.fromarray(grey, "L")
            rows.append((f"api/{backend}/hint-image", sha_array(np.asarray(c.colorize(im, hints=Image.fromarray(hint, "RGBA"))))))
            pts = [(30, 20, "#c81e1e"), (200, 150, (20, 180, 40), 6)]
            rows.append((f"api/{backend}/hint-points", sha_array(np.asarray(c.colorize(im, hints=pts)))))
    return rows


def make_clip(work: Path) -> tuple[Path, str]:
    """A 12-frame generated clip and the hash of its decoded frames. Lossless FFV1 in and out (below): x264's output
    differs from run to run under load (its threads), which would hide what this script is for."""
    import av

    clip = work / "clip.mkv"
    with av.open(str(clip), "w") as out:
        s = out.add_stream("ffv1", rate=Fraction(12))
        s.width, s.height, s.pix_fmt = 160, 96, "yuv420p"
        yy, xx = np.mgrid[0:96, 0:160]
        for i in range(12):
            g = ((np.sin((xx + 3 * i) / 9.0) + np.cos(yy / 7.0) + 2) * 60).astype(np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.dstack([g, g, g]), format="rgb24")):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    with av.open(str(clip)) as c:
        digest = hashlib.sha256(b"".join(f.to_ndarray(format="gray").tobytes() for f in c.decode(video=0))).hexdigest()
    return clip, digest


def video_outputs(clip: Path, work: Path, backend: str, model: str | None) -> list[tuple[str, str]]:
    import av

    out = work / f"video-{backend}.mkv"
    extra = ["--model", model] if model else []
    run_cli(["video", str(clip), "-o", str(out), "--backend", backend, "--no-progress", "--codec", "ffv1",
             "--pix-fmt", "yuv444p", *extra])
    rows = []
    with av.open(str(out)) as c:  # decoded frames: the encoder's bytes may carry a version string
        for i, frame in enumerate(c.decode(video=0)):
            rows.append((f"video/{backend}/frame{i:02d}", sha_array(frame.to_ndarray(format="rgb24"))))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model bundle (default: the embedded default model)")
    p.add_argument("--backends", nargs="+", default=None, help="default: onnxruntime, and torch-cpu when torch is installed")
    args = p.parse_args(argv)
    backends = args.backends or ["onnxruntime"] + (["torch-cpu"] if importlib.util.find_spec("torch") else [])
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inputs = make_inputs(work / "in")
        rows += [(f"input/{p.name}", sha(p)) for p in inputs]
        clip = None
        if importlib.util.find_spec("av"):
            clip, digest = make_clip(work)
            rows.append(("input/clip.mkv (decoded)", digest))
        for b in backends:
            rows += cli_outputs(inputs, work, b, args.model)
            rows += api_outputs(inputs, b, args.model)
            if clip is not None:
                rows += video_outputs(clip, work, b, args.model)
    for name, digest in rows:
        print(f"{digest}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
