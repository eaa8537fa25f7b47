"""`make demo`: the main job end to end on the embedded default (synthetic data, no download).

Today it runs the stages that exist: generate a Dacon-layout dataset, validate it with the same reader
training uses, assign folds, and compare its statistics with the real reference images. Training
and ensembling join this script when they land; until then it stops after the data, and says so.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from multimnist.data.dacon import DaconLayout, load_split
from multimnist.data.folds import folds_filename, load_or_make_folds
from multimnist.synth.stats import dataset_stats, format_table

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "demo"
REAL = ROOT.parent / "shared" / "data" / "real"


def stage(name: str, started: float) -> float:
    now = time.perf_counter()
    print(f"[demo] {name}: {now - started:.1f} s\n")
    return now


def main() -> int:
    t0 = t = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "multimnist.synth",
        f"out={DATA}",
        "n_train=2000",
        "n_test=500",
        "seed=0",
        "overwrite=true",
    ]
    print("[demo] $", " ".join(cmd[1:]))
    subprocess.run(cmd, check=True)
    t = stage("generate 2,000 train + 500 test images", t)

    layout = DaconLayout(DATA)
    train, test = load_split(layout, "train"), load_split(layout, "test")
    folds = load_or_make_folds(
        DATA / ".cache" / folds_filename(5, 42, "stratified"), train.indices, train.labels
    )
    print(
        f"[demo] validated {len(train)} train + {len(test)} test images; fold sizes "
        f"{folds['fold'].value_counts().sort_index().tolist()}"
    )
    t = stage("validate + folds", t)

    columns = {"synthetic (data/demo)": dataset_stats(DATA)}
    if REAL.is_dir():
        columns["real (../shared/data/real)"] = dataset_stats(REAL)
    print(format_table(columns))
    t = stage("realism statistics", t)

    print(
        f"[demo] total {time.perf_counter() - t0:.1f} s. Training (5 folds) and the ensemble are not built"
        " yet: the demo stops after the data."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
