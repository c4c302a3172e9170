"""Past one machine (docs/cluster.md): --shard auto from Slurm and Kubernetes variables, and the shipped Slurm
array script and Kubernetes Indexed Job run as their schedulers would run them (the variables simulated)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from process_helpers import colorize_gan_command
from runtime.cli.batch import shard_from_environment

ROOT = Path(__file__).resolve().parent.parent
SBATCH = ROOT / "docs" / "cluster" / "colorize-array.sbatch"
JOB = ROOT / "docs" / "cluster" / "colorize-indexed-job.yaml"


@pytest.mark.parametrize("env, shard", [
    ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "8"}, (1, 8)),
    ({"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "8"}, (8, 8)),
    ({"SLURM_ARRAY_TASK_ID": "14", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_STEP": "2",
      "SLURM_ARRAY_TASK_COUNT": "4"}, (3, 4)),
    ({"JOB_COMPLETION_INDEX": "0", "COLORIZE_GAN_SHARD_COUNT": "5"}, (1, 5)),
    ({"JOB_COMPLETION_INDEX": "4", "COLORIZE_GAN_SHARD_COUNT": "5"}, (5, 5)),
    ({"COLORIZE_GAN_SHARD": "2/3", "SLURM_ARRAY_TASK_ID": "0"}, (2, 3)),  # set by hand: wins
])
def test_shard_auto_reads_the_scheduler(env, shard):
    assert shard_from_environment(env)[0] == shard


@pytest.mark.parametrize("env, message", [
    ({}, "no scheduler variables found"),
    ({"JOB_COMPLETION_INDEX": "2"}, "COLORIZE_GAN_SHARD_COUNT"),
    ({"JOB_COMPLETION_INDEX": "5", "COLORIZE_GAN_SHARD_COUNT": "5"}, "outside 0..4"),
    ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "3"}, "--array=0-2"),
    ({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "3"}, "be integers"),
    ({"COLORIZE_GAN_SHARD": "4/3"}, "1 <= I <= N"),
    ({"COLORIZE_GAN_SHARD": "auto"}, "wants I/N"),
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "8"}, "_MIN must be set"),  # no guessing the first ID
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_STEP": "0",
      "SLURM_ARRAY_TASK_COUNT": "8"}, "must be positive"),
])
def test_shard_auto_says_what_is_missing(env, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        shard_from_environment(env)


def test_shard_auto_without_a_scheduler_is_one_line_exit_2(tmp_path, grey_image):
    Image.fromarray(grey_image).save(tmp_path / "a.png")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "JOB_COMPLETION", "COLORIZE_GAN_SHARD"))}
    proc = subprocess.run(colorize_gan_command() + [str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--shard", "auto"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no scheduler variables" in proc.stderr
    assert not (tmp_path / "o").exists()


def _tree(folder: Path, grey: np.ndarray, n: int = 9) -> list[str]:
    for i in range(n):
        sub = folder / ("" if i % 3 == 0 else f"roll{i % 3}")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.roll(grey, 7 * i, axis=1)).save(sub / f"p{i}.png")
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))


def _outputs(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))


def test_slurm_array_script_colorizes_every_file_once_and_resumes(tmp_path, grey_image, tiny_bundle):
    """docs/cluster/colorize-array.sbatch under bash, as three array tasks (IDs 1-3): every file of the tree in
    exactly one task's report, all outputs written; then a half-done shard: its task run again writes only the
    missing files."""
    src, out = tmp_path / "in", tmp_path / "out"
    names = _tree(src, grey_image)
    env = dict(os.environ, COLORIZE_GAN=" ".join(colorize_gan_command()), SLURM_ARRAY_TASK_MIN="1",
               SLURM_ARRAY_TASK_COUNT="3")

    def task(i: int) -> dict:
        proc = subprocess.run(["bash", str(SBATCH), str(src), str(out), "--model", str(tiny_bundle)],
                              env=dict(env, SLURM_ARRAY_TASK_ID=str(i)), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return json.loads((out / ".reports" / f"shard-{i}.json").read_text())

    reports = {i: task(i) for i in (1, 2, 3)}
    seen = [Path(r["input"]).relative_to(src).as_posix() for rep in reports.values() for r in rep["results"]]
    assert sorted(seen) == names  # each file in exactly one shard
    assert _outputs(out) == names
    assert all(rep["summary"]["ok"] == len(rep["results"]) for rep in reports.values())
    busiest = max(reports, key=lambda i: len(reports[i]["results"]))
    mine = [Path(r["output"]) for r in reports[busiest]["results"]]
    assert len(mine) >= 2
    for p in mine[: len(mine) // 2]:  # the shard was preempted half-way
        p.unlink()
    again = task(busiest)
    assert again["summary"]["ok"] == len(mine) // 2 and again["summary"]["skipped"] == len(mine) - len(mine) // 2
    assert _outputs(out) == names


def test_kubernetes_indexed_job_command_covers_the_tree(tmp_path, grey_image, tiny_bundle):
    """The container command of docs/cluster/colorize-indexed-job.yaml, run once per completion index with the
    Job's variables (the shard count is the manifest's own, which must equal its completions)."""
    text = JOB.read_text()
    completions = int(re.search(r"^\s*completions:\s*(\d+)", text, re.M).group(1))
    count = int(re.search(r'name: COLORIZE_GAN_SHARD_COUNT\s*\n\s*value: "(\d+)"', text).group(1))
    assert count == completions and "completionMode: Indexed" in text
    command = json.loads(re.search(r"command: (\[.*\])", text).group(1))
    assert command[0] == "colorize-gan" and "--shard" in command and "--skip-existing" in command
    src, out = tmp_path / "in", tmp_path / "out"
    names = _tree(src, grey_image, n=12)
    args = [str(src) if a == "/data/in" else str(out) if a == "/data/out" else a for a in command[1:]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    done = []
    # completions is 32 in the manifest; the same command with 4 indexes keeps the test short
    for index in range(4):
        proc = subprocess.run(colorize_gan_command() + args + ["--json", "--model", str(tiny_bundle)], capture_output=True,
                              text=True, timeout=300, env=dict(env, JOB_COMPLETION_INDEX=str(index), COLORIZE_GAN_SHARD_COUNT="4"))
        assert proc.returncode == 0, proc.stderr
        assert f"shard {index + 1}/4 (Kubernetes completion index {index} of 4)" in proc.stderr
        done += [Path(r["input"]).relative_to(src).as_posix() for r in json.loads(proc.stdout)["results"]]
    assert sorted(done) == names and _outputs(out) == names
    shutil.rmtree(out)
