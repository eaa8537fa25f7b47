"""`make demo`: the main job end to end on the embedded default, on a CPU, in minutes.

1. generate a synthetic Dacon-layout dataset with the `easy` preset (1-3 large letters, rotation
   within +-15 degrees; noise and distractors stay) -- the full task does not leave the all-zeros
   floor in minutes on a CPU (`make demo-full` is the long way there);
2. pretrain the `cpu` preset's backbone on single-glyph crops (procedural glyphs, `easy` sizes);
3. fine-tune 5 folds from it with the `cpu` experiment preset (Hydra multirun);
4. ensemble them into a submission, scored against the generator's test answers.

Re-running reuses the data (same settings) and the finished pretraining, and skips finished folds.
Prints each stage's wall time and whether the demo closes >= 30% of the gap from the all-zeros floor
to a perfect score.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from multimnist.config import compose
from multimnist.rundir import ENSEMBLE_RECORD, ensemble_dir

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "demo"
EXPERIMENTS = ROOT / "experiments"
EXP = "demo"
SYNTH = {"n_train": 8000, "n_test": 1000, "seed": 0, "preset": "easy"}
# The `cpu` preset's glyph pretraining (~2 min on 2 cores); its weights go to backbone.weights.
PRETRAIN_CPU = ["backbone=vgg_narrow", "preset=easy", "trainer.epochs=4", "crops.per_epoch=20000"]
PRETRAIN_CPU += ["trainer.precision=bf16", "trainer.channels_last=true", "trainer.progress=false"]


def pretrain_cpu(experiments: Path, exp: str = "glyphs_vgg_narrow_easy") -> str:
    """Run (or reuse) the `cpu` preset's glyph pretraining; the backbone.weights override for it."""
    run(
        [
            sys.executable,
            "-m",
            "multimnist.pretrain",
            f"exp={exp}",
            f"paths.experiments={experiments}",
            *PRETRAIN_CPU,
        ]
    )
    return f"backbone.weights={experiments / exp / 'pretrain' / 'weights.pt'}"


BAR = 0.30


def run(cmd: list[str]) -> None:
    print("[demo] $ python", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def stage(name: str, started: float) -> float:
    now = time.perf_counter()
    print(f"[demo] {name}: {now - started:.0f} s\n", flush=True)
    return now


def synth_overrides() -> list[str]:
    return [f"out={DATA}", *(f"{k}={v}" for k, v in SYNTH.items()), "overwrite=true"]


def data_is_current() -> bool:
    """The dataset on disk was written by exactly this generator config (it records it in synth.json)."""
    info = DATA / "synth.json"
    if not info.is_file():
        return False
    wanted = OmegaConf.to_container(compose("synth", synth_overrides()), resolve=True)
    return json.loads(info.read_text()).get("config") == json.loads(json.dumps(wanted, default=str))


def main() -> int:
    t0 = t = time.perf_counter()
    py = sys.executable
    if data_is_current():
        print(f"[demo] reusing {DATA}")
    else:
        run([py, "-m", "multimnist.synth", *synth_overrides()])
    t = stage("1/4 data", t)
    weights = pretrain_cpu(EXPERIMENTS)
    t = stage("2/4 glyph pretraining", t)

    run(
        [
            py,
            "-m",
            "multimnist.train",
            f"data.root={DATA}",
            "experiment=cpu",
            weights,
            f"exp={EXP}",
            f"paths.experiments={EXPERIMENTS}",
            "fold=0,1,2,3,4",
            "-m",
        ]
    )
    t = stage("3/4 train 5 folds", t)

    run(
        [
            py,
            "-m",
            "multimnist.ensemble",
            f"data.root={DATA}",
            f"exp={EXP}",
            f"paths.experiments={EXPERIMENTS}",
        ]
    )
    t = stage("4/4 ensemble", t)

    report = json.loads((ensemble_dir(EXPERIMENTS, EXP) / ENSEMBLE_RECORD).read_text())
    fold_auc = [
        pd.read_csv(p)["val_auc"].iloc[-1] for p in sorted((EXPERIMENTS / EXP).glob("fold*/metrics.csv"))
    ]
    acc, floor = report["test_accuracy"], report["floor"]
    closed = (acc - floor) / (1 - floor)
    print(
        f"[demo] test accuracy {acc:.4f} vs all-zeros floor {floor:.4f}: {closed:.0%} of the gap to perfect "
        f"closed ({'PASS' if closed >= BAR else 'BELOW'} the {BAR:.0%} bar)"
    )
    print(
        f"[demo] OOF estimate {report['oof_accuracy']:.4f}; macro ROC-AUC (last epoch, per fold) "
        + ", ".join(f"{a:.3f}" for a in fold_auc)
    )
    print(
        f"[demo] submission: {EXPERIMENTS / EXP / 'ensemble' / 'submission.csv'}; the report page "
        f"({EXPERIMENTS / EXP / 'ensemble' / 'report.md'}: curves, worst images, calibration) beside it"
    )
    print(f"[demo] total {time.perf_counter() - t0:.0f} s")
    return 0 if closed >= BAR else 1


if __name__ == "__main__":
    sys.exit(main())
