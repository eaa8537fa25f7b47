#!/usr/bin/env bash
# One device check for a lent GPU machine, sized to finish in ~8 minutes so it can be rerun inside a
# 15-minute budget. Prepare the wheels here first (bash scripts/device_wheels.sh), then run, with
# `carry: [".whl"]`:   bash scripts/device_check.sh
# It installs the missing wheels, then measures and prints one summary table:
#   1. the precision benchmark (fp32 / bf16 / fp16, channels_last) for effnet_b5 at batch 32 and 128;
#   2. the trainer / raw-loop img/s ratio for effnet_b5 at batch 32 and 128 (bf16, channels_last),
#      and at batch 32 again with torch.compile(mode="reduce-overhead") (CUDA graphs);
#   3. the full task trained to accuracy with the GPU recipe (recipe=gpu_full, experiment=gpu_full) on
#      effnet_b0 at 256 px: glyph pretraining (a few minutes), one fold on FULL_N generated full-task
#      images (GLYPHS=dacon7 GLYPHS_PATH=FILE for the competition's glyphs; procedural by default),
#      then the test gap closed. The device cannot download, so it starts from random weights
#      (ImageNet weights need backbone.pretrained_file=FILE carried along).
# Sizes come from the environment, so the same script smoke-tests on a CPU with tiny values:
#   WHEELS=none PY=.venv/bin/python IMG=32 BATCHES="4" N=64 STEPS=2 ROUNDS=1 REPEATS=1 FULL_N=200 \
#     FULL_IMG=32 CROPS=64 PRE_EPOCHS=1 EPOCHS=1 WORKERS=0 bash scripts/device_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${OUT:-/tmp/device_check}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1
WHEELS=${WHEELS:-.whl}  # WHEELS=none in a CPU smoke test, where .venv has everything
if [ -d "$WHEELS" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
PY=${PY:-python3}
BATCHES=${BATCHES:-"32 128"}
N=${N:-2048}; STEPS=${STEPS:-15}; ROUNDS=${ROUNDS:-2}; REPEATS=${REPEATS:-3}; WORKERS=${WORKERS:-8}
IMG=${IMG:-256}; FULL_N=${FULL_N:-20000}; PRE_EPOCHS=${PRE_EPOCHS:-4}; EPOCHS=${EPOCHS:-6}
FULL_IMG=${FULL_IMG:-256}; CROPS=${CROPS:-50000}; GLYPHS=${GLYPHS:-procedural}; GLYPHS_PATH=${GLYPHS_PATH:-}
glyphs="glyphs=$GLYPHS${GLYPHS_PATH:+ glyphs.path=$GLYPHS_PATH}"
start=$(date +%s)
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$PY -c "import torch, timm, hydra, albumentations; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'timm', timm.__version__)"

for b in $BATCHES; do
  $PY scripts/bench_precision.py --backbone effnet_b5 --img-size "$IMG" --batch "$b" --steps "$STEPS" --rounds "$ROUNDS" \
    2>&1 | tee "$OUT_DIR/precision_b$b.txt"
  $PY scripts/bench_train.py --backbone effnet_b5 --img-size "$IMG" --batch "$b" --n "$N" --repeats "$REPEATS" --workers "$WORKERS" \
    --precision bf16 --channels-last 2>&1 | tee "$OUT_DIR/ratio_b$b.txt"
done

# The launch-bound small batch: does CUDA-graph capture (torch.compile reduce-overhead) pay? Kept only if so.
$PY scripts/bench_train.py --backbone effnet_b5 --img-size "$IMG" --batch "${BATCHES%% *}" --n "$N" \
  --repeats "$REPEATS" --workers "$WORKERS" --precision bf16 --channels-last --compile reduce-overhead \
  2>&1 | tee "$OUT_DIR/ratio_compiled.txt"

data=/tmp/device_full
exps=/tmp/device_exps
cpu_only=$($PY -c "import torch; print('' if torch.cuda.is_available() else 'trainer.precision=fp32 trainer.channels_last=false')")
# shellcheck disable=SC2086  # $glyphs and $cpu_only are lists of overrides
$PY -m multimnist.synth out=$data n_train="$FULL_N" n_test=$((FULL_N / 10)) seed=0 overwrite=true progress=false \
  preset=real $glyphs 2>&1 | tee "$OUT_DIR/full.txt"
# shellcheck disable=SC2086
$PY -m multimnist.pretrain recipe=gpu_full backbone=effnet_b0 backbone.pretrained=false paths.experiments=$exps \
  backbone.img_size="$FULL_IMG" trainer.epochs="$PRE_EPOCHS" crops.per_epoch="$CROPS" trainer.num_workers="$WORKERS" \
  trainer.progress=false $glyphs $cpu_only 2>&1 | tee -a "$OUT_DIR/full.txt"
# shellcheck disable=SC2086
$PY -m multimnist.train data.root=$data paths.experiments=$exps experiment=gpu_full backbone=effnet_b0 fold=0 \
  backbone.img_size="$FULL_IMG" trainer.epochs="$EPOCHS" trainer.num_workers="$WORKERS" trainer.progress=false \
  backbone.weights=$exps/gpu_glyphs/pretrain/weights.pt $cpu_only 2>&1 | tee -a "$OUT_DIR/full.txt"
$PY -m multimnist.ensemble data.root=$data exp=gpu_full paths.experiments=$exps ensemble.allow_partial=true \
  ensemble.plots=false 2>&1 | tee -a "$OUT_DIR/full.txt"

echo
echo "== summary ($(( $(date +%s) - start )) s) =="
for b in $BATCHES; do
  echo "-- batch $b: precision"; grep "img/s" "$OUT_DIR/precision_b$b.txt" || true
  echo "-- batch $b: trainer / raw loop"; grep -E "^\(a\)|^\(b\)|ratio" "$OUT_DIR/ratio_b$b.txt" || true
done
echo "-- batch ${BATCHES%% *}, torch.compile(mode=reduce-overhead) in both loops"
grep -E "^\(a\)|^\(b\)|ratio" "$OUT_DIR/ratio_compiled.txt" || true
echo "-- full task, one fold of experiment=gpu_full (effnet_b0, $FULL_IMG px, $GLYPHS glyphs, from glyph pretraining):"
grep -E "held-out glyph top-1|epoch [0-9]+: train_loss|img/s\)|^chosen" "$OUT_DIR/full.txt" | tail -10
$PY -c "import json; r = json.load(open('$exps/gpu_full/ensemble/ensemble.json')); a, f = r['test_accuracy'], r['floor']; print(f'test {a:.4f} vs floor {f:.4f}: {(a - f) / (1 - f):.1%} of the gap closed; OOF {r[\"oof_accuracy\"]:.4f}')"
