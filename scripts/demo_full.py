"""`make demo-full`: the full task (10-14 letters, any rotation) learned on a CPU, end to end.

1. generate the `real` preset (8,000 train + 2,000 test; procedural glyphs, or --glyphs dacon7);
2. glyph pretraining of multimnist_fcn on single-letter crops (always procedural glyphs: what every
   user has, so dacon7 data is judged on glyphs the backbone never saw);
3. fine-tune fold(s) with `experiment=cpu_full backbone.weights=<pretrained>`;
4. ensemble the finished folds (allow_partial) and score against the generator's test answers.

Prints each stage's wall time, the share of the all-zeros->perfect gap closed on the test set, the
OOF estimate beside it, macro ROC-AUC, and one results-table row. `--scratch` skips pretraining
(the baseline at the same fine-tuning budget). Re-running reuses finished stages.

    python scripts/demo_full.py [--glyphs dacon7 --glyphs-path DIR] [--pretrain-epochs 40] [--scratch]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from multimnist.rundir import ENSEMBLE_RECORD, ensemble_dir

ROOT = Path(__file__).resolve().parents[1]
BAR = 0.30


def run(cmd: list[str]) -> None:
    print("[demo-full] $ python", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--glyphs", default="procedural", choices=("procedural", "dacon7"))
    parser.add_argument("--glyphs-path", default=None, help="dacon7 CSV or folder (with --glyphs dacon7)")
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument(
        "--pretrain-epochs", type=int, default=40, help="x 30,000 crops (~22 s each on 2 cores)"
    )
    parser.add_argument("--epochs", type=int, default=12, help="fine-tuning epochs per fold")
    parser.add_argument("--folds", default="0", help="folds to train, e.g. 0 or 0,1,2,3,4")
    parser.add_argument("--scratch", action="store_true", help="no pretraining: the baseline")
    parser.add_argument("--experiments", default=str(ROOT / "experiments"))
    parser.add_argument("--data", default=None, help="dataset folder (default data/full_<glyphs>)")
    args = parser.parse_args()
    py, exps = sys.executable, Path(args.experiments)
    data = Path(args.data or ROOT / "data" / f"full_{args.glyphs}")
    exp = f"full_{args.glyphs}_{'scratch' if args.scratch else 'pretrained'}"
    t0 = t = time.perf_counter()
    times: dict[str, float] = {}

    def stage(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        times[name] = now - t
        print(f"[demo-full] {name}: {now - t:.0f} s\n", flush=True)
        t = now

    if (data / "synth.json").is_file():
        print(f"[demo-full] reusing {data}")
    else:
        glyphs = [f"glyphs={args.glyphs}"] + ([f"glyphs.path={args.glyphs_path}"] if args.glyphs_path else [])
        run(
            [py, "-m", "multimnist.synth", f"out={data}", f"n_train={args.n_train}", f"n_test={args.n_test}"]
            + ["seed=0", "preset=real", *glyphs, "progress=false"]
        )
    stage("data")

    weights = []
    if not args.scratch:
        name = f"glyphs_fcn_e{args.pretrain_epochs}"
        pre = [py, "-m", "multimnist.pretrain", "backbone=fcn", f"exp={name}", f"paths.experiments={exps}"]
        pre += [f"trainer.epochs={args.pretrain_epochs}", "crops.per_epoch=30000", "trainer.precision=bf16"]
        run(pre + ["trainer.channels_last=true", "trainer.progress=false"])
        weights = [f"backbone.weights={exps / name / 'pretrain' / 'weights.pt'}"]
    stage("pretrain")

    train = [py, "-m", "multimnist.train", f"data.root={data}", "experiment=cpu_full", f"exp={exp}"]
    train += [f"paths.experiments={exps}", f"trainer.epochs={args.epochs}", "trainer.progress=false"]
    run(train + weights + [f"fold={args.folds}", "-m"])
    stage("train")

    ens = [py, "-m", "multimnist.ensemble", f"data.root={data}", f"exp={exp}", f"paths.experiments={exps}"]
    run(ens + ["ensemble.allow_partial=true"])
    stage("ensemble")

    report = json.loads((ensemble_dir(exps, exp) / ENSEMBLE_RECORD).read_text())
    auc = [pd.read_csv(p)["val_auc"].iloc[-1] for p in sorted((exps / exp).glob("fold*/metrics.csv"))]
    acc, floor, oof = report["test_accuracy"], report["floor"], report["oof_accuracy"]
    closed, total = (acc - floor) / (1 - floor), time.perf_counter() - t0
    print(
        f"[demo-full] test accuracy {acc:.4f} vs all-zeros floor {floor:.4f}: {closed:.1%} of the gap closed "
        f"({'PASS' if closed >= BAR else 'BELOW'} the {BAR:.0%} bar); OOF estimate {oof:.4f} "
        f"(test - OOF {acc - oof:+.4f}); macro ROC-AUC per fold {', '.join(f'{a:.3f}' for a in auc)}"
    )
    print(
        f"[demo-full] total {total / 60:.1f} min ({', '.join(f'{k} {v / 60:.1f}' for k, v in times.items())})"
    )
    row = {
        "exp": exp,
        "data": f"real preset, {args.glyphs} glyphs, {args.n_train}+{args.n_test}",
        "pretrain_epochs": 0 if args.scratch else args.pretrain_epochs,
        "epochs": args.epochs,
        "folds": args.folds,
        "minutes": round(total / 60, 1),
        "test_accuracy": acc,
        "floor": floor,
        "gap_closed": closed,
        "oof_accuracy": oof,
        "auc": auc,
    }
    (exps / exp / "result.json").write_text(json.dumps(row, indent=2) + "\n")
    return 0 if closed >= BAR else 1


if __name__ == "__main__":
    sys.exit(main())
