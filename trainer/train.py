"""Train the colorization cGAN: ``colorize-gan-train --data FOLDER --out RUN`` (or under torchrun).

The loop is flat and reads top to bottom: parse arguments -> (maybe) join the process group ->
find and split images -> build G, D and the GAN step -> (maybe) resume -> for each epoch: L1-only
pretraining epochs first, then GAN epochs; checkpoint every N steps and at each epoch end;
validate on rank 0 (metrics + contact sheet + one CSV row). ``--resume RUN`` continues the same
schedule from the latest checkpoint (the saved arguments win over the command line's, except
for the run-control options listed in RUN_CONTROL).

Under ``torchrun --nproc_per_node N`` each rank takes its share of every epoch's shuffled order;
backend NCCL on CUDA, gloo on CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from runtime.model.generator import build_generator
from runtime.model.spec import AB_HEADS, ENCODERS, ModelSpec

from . import checkpoint, colour_classes
from .data import CropDataset, load_validation
from .files import split_folders
from .ema import EMA
from .hints import sample_hints
from .labtorch import batch_to_network
from .networks import build_discriminator
from .step import GANStep
from .validation import log_csv, validate

# Options that may differ between the original run and a resumed one.
RUN_CONTROL = {"resume", "max_steps", "time_limit", "workers", "threads", "device", "ckpt_every", "keep", "quiet"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="colorize-gan-train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = p.add_argument_group("data")
    d.add_argument("--data", nargs="+", help="folder(s) of colour images, searched recursively (jpg, png, webp, tiff); e.g. COCO "
                   "train2017/; each folder is split on its own")
    d.add_argument("--out", default="runs/colorize", help="run folder: checkpoints, samples, log.csv")
    d.add_argument("--val-count", type=int, nargs="+", default=[10],
                   help="images held out for validation (fixed by --seed): one count for every --data folder, or one each")
    d.add_argument("--val-limit", type=int, default=200,
                   help="validate on at most this many held-out images after each epoch (colorize-gan-evaluate scores them all)")
    d.add_argument("--train-count", type=int, default=None, help="training images (default: all the rest); the paper uses 8000")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--crop-size", type=int, default=128, help="training crop size (multiple of 2**depth)")
    d.add_argument("--load-size", type=int, default=384, help="images are decoded with their long side at this size")
    d.add_argument("--scale-min", type=float, default=0.2, help="smallest crop area fraction of the random resized crop")
    d.add_argument("--repeat", type=int, default=1, help="crops per image per epoch (small data sets)")
    d.add_argument("--no-cache", dest="cache", action="store_false", help="decode from disk every time instead of caching in RAM")
    d.add_argument("--val-size", type=int, default=256, help="validation render size (long side)")
    m = p.add_argument_group("model")
    defaults = ModelSpec()
    m.add_argument("--encoder", default=defaults.encoder, choices=list(ENCODERS),
                   help="unet: the paper's U-Net; efficientnet-lite0 / -lite2: ImageNet-pretrained encoder (needs the train extra; "
                        "Lite2 has about twice Lite0's compute)")
    m.add_argument("--hints", action="store_true", help="the generator takes colour hints, trained with simulated ones (efficientnet-lite encoders)")
    m.add_argument("--hint-levels", action="store_true",
                   help="the hints also enter every decoder level (needs --hints; with --init, adds them to a hint model)")
    m.add_argument("--hint-p-none", type=float, default=0.5, help="fraction of training crops with no hints at all")
    m.add_argument("--ab-head", default=defaults.ab_head, choices=list(AB_HEADS),
                   help="regression: one ab per pixel, L1; distribution: probabilities over in-gamut ab bins, rebalanced "
                        "cross-entropy, decoded in the graph (efficientnet-lite encoders; with --init, replaces a regression head); "
                        "blend: a distribution decoder and a regression decoder on one encoder, their ab mixed in the graph (tools/make_blend.py)")
    m.add_argument("--ab-temperature", type=float, default=defaults.ab_temperature,
                   help="distribution head: the annealed mean's temperature used in training and validation "
                        "(the served one is set at export)")
    m.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                   help="efficientnet-lite encoders: start from random weights instead of ImageNet (tests, ablations)")
    m.add_argument("--depth", type=int, default=defaults.depth)
    m.add_argument("--ngf", type=int, default=defaults.ngf)
    m.add_argument("--max-mult", type=int, default=defaults.max_mult)
    m.add_argument("--no-fusion", dest="fusion", action="store_false", help="ablation: no global fusion layer")
    m.add_argument("--fusion-dim", type=int, default=defaults.fusion_dim)
    m.add_argument("--fusion-level", type=int, default=defaults.fusion_level)
    m.add_argument("--norm", default=defaults.norm, choices=["batch", "instance", "none"])
    m.add_argument("--upsample", default=defaults.upsample, choices=["convtranspose", "resize"])
    m.add_argument("--dropout", type=float, default=defaults.dropout)
    m.add_argument("--ndf", type=int, default=64, help="discriminator width")
    o = p.add_argument_group("optimisation")
    o.add_argument("--batch-size", type=int, default=16, help="per process")
    o.add_argument("--pretrain-epochs", type=int, default=0, help="L1-only generator epochs before the GAN phase")
    o.add_argument("--epochs", type=int, default=10, help="GAN epochs after pretraining")
    o.add_argument("--decay-epochs", type=int, default=0, help="linearly decay the learning rate to 0 over the last N epochs")
    o.add_argument("--lr", type=float, default=2e-4)
    o.add_argument("--lr-d", type=float, default=None, help="discriminator learning rate (default: --lr)")
    o.add_argument("--encoder-lr", type=float, default=0.1, metavar="FACTOR",
                   help="efficientnet-lite encoders: the pretrained encoder learns at --lr times this; 0 freezes it (decoder-only stage)")
    o.add_argument("--train-only", nargs="+", default=None, metavar="MODULE",
                   help="train only these modules of the generator (e.g. regression_decoder: a blend's regression "
                        "decoder beside a trained distribution model); the rest frozen, its BatchNorm and dropout as served")
    o.add_argument("--head-lr", type=float, default=10.0, metavar="FACTOR",
                   help="distribution head: its 1x1 logits layer learns at --lr times this (a new head on a trained "
                        "decoder must grow from its initial scale)")
    o.add_argument("--beta1", type=float, default=0.5)
    o.add_argument("--lambda-l1", type=float, default=None,
                   help="weight of L1 (default 100; with a distribution head L1 of its decoded ab, default 0: L1 pulls "
                        "the colour back towards the median; with a blend head L1 of its regression head)")
    o.add_argument("--lambda-ce", type=float, default=1.0, help="distribution head: weight of the rebalanced cross-entropy")
    o.add_argument("--rebalance", type=float, default=0.5, metavar="LAMBDA",
                   help="distribution head: weights 1 / ((1 - LAMBDA) prior + LAMBDA / bins): 1 = no rebalancing, "
                        "towards 0 = inverse colour frequency; in (0, 1] (Zhang et al.: 0.5)")
    o.add_argument("--gan-mode", default="vanilla", choices=["vanilla", "lsgan"], help="vanilla = BCE on logits (the paper)")
    o.add_argument("--real-label", type=float, default=1.0, help="target for real patches (<1: one-sided label smoothing)")
    o.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="keep a moving average of the generator's weights with this decay (e.g. 0.999) for validation, "
                        "export and inference; 0 = off (the paper)")
    r = p.add_argument_group("run control")
    r.add_argument("--resume", default=None, help="run folder or checkpoint to continue (same schedule)")
    r.add_argument("--init", default=None, help="start a new schedule from this checkpoint's weights (fine-tuning, e.g. the GAN phase "
                   "from an L1-pretrained generator) or a model bundle's (runtime/model/weights/default.json); the model "
                   "options come from it, except --hint-levels and --ab-head, which a fine-tune may add")
    r.add_argument("--max-steps", type=int, default=None, help="stop (with a checkpoint) after this many steps in total")
    r.add_argument("--time-limit", type=float, default=None, help="stop (with a checkpoint) after this many minutes")
    r.add_argument("--ckpt-every", type=int, default=500, help="checkpoint every N steps")
    r.add_argument("--keep", type=int, default=3, help="checkpoints kept")
    r.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    r.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.resume:
        saved = json.loads((checkpoint.resolve(args.resume) / "state.json").read_text())["args"]
        for key, value in saved.items():
            if key not in RUN_CONTROL:
                setattr(args, key, value)
    if args.init and not args.resume:
        hint_levels, ab_head = args.hint_levels, args.ab_head
        try:
            init_spec = checkpoint.init_source(args.init)[0]
        except FileNotFoundError as exc:
            p.error(f"--init: {exc}")
        for key, value in init_spec.to_dict().items():
            if hasattr(args, key) and key not in ("ab_temperature",):
                setattr(args, key, value)
        args.hint_levels = args.hint_levels or hint_levels  # the model options a fine-tune may add
        if ab_head != defaults.ab_head:
            args.ab_head = ab_head
    if not args.data:
        p.error("--data is required (unless --resume)")
    if isinstance(args.data, str):  # a run saved before --data took several folders
        args.data = [args.data]
    if isinstance(args.val_count, int):
        args.val_count = [args.val_count]
    if len(args.val_count) not in (1, len(args.data)):
        p.error(f"--val-count takes one count or one per --data folder ({len(args.data)})")
    if args.hints and args.encoder == "unet":
        p.error("--hints needs an efficientnet-lite encoder")
    if args.hint_levels and not args.hints:
        p.error("--hint-levels needs --hints")
    if args.lambda_l1 is None:
        args.lambda_l1 = 0.0 if args.ab_head == "distribution" else 100.0
    if not 0 < args.rebalance <= 1:
        p.error("--rebalance must be in (0, 1]")
    try:
        spec_from_args(args)
    except ValueError as exc:
        p.error(str(exc))
    return args


def spec_from_args(args: argparse.Namespace) -> ModelSpec:
    return ModelSpec(encoder=args.encoder, hints=args.hints, hint_levels=args.hint_levels, depth=args.depth, ngf=args.ngf,
                     max_mult=args.max_mult, fusion=args.fusion, fusion_dim=args.fusion_dim, fusion_level=args.fusion_level,
                     norm=args.norm, upsample=args.upsample, dropout=args.dropout,
                     ab_head=getattr(args, "ab_head", "regression"), ab_temperature=getattr(args, "ab_temperature", 0.38))


def lr_factor(epoch: int, total: int, decay: int) -> float:
    if decay <= 0:
        return 1.0
    return max(0.0, min(1.0, (total - epoch) / (decay + 1)))


def head_prefixes(ab_head: str) -> set[str]:
    """The weights' name prefixes of an ab_head's heads."""
    return {"regression": {"head."}, "distribution": {"distribution."}, "blend": {"distribution.", "regression_decoder."}}[ab_head]


def generator_params(G: torch.nn.Module, args: argparse.Namespace) -> list[dict]:
    """Adam parameter groups (``_param_groups``), limited to --train-only's modules when given (the rest frozen)."""
    groups = _param_groups(G, args)
    only = tuple(getattr(args, "train_only", None) or ())
    if not only:
        return groups
    names = {id(p): n for n, p in G.named_parameters()}
    chosen = {i for i, n in names.items() if any(n.startswith(t + ".") for t in only)}
    if not chosen or not hasattr(type(G), "trainable"):
        raise SystemExit(f"error: --train-only {' '.join(only)}: no such module in the generator, or an encoder without it")
    for p in G.parameters():
        p.requires_grad_(id(p) in chosen)
    G.trainable = only
    return [dict(g, params=[p for p in g["params"] if id(p) in chosen]) for g in groups if any(id(p) in chosen for p in g["params"])]


