#!/usr/bin/env bash
# Issue 17's training campaign: from INIT (default: the embedded model; the 2026-12-06 campaign started from the
# previous default, runs/default/s4_hints exported at gain 1.73: see the README),
# the last stage at the served scale (224 px crops, not 128), in two arms on equal CPU time, each resumable:
#
#   dist     a distribution head over the in-gamut ab bins (--ab-head distribution, Zhang et al. 2016): rebalanced
#            cross-entropy only (--lambda-l1 0), decoded in the graph; everything trains, encoder at 0.1 x the lr
#   regress  the same schedule with the regression head and L1 (the ablation: is it the head or the longer training?)
#   blend    from a blend checkpoint (INIT, made by tools/make_blend.py: a distribution model with a regression model's
#            decoder beside its own, on its encoder): the regression decoder alone learns, with L1, the rest frozen
#            (--train-only regression_decoder); served as a mix of the two (ab_blend, ab_regression_gain at export)
#   whole    from a blend (INIT, e.g. the embedded default): everything learns (encoder at 0.1x), cross-entropy on the
#            distribution and 30 x L1 (campaign.md, next step 1: the two answers learned together)
#
# Both: lr 1e-4, Adam beta1 0.9, EPOCHS epochs, the last DECAY decayed to 0, EMA 0.999, hints on half the crops
# (at every decoder level, as the default), batch 16, the same split as tools/train_default.sh (--seed 0; 1,000 of
# mix/ and 10 of photos/ held out). The arms run side by side with THREADS threads each (equal CPU time), and each
# stops after STAGE_MIN minutes with a checkpoint: run the script again (same RUNS) to go on.
#
# Usage (repository root): tools/train_campaign.sh        env: MIX, PHOTOS, RUNS (runs/campaign), THREADS (1), BATCH (16),
#   CROP (224), EPOCHS (4), DECAY (1), STAGE_MIN (600), ARMS ("dist regress"), PY (.venv/bin/python)
set -eu
MIX=${MIX:-../shared/data/mix}
PHOTOS=${PHOTOS:-../shared/data/photos}
RUNS=${RUNS:-runs/campaign}
THREADS=${THREADS:-1}
BATCH=${BATCH:-16}
CROP=${CROP:-224}
EPOCHS=${EPOCHS:-4}
DECAY=${DECAY:-1}
STAGE_MIN=${STAGE_MIN:-600}
ARMS=${ARMS:-dist regress}
PY=${PY:-.venv/bin/python}
INIT=${INIT:-runtime/model/weights/default.json}
mkdir -p "$RUNS"

common="--data $MIX $PHOTOS --val-count 1000 10 --seed 0 --crop-size $CROP --scale-min 0.25 --batch-size $BATCH
        --workers 0 --threads $THREADS --device cpu --ckpt-every 100 --time-limit $STAGE_MIN --quiet
        --init $INIT --encoder-lr 0.1 --pretrain-epochs $EPOCHS --epochs 0 --decay-epochs $DECAY --lr 1e-4 --beta1 0.9
        --ema 0.999 --hint-p-none 0.5"

arm() {  # name, args...
  local name=$1; shift
  local run="$RUNS/$name"
  if [ -f "$run/latest" ]; then
    echo "[$name] resuming $run"
    $PY -m trainer.train --resume "$run" --out "$run" --time-limit "$STAGE_MIN" --threads "$THREADS" --workers 0 --ckpt-every 100 \
        --device cpu --quiet
  else
    echo "[$name] starting $run"
    $PY -m trainer.train $common --out "$run" "$@"
  fi
}

pids=""
for name in $ARMS; do
  case $name in
    dist) arm dist --ab-head distribution --lambda-l1 0 > "$RUNS/dist.log" 2>&1 & ;;
    regress) arm regress --lambda-l1 100 > "$RUNS/regress.log" 2>&1 & ;;
    blend) arm blend --train-only regression_decoder --lambda-l1 100 > "$RUNS/blend.log" 2>&1 & ;;
    whole) arm whole --lambda-l1 30 > "$RUNS/whole.log" 2>&1 & ;;
    *) echo "unknown arm $name" >&2; exit 2 ;;
  esac
  pids="$pids $!"
done
status=0
for pid in $pids; do wait "$pid" || status=$?; done
for name in $ARMS; do tail -n 2 "$RUNS/$name.log"; done
exit $status
