"""The real-data recipe on a GPU, every stage: ImageNet weights -> glyph pretraining of the same
backbone (recipe=gpu_full) -> 5-fold fine-tune (experiment=gpu_full) -> ensemble.

    python scripts/gpu_full.py --data DIR [--glyphs dacon7 --glyphs-path mnist_data/]

`--data` is a dataset root in Dacon's layout (the competition's, or one the generator wrote).
Offline, give the ImageNet weights with `--pretrained-file FILE` (a timm state dict), or cache them
and set HF_HUB_OFFLINE=1; `--no-imagenet` starts the pretraining from random weights instead.
`--pretrain-set KEY=VALUE` and `--train-set KEY=VALUE` (repeatable) pass overrides to one stage
(e.g. a smaller `trainer.batch_size`). Prints each stage's time, and the test gap when the data has
test answers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from multimnist.rundir import ENSEMBLE_RECORD, PRETRAIN_WEIGHTS, ensemble_dir, pretrain_dir

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str]) -> None:
    print("[gpu-full] $ python", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="dataset root in Dacon's layout")
    parser.add_argument("--glyphs", default="procedural", choices=("procedural", "dacon7"))
    parser.add_argument("--glyphs-path", default=None, help="Dacon-7 CSV or folder (mnist_data/)")
    parser.add_argument("--pretrained-file", default=None, help="local timm state dict (offline)")
    parser.add_argument("--no-imagenet", action="store_true", help="pretrain from random weights")
    parser.add_argument("--folds", default="0,1,2,3,4")
    parser.add_argument("--experiments", default=str(ROOT / "experiments"))
    parser.add_argument("--pretrain-set", action="append", default=[], help="override for pretraining only")
    parser.add_argument("--train-set", action="append", default=[], help="override for fine-tuning only")
    args = parser.parse_args()
    py, exps = sys.executable, Path(args.experiments)
    times: dict[str, float] = {}
    t = time.perf_counter()

    pre = [py, "-m", "multimnist.pretrain", "recipe=gpu_full", f"paths.experiments={exps}"]
    pre += [f"glyphs={args.glyphs}"] + ([f"glyphs.path={args.glyphs_path}"] if args.glyphs_path else [])
    if args.no_imagenet:
        pre.append("backbone.pretrained=false")
    elif args.pretrained_file:
        pre.append(f"backbone.pretrained_file={args.pretrained_file}")
    run(pre + ["trainer.progress=false", *args.pretrain_set])
    times["pretrain"], t = time.perf_counter() - t, time.perf_counter()

    weights = pretrain_dir(exps, "gpu_glyphs") / PRETRAIN_WEIGHTS
    train = [py, "-m", "multimnist.train", f"data.root={args.data}", "experiment=gpu_full"]
    train += [f"paths.experiments={exps}", f"backbone.weights={weights}", "trainer.progress=false"]
    run(train + [*args.train_set, f"fold={args.folds}", "-m"])
    times["fine-tune"], t = time.perf_counter() - t, time.perf_counter()

    ens = [py, "-m", "multimnist.ensemble", f"data.root={args.data}", "exp=gpu_full"]
    ens.append(f"paths.experiments={exps}")
    run(ens + (["ensemble.allow_partial=true"] if args.folds != "0,1,2,3,4" else []))
    times["ensemble"] = time.perf_counter() - t

    report = json.loads((ensemble_dir(exps, "gpu_full") / ENSEMBLE_RECORD).read_text())
    print("[gpu-full] " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in times.items()))
    if report["test_accuracy"] is not None:
        acc, floor = report["test_accuracy"], report["floor"]
        print(
            f"[gpu-full] test accuracy {acc:.4f} vs all-zeros floor {floor:.4f}: "
            f"{(acc - floor) / (1 - floor):.1%} of the gap closed; OOF {report['oof_accuracy']:.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
