"""Training curves of an experiment's folds, finished or still running: `make curves EXP=NAME`.

    python scripts/curves.py NAME [--experiments DIR]

Writes <experiments>/<NAME>/curves.png (every fold's train / val loss, val accuracy and AUC per epoch,
read from metrics.csv). The ensemble writes the same figure into its folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from multimnist.report import write_curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exp")
    parser.add_argument("--experiments", default="experiments", type=Path)
    args = parser.parse_args()
    exp_dir = args.experiments / args.exp
    runs = sorted(d for d in exp_dir.glob("fold*") if d.is_dir())
    try:
        path = write_curves(runs, exp_dir / "curves.png")
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {exp_dir}: {err}")
    print(f"wrote {path} ({len(runs)} fold(s))")


if __name__ == "__main__":
    main()
