#!/usr/bin/env bash
# Retrain the default model's architecture on one GPU in a fixed time budget (one lease of a lent H100/H200). The shipped
# default came from the CPU recipe in the README; what this script gave is in docs/default-model/gpu_experiments.md.
#
# Two candidate recipes train side by side on the one GPU (7 DataLoader workers each), each in two phases:
#   phase 1  L1-only generator pretraining, constant lr 2e-4, for PHASE1_MIN minutes (stops with a checkpoint);
#   phase 2  the GAN phase (--init from phase 1): lr 1e-4 decayed linearly to 0 over E epochs, one-sided label
#            smoothing 0.9. E is sized from phase 1's measured images/s times GAN_RATIO so that the decay ends inside
#            PHASE2_MIN minutes; --time-limit still guards it. In FLOPs a GAN step costs ~4-6x an L1 step (the 70x70
#            PatchGAN runs 3 forward and 2 backward passes: the default 0.22), but where the data loader is the bound,
#            as on the H100/H200 runs, the measured ratio was ~0.85 (run 2 used GAN_RATIO=0.7).
#   A  crop 256 (the runtime's render size) from images loaded at 512, crop area 25-100%
#   B  crop 128 from images loaded at 512, crop area 6-100% (the first, CPU-trained default's recipe)
# Batch 64, seed 0, 10 validation photos (--val-count 10 --seed 0: the same split the evaluator's --holdout 10 picks).
#
# Usage (repository root):  DATA=folder OUT=results tools/train_default_gpu.sh
# Env: DATA (colour photos), OUT (results: generators, logs), RUNS (run folders, default runs/gpu),
#      PHASE1_MIN, PHASE2_MIN, GAN_RATIO, VARIANTS ("A B"), DEVICE (auto), WORKERS (7), PY (python3), EMA (0.999: the
#      decay of the generator's weight average that validation and export use; 0 = off),
#      BATCH (64), REPEAT (crops per photo per epoch; default 200 for A, 400 for B: epochs of ~10 s on an H100).
# Afterwards, on any machine: export with colorize-gan-export, score with colorize-gan-evaluate (README).
set -u
DATA=${DATA:?set DATA to a folder of colour photos}
OUT=${OUT:?set OUT to a results folder}
RUNS=${RUNS:-runs/gpu}
PHASE1_MIN=${PHASE1_MIN:-3.0}
PHASE2_MIN=${PHASE2_MIN:-3.3}
GAN_RATIO=${GAN_RATIO:-0.22}
VARIANTS=${VARIANTS:-A B}
DEVICE=${DEVICE:-auto}
WORKERS=${WORKERS:-7}
PY=${PY:-python3}
EMA=${EMA:-0.999}
BATCH=${BATCH:-64}
LOGS="$RUNS/meta/logs"
mkdir -p "$OUT" "$LOGS"

variant_args() {
  case $1 in
    A) echo "--crop-size 256 --load-size 512 --scale-min 0.25 --repeat ${REPEAT:-200}" ;;
    B) echo "--crop-size 128 --load-size 512 --scale-min 0.06 --repeat ${REPEAT:-400}" ;;
    *) echo "unknown variant $1" >&2; return 1 ;;
  esac
}

common="--data $DATA --val-count 10 --seed 0 --batch-size $BATCH --workers $WORKERS --device $DEVICE --quiet --ckpt-every 1000 --ema $EMA"

gan_epochs() {  # $1 = phase-1 run folder, $2 = crops per epoch
  $PY - "$1/log.csv" "$2" "$PHASE2_MIN" "$GAN_RATIO" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
rates = [float(r["img_per_s"]) for r in rows[1:]] or [float(r["img_per_s"]) for r in rows]
rate = statistics.median(rates) * float(sys.argv[4])
print(max(2, int(rate * (float(sys.argv[3]) * 60 - 20) / int(sys.argv[2]))))
EOF
}

run_variant() {
  local v=$1 args
  args=$(variant_args "$v") || return 1
  local repeat=${args##*--repeat }
  local p1="$RUNS/$v-l1" p2="$RUNS/$v-gan"
  echo "[$v] phase 1: L1 pretraining for $PHASE1_MIN min ($args)"
  $PY -m trainer.train $common $args --out "$p1" --pretrain-epochs 10000 --epochs 0 --lr 2e-4 \
      --time-limit "$PHASE1_MIN" >"$LOGS/$v-l1.log" 2>&1 || { echo "[$v] phase 1 failed"; tail -5 "$LOGS/$v-l1.log"; return 1; }
  local n crops e
  n=$(sed -n 's/^data: \([0-9]*\) training images.*/\1/p' "$LOGS/$v-l1.log" | head -1)
  crops=$((${n:-90} * repeat))
  e=$(gan_epochs "$p1" "$crops") || e=4
  echo "[$v] phase 2: GAN, $e epochs of $crops crops, lr 1e-4 decayed to 0, real label 0.9"
  $PY -m trainer.train $common $args --out "$p2" --init "$p1" --pretrain-epochs 0 --epochs "$e" --decay-epochs "$e" \
      --lr 1e-4 --real-label 0.9 --time-limit "$PHASE2_MIN" >"$LOGS/$v-gan.log" 2>&1 \
      || { echo "[$v] phase 2 failed"; tail -5 "$LOGS/$v-gan.log"; return 1; }
  echo "[$v] done"
}

pids=() failed=0
for v in $VARIANTS; do run_variant "$v" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || failed=1; done

# Bring back: each phase's last generator and its average (float32 safetensors, ~15 MB each) and one archive of logs, specs and the last
# contact sheet of each phase (as JPEG): 5 files in all.
for v in $VARIANTS; do
  for phase in l1 gan; do
    [ -f "$RUNS/$v-$phase/latest" ] || continue
    ck="$RUNS/$v-$phase/checkpoints/$(cat "$RUNS/$v-$phase/latest")"  # the run folder's 'latest' names its newest checkpoint
    cp "$ck/generator.safetensors" "$OUT/$v-$phase-generator.safetensors"
    [ -f "$ck/generator_ema.safetensors" ] && cp "$ck/generator_ema.safetensors" "$OUT/$v-$phase-generator_ema.safetensors"
    mkdir -p "$RUNS/meta/$v-$phase"
    cp "$ck/spec.json" "$ck/state.json" "$RUNS/meta/$v-$phase/"
    cp "$RUNS/$v-$phase/log.csv" "$RUNS/meta/$v-$phase/" 2>/dev/null
    last=$(ls "$RUNS/$v-$phase/samples/" 2>/dev/null | tail -1)
    [ -n "$last" ] && $PY -c "import sys; from PIL import Image; Image.open(sys.argv[1]).convert('RGB').save(sys.argv[2], quality=90)" \
        "$RUNS/$v-$phase/samples/$last" "$RUNS/meta/$v-$phase/${last%.png}.jpg"
  done
done
tar -C "$RUNS" -czf "$OUT/meta.tar.gz" meta 2>/dev/null
ls -la "$OUT"
exit $failed
