#!/usr/bin/env bash
# The default model's training recipe: EfficientNet-Lite0 (ImageNet) encoder + U-Net decoder + fusion + colour hints,
# in four stages chained with --init, each resumable. Sized for a 2-core CPU (about two hours in all at 128 px crops);
# the same commands run on a GPU (DEVICE=cuda, bigger BATCH, WORKERS > 0).
#
#   stage 1  decoder only (encoder frozen at its ImageNet weights): L1, lr 5e-4, Adam beta1 0.9, S1_EPOCHS epochs
#   stage 2  everything, encoder at 0.1x the lr: L1, lr 3e-4, S2_EPOCHS epochs, the last S2_DECAY decayed to 0, EMA 0.999
#   stage 3  the GAN phase (pix2pix): 70x70 PatchGAN, GAN + 100 x L1, lr 1e-4, Adam beta1 0.5, real label 0.9,
#            S3_EPOCHS epochs, the last S3_DECAY decayed to 0, EMA 0.999
#   stage 4  colour hints: the hints also enter every decoder level (--hint-levels, zero-initialised, so it starts as
#            stage 3 ended), hints on all but HINT_P_NONE of the crops, L1, lr 1e-4, encoder at 0.1x, S4_EPOCHS epochs,
#            the last S4_DECAY decayed to 0, EMA 0.999
# Split: --seed 0, each data folder on its own: 1,000 of mix/ and 10 of photos/ held out (colorize-gan-evaluate
# --holdout scores the same photos). Simulated hints on half the crops (trainer/hints.py).
#
# Each stage runs at most STAGE_MIN minutes per call, then stops with a checkpoint; run the script again (same
# RUNS) and it resumes where it stopped and goes on to the next stages. A stage is done when its log.csv has its
# last epoch. Long CPU runs: start it in the background (nohup) and renice every thread (DEVELOPERS.md).
#
# ENCODER (efficientnet-lite0 | efficientnet-lite2) and HEAD (regression | distribution) make the same recipe for the
# encoder and head ablations of issue 17 (the GAN stage judges a distribution head's decoded colour like any other).
#
# Usage (repository root): tools/train_default.sh        env: MIX, PHOTOS, RUNS (runs/default; runs/default-ENCODER-HEAD
#   for the ablations), DEVICE (cpu), ENCODER, HEAD,
#   THREADS (2), WORKERS (0), BATCH (16), CROP (128), S1_EPOCHS (1), S2_EPOCHS (6), S2_DECAY (2), S3_EPOCHS (2),
#   S3_DECAY (1), S4_EPOCHS (6), S4_DECAY (2), HINT_P_NONE (0.2), STAGE_MIN (600), VAL_COUNTS ("1000 10"), PY (.venv/bin/python)
set -eu
MIX=${MIX:-../shared/data/mix}
PHOTOS=${PHOTOS:-../shared/data/photos}
ENCODER=${ENCODER:-efficientnet-lite0}
HEAD=${HEAD:-regression}
# An ablation gets its own runs: the default's stages must not count as done for another encoder or head.
if [ "$ENCODER" = efficientnet-lite0 ] && [ "$HEAD" = regression ]; then RUNS=${RUNS:-runs/default}; else RUNS=${RUNS:-runs/default-$ENCODER-$HEAD}; fi
DEVICE=${DEVICE:-cpu}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-0}
BATCH=${BATCH:-16}
CROP=${CROP:-128}
S1_EPOCHS=${S1_EPOCHS:-1}
S2_EPOCHS=${S2_EPOCHS:-6}
S2_DECAY=${S2_DECAY:-2}
S3_EPOCHS=${S3_EPOCHS:-2}
S3_DECAY=${S3_DECAY:-1}
S4_EPOCHS=${S4_EPOCHS:-6}
S4_DECAY=${S4_DECAY:-2}
HINT_P_NONE=${HINT_P_NONE:-0.2}
STAGE_MIN=${STAGE_MIN:-600}
PY=${PY:-.venv/bin/python}
VAL_COUNTS=${VAL_COUNTS:-1000 10}
mkdir -p "$RUNS"
GAN_L1=100  # the GAN stage's L1 weight; a distribution head keeps its cross-entropy instead (L1 pulls to the median)
[ "$HEAD" = distribution ] && GAN_L1=0

common="--data $MIX $PHOTOS --val-count $VAL_COUNTS --seed 0 --crop-size $CROP --scale-min 0.25 --batch-size $BATCH
        --workers $WORKERS --threads $THREADS --device $DEVICE --ckpt-every 200 --time-limit $STAGE_MIN --quiet"

done_epochs() {  # last epoch in a run's log.csv (0 when none)
  [ -f "$1/log.csv" ] && tail -n 1 "$1/log.csv" | cut -d, -f1 | grep -E '^[0-9]+$' || echo 0
}

stage() {  # name, total epochs, args...
  local name=$1 total=$2; shift 2
  local run="$RUNS/$name"
  if [ "$(done_epochs "$run")" -ge "$total" ]; then echo "[$name] done"; return 0; fi
  if [ -f "$run/latest" ]; then
    echo "[$name] resuming $run"
    $PY -m trainer.train --resume "$run" --out "$run" --time-limit "$STAGE_MIN" --threads "$THREADS" --workers "$WORKERS" --ckpt-every 200 \
        --device "$DEVICE" --quiet
  else
    echo "[$name] starting $run"
    $PY -m trainer.train $common --out "$run" "$@"
  fi
  if [ "$(done_epochs "$run")" -lt "$total" ]; then
    echo "[$name] stopped by the time limit: run tools/train_default.sh again to continue"; exit 3
  fi
}

stage s1_decoder "$S1_EPOCHS" --encoder "$ENCODER" --ab-head "$HEAD" --hints --encoder-lr 0 --pretrain-epochs "$S1_EPOCHS" --epochs 0 \
  --lr 5e-4 --beta1 0.9
stage s2_all "$S2_EPOCHS" --init "$RUNS/s1_decoder" --encoder-lr 0.1 --pretrain-epochs "$S2_EPOCHS" --epochs 0 \
  --decay-epochs "$S2_DECAY" --lr 3e-4 --beta1 0.9 --ema 0.999
stage s3_gan "$S3_EPOCHS" --init "$RUNS/s2_all" --encoder-lr 0.1 --pretrain-epochs 0 --epochs "$S3_EPOCHS" \
  --decay-epochs "$S3_DECAY" --lr 1e-4 --beta1 0.5 --real-label 0.9 --lambda-l1 "$GAN_L1" --ema 0.999
stage s4_hints "$S4_EPOCHS" --init "$RUNS/s3_gan" --hint-levels --hint-p-none "$HINT_P_NONE" --encoder-lr 0.1 \
  --pretrain-epochs "$S4_EPOCHS" --epochs 0 --decay-epochs "$S4_DECAY" --lr 1e-4 --beta1 0.9 --ema 0.999
echo "all stages done: export with colorize-gan-export $RUNS/s4_hints (README)"
