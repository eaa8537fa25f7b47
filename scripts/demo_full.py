"""`make demo-full`: the full task (10-14 letters, any rotation) learned on a CPU, end to end, as a
user submits it: 5 folds and their ensemble.

1. generate the `real` preset (8,000 train + 2,000 test; procedural glyphs, or with --dacon7 the
   competition's glyphs: pool B, test images on glyphs no train image uses);
2. glyph pretraining of multimnist_fcn on single-letter crops (procedural glyphs, what every user
   has; --recipe handdrawn on the same fonts redrawn stroke by stroke, glyphs=handdrawn; --recipe
   dacon7-A on the other half of the competition's glyphs);
3. fine-tune 5 folds with `experiment=cpu_full backbone.weights=<pretrained>`;
4. ensemble them and score against the generator's test answers;
5. with --recipe ...+self, self-training: harvest crops of the training images where the folds find
   each letter, pretrain again on them, fine-tune and ensemble again; with ...+pseudo, fine-tune
   again with the test images labelled by the last ensemble (data.pseudo_labels) added.

Prints the share of the all-zeros->perfect gap closed on the test set, the OOF estimate beside it,
macro ROC-AUC and the minutes; the stages are scripts/bench_full.py's (which runs every recipe side by
side), so a finished demo is a row of that benchmark and re-running reuses finished stages.

    python scripts/demo_full.py [--dacon7 mnist_data/] [--recipe procedural|dacon7-A|...] [--variant lr1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench_full import RECIPES, ROOT, VARIANTS, Bench, Budget, table, unknown_variants

BAR = 0.30


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dacon7", default=None, help="mnist_data's CSVs (or folder): real-handwriting data")
    parser.add_argument("--recipe", default="procedural", choices=RECIPES)
    parser.add_argument(
        "--variant",
        default="",
        help=f"the fine-tuning's VARIANT[,VARIANT...] of {tuple(VARIANTS)} (lr1: as before 2026-12-02)",
    )
    parser.add_argument("--experiments", default=str(ROOT / "experiments"))
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    for name, value in vars(Budget()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args()
    if args.recipe.startswith("dacon7-A") and not args.dacon7:
        parser.error("--recipe dacon7-A pretrains on the competition's glyphs: give --dacon7 FILE_OR_DIR")
    if unknown := unknown_variants(args.variant):
        parser.error(f"--variant {args.variant}: unknown {unknown}; choose from {tuple(VARIANTS)}")
    budget = Budget(**{k: getattr(args, k) for k in vars(Budget())})
    bench = Bench(Path(args.experiments), Path(args.data_dir), budget, args.dacon7)
    r = bench.row("dacon7-B" if args.dacon7 else "procedural", args.recipe, args.variant)
    print(f"\n{table([r])}\n")
    print(
        f"[demo-full] test accuracy {r['test']:.4f} vs all-zeros floor {r['floor']:.4f}: {r['gap']:.1%} of "
        f"the gap closed ({'PASS' if r['gap'] >= BAR else 'BELOW'} the {BAR:.0%} bar); OOF estimate "
        f"{r['oof']:.4f} (test - OOF {r['test'] - r['oof']:+.4f}); mean macro ROC-AUC {r['auc']:.3f}; "
        f"{r['folds']} folds x {r['epochs']} epochs in {r['minutes']:.1f} min after the data"
    )
    return 0 if r["gap"] >= BAR else 1


if __name__ == "__main__":
    sys.exit(main())
