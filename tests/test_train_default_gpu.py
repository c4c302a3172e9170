"""tools/train_default_gpu.sh, the GPU recipe of the default model, run for real on the CPU at toy scale:
both phases, the GAN epoch sizing from phase 1's log, and what it brings back (weights, EMA, logs, specs)."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile

import pytest
import torch
from safetensors.torch import load_file

from runtime.generator import UNetGenerator
from runtime.spec import ModelSpec

from test_trainer import ROOT, make_images


@pytest.mark.slow
def test_recipe_script_runs_both_phases_and_packs_results(tmp_path):
    data = make_images(tmp_path / "photos", n=16, size=(96, 128))
    out, runs = tmp_path / "out", tmp_path / "runs"
    env = {**os.environ, "DATA": str(data), "OUT": str(out), "RUNS": str(runs), "VARIANTS": "A", "DEVICE": "cpu",
           "WORKERS": "0", "BATCH": "2", "REPEAT": "1", "PHASE1_MIN": "0.05", "PHASE2_MIN": "0.1", "OMP_NUM_THREADS": "1",
           "PY": sys.executable}
    r = subprocess.run(["bash", "tools/train_default_gpu.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[A] phase 2: GAN" in r.stdout and "[A] done" in r.stdout, r.stdout
    for phase in ("l1", "gan"):
        raw = load_file(str(out / f"A-{phase}-generator.safetensors"))
        ema = load_file(str(out / f"A-{phase}-generator_ema.safetensors"))
        assert raw.keys() == ema.keys()
        assert any(not torch.equal(raw[k], ema[k]) for k in raw if raw[k].is_floating_point())
        UNetGenerator(ModelSpec()).load_state_dict(ema)  # the recipe trains the default architecture
    with tarfile.open(out / "meta.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"meta/logs/A-l1.log", "meta/logs/A-gan.log", "meta/A-l1/spec.json", "meta/A-gan/state.json"} <= names
