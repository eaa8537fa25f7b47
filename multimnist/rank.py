"""Rank experiments by their folds' best validation loss: after a search or any set of runs.

    python -m multimnist.rank [--experiments DIR] [--prefix search] [--top 20]   (or multimnist-rank)

Each experiment's row: folds with a metrics.csv, the mean over its folds of the best val_loss (the
epoch best.pt holds) and of val_acc and val_auc at that epoch, and the epochs run. Best first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from multimnist.rundir import METRICS
from multimnist.tracking import read_metrics


def experiment_row(exp_dir: Path) -> dict | None:
    """The experiment's mean best-epoch scores over its folds; None when no fold has metrics."""
    bests = []
    for metrics in sorted(exp_dir.glob(f"fold*/{METRICS}")):
        frame = pd.DataFrame(read_metrics(metrics))
        if not frame.empty:
            bests.append(dict(frame.loc[frame.val_loss.idxmin()]) | {"epochs": len(frame)})
    if not bests:
        return None
    best = pd.DataFrame(bests)
    return {
        "experiment": exp_dir.name,
        "folds": len(best),
        "val_loss": best.val_loss.mean(),
        "val_acc": best.val_acc.mean(),
        "val_auc": best.val_auc.mean(),
        "epochs": int(best.epochs.max()),
    }


def cli() -> None:
    """The console script (multimnist-rank): the same as python -m."""
    main()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", default="experiments", type=Path)
    parser.add_argument("--prefix", default="", help="only experiments whose name starts with this")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    dirs = sorted(d for d in args.experiments.glob(f"{args.prefix}*") if d.is_dir())
    try:
        rows = [r for r in map(experiment_row, dirs) if r is not None]
    except ValueError as err:
        sys.exit(f"error: {err}")
    if not rows:
        sys.exit(f"error: {args.experiments}: no experiment named {args.prefix}* has a {METRICS}")
    table = pd.DataFrame(rows).sort_values("val_loss").head(args.top)
    with pd.option_context("display.max_colwidth", 90, "display.width", 200):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