def _param_groups(G: torch.nn.Module, args: argparse.Namespace) -> list[dict]:
    """Adam parameter groups: the pretrained encoder at --lr * --encoder-lr (left out and frozen at 0), a distribution
    head's logits layer at --lr * --head-lr, the rest at --lr."""
    encoder = getattr(G, "encoder", None)
    if encoder is None:
        return [{"params": list(G.parameters())}]
    head = G.distribution.logits if getattr(G, "distribution", None) is not None else None
    head_params = list(head.parameters()) if head is not None else []
    special = {id(p) for p in [*encoder.parameters(), *head_params]}
    groups = [{"params": [p for p in G.parameters() if id(p) not in special]}]
    if head_params:
        groups.append({"params": head_params, "lr": args.lr * getattr(args, "head_lr", 10.0)})
    if args.encoder_lr <= 0:
        for p in encoder.parameters():
            p.requires_grad_(False)
        return groups
    return [*groups, {"params": list(encoder.parameters()), "lr": args.lr * args.encoder_lr}]


def setup_distributed(args: argparse.Namespace) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return dist.get_rank(), world, device
    return 0, 1, device


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rank, world, device = setup_distributed(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed + rank)
    run = Path(args.out)
    is_main = rank == 0
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if is_main else (lambda *a: None)
    spec = spec_from_args(args)
    if args.crop_size % spec.size_multiple:
        raise SystemExit(f"error: --crop-size {args.crop_size} is not a multiple of 2**depth = {spec.size_multiple}")

    try:
        train_paths, val_paths = split_folders(args.data, args.val_count, args.train_count, args.seed)
    except FileNotFoundError as exc:
        raise SystemExit(f"error: {exc}") from None
    dataset = CropDataset(train_paths, args.crop_size, args.load_size, (args.scale_min, 1.0), args.cache, args.repeat,
                          spec_scaling=(spec.l_scale, spec.l_shift, spec.ab_scale))
    rep = dataset.report
    log(f"data: {len(rep.used)} training images ({len(rep.grey)} greyscale skipped, {len(rep.unreadable)} unreadable), "
        f"{len(val_paths)} validation; {len(dataset)} crops/epoch on {world} process(es), device {device}")
    val_images = load_validation(val_paths[:: max(1, -(-len(val_paths) // args.val_limit))], args.val_size) if is_main else []

    G = build_generator(spec)
    if spec.encoder != "unet" and args.pretrained and not (args.init or args.resume):
        from .pretrained import PretrainedUnavailable, load_imagenet_encoder

        try:
            log(f"encoder: ImageNet weights from {load_imagenet_encoder(G.encoder, spec.encoder)}")
        except PretrainedUnavailable as exc:
            raise SystemExit(f"error: {exc}") from None
    G = G.to(device)
    D = build_discriminator(args.ndf, norm=spec.norm).to(device)
    amp = torch.bfloat16 if device.type == "cuda" else None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick the fastest kernels once
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    state = {"step": 0, "epoch": 0, "step_in_epoch": 0}
    has_prior = bool(args.resume)  # the distribution head's prior came with the weights (a resume, or an init that has one)
    if args.init and not args.resume:
        from safetensors.torch import load_file

        init_spec, weights, init = checkpoint.init_source(args.init)
        has_prior = init_spec.ab_head != "regression"
        state_dict = {k: v.float() for k, v in load_file(str(weights), device=str(device)).items()}
        missing, unexpected = G.load_state_dict(state_dict, strict=False)
        # Added by --hint-levels (zero-initialised) or by --ab-head (a head the init lacks is new, one it has may go).
        added, gone = head_prefixes(spec.ab_head) - head_prefixes(init_spec.ab_head), head_prefixes(init_spec.ab_head) - head_prefixes(spec.ab_head)
        new = [k for k in missing if not k.startswith("hint_levels.") and not k.startswith(tuple(added))]
        dropped = [k for k in unexpected if not k.startswith(tuple(gone))]
        if new or dropped:
            raise SystemExit(f"error: {args.init} does not match the model: missing {new[:3]}, unexpected {dropped[:3]}")
        if (init is not None and (init / "discriminator.safetensors").is_file()
                and args.ndf == json.loads((init / "state.json").read_text())["args"].get("ndf")):
            D.load_state_dict(load_file(str(init / "discriminator.safetensors"), device=str(device)))
        log(f"initialised weights from {init or weights}")
    colour_classes.setup(G, dataset, spec, has_prior, log)
    stepper = GANStep(G, D, lambda_l1=args.lambda_l1, gan_mode=args.gan_mode, lr=args.lr, lr_d=args.lr_d,
                      betas=(args.beta1, 0.999), real_label=args.real_label, amp_dtype=amp, g_params=generator_params(G, args),
                      lambda_ce=args.lambda_ce)
    G.train()  # from the first step, not the first validation: the frozen encoder BatchNorm (and --train-only)
    # Every rank holds the same G after a step; only rank 0 validates and saves, so only it keeps the average.
    ema = EMA(G, args.ema) if args.ema and is_main else None
    if args.resume:  # restores the average too (or, where the checkpoint kept none, starts it from its weights)
        state = checkpoint.load_training_state(args.resume, G, D, stepper.opt_g, stepper.opt_d, device,
                                               ema=ema.module if ema else None)
        torch.manual_seed(args.seed + rank + state["step"])  # fresh augmentation stream, same schedule
        log(f"resumed from {checkpoint.resolve(args.resume)} at step {state['step']} (epoch {state['epoch']})")
        if ema is not None:
            ema.updates = state.get("ema_updates", 0)
    if spec.ab_head != "regression":  # after a resume: the prior came back with the weights
        stepper.dist_loss = colour_classes.DistributionLoss(G.distribution.centres, G.distribution.log_prior, spec.ab_scale,
                                                            args.rebalance)
    if world > 1:
        stepper.G = torch.nn.parallel.DistributedDataParallel(G, device_ids=[device.index] if device.type == "cuda" else None)

    run.mkdir(parents=True, exist_ok=True)
    (run / "checkpoints").mkdir(exist_ok=True)
    total_epochs = args.pretrain_epochs + args.epochs
    per_rank = len(dataset) // world
    steps_per_epoch = per_rank // args.batch_size
    if steps_per_epoch == 0:
        raise SystemExit(f"error: {len(dataset)} crops per epoch is less than one batch of {args.batch_size} per process")
    started, step = time.monotonic(), state["step"]

    def save(epoch: int, step_in_epoch: int, keepsake: str | None = None, phase: str | None = None) -> None:
        """A step_NNN checkpoint (becomes 'latest'; old ones pruned), or a named ``keepsake`` left alone."""
        if not is_main:
            return
        st = {"step": step, "epoch": epoch, "step_in_epoch": step_in_epoch, "args": vars(args),
              "phase": phase or ("pretrain" if epoch < args.pretrain_epochs else "gan"), "ema_updates": ema.updates if ema else 0}
        path = checkpoint.save(run / "checkpoints" / (keepsake or f"step_{step:08d}"), spec, G, D, stepper.opt_g, stepper.opt_d,
                               st, ema=ema.module if ema else None)
        if keepsake:
            return
        checkpoint.write_latest(run, path)
        for old in sorted((run / "checkpoints").glob("step_*"))[: -args.keep]:
            if old.name != path.name:
                shutil.rmtree(old, ignore_errors=True)

    def out_of_budget() -> bool:
        if args.max_steps is not None and step >= args.max_steps:
            return True
        return args.time_limit is not None and time.monotonic() - started > args.time_limit * 60

    from tqdm import tqdm

    epoch, skip = state["epoch"], state["step_in_epoch"]
    while epoch < total_epochs:
        gan = epoch >= args.pretrain_epochs
        stepper.set_lr(lr_factor(epoch, total_epochs, args.decay_epochs))
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(args.seed * 1000 + epoch))
        mine = order[rank * per_rank:(rank + 1) * per_rank][: steps_per_epoch * args.batch_size]
        sampler = mine[skip * args.batch_size:].tolist()
        loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers,
                                             drop_last=True, persistent_workers=False, pin_memory=device.type == "cuda")
        bar = tqdm(loader, total=steps_per_epoch - skip, disable=args.quiet or not is_main, file=sys.stderr,
                   desc=f"epoch {epoch + 1}/{total_epochs} {'gan' if gan else 'L1'}", dynamic_ncols=True)
        sums: dict[str, torch.Tensor] = {}
        n, t0, i = 0, time.monotonic(), skip
        for rgb8 in bar:
            L, ab = batch_to_network(rgb8.to(device, non_blocking=True), spec.l_scale, spec.l_shift, spec.ab_scale)
            hints = sample_hints(ab, p_none=args.hint_p_none) if spec.hints else None
            if device.type == "cuda":
                L, ab = L.contiguous(memory_format=torch.channels_last), ab.contiguous(memory_format=torch.channels_last)
                hints = hints.contiguous(memory_format=torch.channels_last) if hints is not None else None
            losses = stepper.step(L, ab, gan, hints)
            if ema is not None:
                ema.update(G)
            step, i, n = step + 1, i + 1, n + 1
            for k, v in losses.items():
                sums[k] = sums[k] + v if k in sums else v.clone()
            if n % 25 == 0 and not bar.disable:  # reading a loss syncs the device: only as often as the bar shows it
                ips = n * args.batch_size * world / max(time.monotonic() - t0, 1e-9)
                bar.set_postfix({**{k: f"{v.item() / n:.4f}" for k, v in sums.items()}, "img/s": f"{ips:.1f}"})
            if step % args.ckpt_every == 0:
                save(epoch, i)
            if out_of_budget():
                break
        bar.close()
        finished_epoch = i >= steps_per_epoch
        if not finished_epoch:  # stopped by budget
            save(epoch, i)
            log(f"stopped at step {step} (epoch {epoch + 1}, batch {i}/{steps_per_epoch}); resume with --resume {run}")
            break
        epoch, skip = epoch + 1, 0
        save(epoch, 0)
        if epoch == args.pretrain_epochs and args.pretrain_epochs and args.epochs:
            save(epoch, 0, keepsake="pretrain_final", phase="pretrain")  # the L1-only generator: a fallback if the GAN phase goes wrong
        if is_main:
            metrics = validate(ema.module if ema else checkpoint.unwrap(G), val_images, device, run / "samples" / f"epoch_{epoch:03d}.png") if val_images else {}
            row = {"epoch": epoch, "step": step, "phase": "gan" if gan else "pretrain", "seconds": round(time.monotonic() - t0, 1),
                   "img_per_s": round(n * args.batch_size * world / max(time.monotonic() - t0, 1e-9), 2),
                   **{f"loss_{k}": round(v.item() / max(n, 1), 5) for k, v in sums.items()}, **{f"val_{k}": round(v, 4) for k, v in metrics.items()}}
            log_csv(run / "log.csv", row)
            log("  ".join(f"{k}={v}" for k, v in row.items()))
        if world > 1:
            dist.barrier()
        if out_of_budget():
            log(f"stopped at step {step} after epoch {epoch}; resume with --resume {run}")
            break
    if world > 1:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
