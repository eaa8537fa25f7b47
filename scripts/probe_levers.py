"""A one-fold probe of the three levers on real handwriting, in minutes on a CPU (not the 5-fold table).

    python scripts/probe_levers.py --dacon7 mnist_data/train.csv [--epochs 6] [--out experiments/probe]

Data: the generator's realistic layout with letters clustered (`compositor.spread=0.8`, not the
stream's 1.0) from pool B of the competition's glyphs (--dacon7); the stream composes from pool A
(disjoint glyphs) in the default layout, so it helps only if it carries over to another glyph set
and layout. Rows: `experiment=cpu_full` (multimnist_fcn) and tf_effnet_lite0 from ImageNet with the
per-location head, each with and without the stream, from no glyph pretraining; and cpu_full after
glyph pretraining on pool A (--pretrain-epochs x 30,000 crops), with and without; fold 0 only. Prints
each row's best validation accuracy, the share of the floor->perfect gap it closes, and its minutes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from multimnist.data.dacon import DaconLayout, load_split
from multimnist.data.folds import load_or_make_folds
from multimnist.decode import gap_closed
from multimnist.io import OutputError, claim_folder
from multimnist.stages import Recipe, Stage, run_recipe

COMMON = ["experiment=cpu_full", "trainer.num_workers=1"]
LITE0 = ["backbone=tf_effnet_lite0", "backbone.pretrained=true", "backbone.head=per_location"]
LITE0 += ["backbone.img_size=128", "optimizer.lr=1e-3"]
ROWS = {  # name -> overrides after COMMON (PRETRAINED: the pool-A glyph pretraining's weights)
    "fcn scratch": [],
    "fcn scratch + stream": ["STREAM"],
    "lite0 ImageNet": LITE0,
    "lite0 ImageNet + stream": [*LITE0, "STREAM"],
    "fcn pool-A glyphs": ["PRETRAINED"],
    "fcn pool-A glyphs + stream": ["PRETRAINED", "STREAM"],
}


def floor_of(root: Path) -> float:
    """All-zeros accuracy of fold 0's validation images (the stratified 5 folds training uses)."""
    split = load_split(DaconLayout(root), "train")
    folds = load_or_make_folds(None, split.indices, split.labels, 5, 42, "stratified")
    return 1 - float(split.labels[folds.fold.to_numpy() == 0].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dacon7", required=True, help="mnist_data's train.csv (and/or test.csv, or the folder)"
    )
    parser.add_argument("--out", default="experiments/probe_levers")
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--stream", type=int, default=2400, help="stream images per epoch")
    parser.add_argument("--pretrain-epochs", type=int, default=20, help="pool-A glyph pretraining")
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    args = parser.parse_args()
    try:
        out = claim_folder(args.out, "probe_levers")  # never over files it did not write
    except OutputError as err:
        parser.error(str(err))
    glyphs = str(Path(args.dacon7).resolve())
    data = out / "data"
    synth = [f"n_train={args.n_train}", "n_test=100", "seed=0", "glyphs=dacon7", f"glyphs.path={glyphs}"]
    stages = [Stage("data", "synth", args=[*synth, "glyphs.pool=B", "compositor.spread=0.8"])]
    stream = ["synthetic=dacon7", f"data.synthetic.glyphs.path={glyphs}", "data.synthetic.glyphs.pool=A"]
    stream.append(f"data.synthetic.per_epoch={args.stream}")
    if any("PRETRAINED" in ROWS[r] for r in args.rows):
        pre = ["backbone=fcn", f"trainer.epochs={args.pretrain_epochs}", "crops.per_epoch=30000"]
        pre += ["trainer.precision=bf16", "trainer.channels_last=true"]
        pre += ["glyphs=dacon7", f"glyphs.path={glyphs}", "glyphs.pool=A"]
        stages.append(Stage("pretrain", "pretrain", exp=f"glyphs_A_e{args.pretrain_epochs}", args=pre))
    exps = {}
    for name in args.rows:
        exps[name] = name.replace(" + ", "_").replace(" ", "_")
        extra = [o for x in ROWS[name] if x != "PRETRAINED" for o in (stream if x == "STREAM" else [x])]
        weights = "pretrain" if "PRETRAINED" in ROWS[name] else None
        args_ = [*COMMON, f"trainer.epochs={args.epochs}", *extra]
        stages.append(Stage(f"row {name}", "train", exp=exps[name], args=args_, weights=weights))
    # one recipe: the runner skips finished stages and keeps every stage's minutes (out/stages.json)
    ran = run_recipe(Recipe("probe-levers", stages, str(data), str(out), folds=[0]))
    seconds = {r["stage"]: r["seconds"] for r in ran["stages"]}
    floor, table = floor_of(data), []
    for name in args.rows:
        metrics = pd.read_csv(out / exps[name] / "fold0" / "metrics.csv")
        best = float(metrics.val_acc.max())
        minutes = (seconds[f"row {name}"] or float("nan")) / 60
        table.append((name, best, gap_closed(best, floor), minutes, float(metrics.seconds.mean())))
    print(f"\nfold 0 of {args.n_train} dacon7-B images (spread 0.8), {args.epochs} epochs, floor {floor:.4f}")
    print("| row | best val acc | gap closed | min | s/epoch |\n|---|---|---|---|---|")
    for name, best, gap, minutes, per_epoch in table:
        print(f"| {name} | {best:.4f} | {gap:.1%} | {minutes:.1f} | {per_epoch:.0f} |")


if __name__ == "__main__":
    main()
