"""The seed solution's claims (and ours), measured on two CPU benchmarks; tables in experiments/README.md.

    python scripts/claims.py               # +-15 degree benchmark (after `make demo`)
    python scripts/claims.py --bench full  # full task: 10-14 letters, any rotation (after `make demo-full`)

Each trains what is missing (resumable), then scores every row.
- easy: the demo's data (`easy` synthetic preset, 8,000 + 1,000 images, seed 0) and the previous
  `cpu` preset (small_cnn, average pooling, 16 epochs from scratch; EASY_MODEL), 5 folds, seeds
  fixed. Each training variant changes one thing from the `claims_easy` run.
- full: demo-full's data (`real` preset, procedural glyphs, 8,000 + 2,000 images) and the `cpu_full`
  preset fine-tuned 4 epochs from demo-full's glyph pretraining; the base trains 5 folds, each variant
  (no augmentation, flips, average pooling, pooled head, no pretraining) trains fold 0.
Rows that compare decodings or ensembling read the saved logits of those runs; nothing is tuned on
the test answers (thresholds and temperatures come from out-of-fold predictions).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from math import nan
from pathlib import Path

import numpy as np

from multimnist import decode
from multimnist.data.dacon import DaconLayout, read_label_csv
from multimnist.decode import aggregate, decode_with, score_candidates, view_columns
from multimnist.runs import collect_runs, oof_matrix, test_matrix
from multimnist.stages import Recipe, Stage, run_recipe

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
# The +-15 degree table's model: the `cpu` preset as it was before glyph pretraining (small_cnn,
# average pooling, 16 epochs from scratch), pinned so the table stays reproducible as `cpu` moves on.
EASY_MODEL = ["experiment=cpu", "backbone=small_cnn", "backbone.head=pooled", "backbone.global_pool=avg"]
EASY_MODEL += ["optimizer.lr=3e-3"]  # small_cnn's own average pooling: the cpu preset's lse came later
EASY_MODEL += ["trainer.epochs=16", "trainer.batch_size=64"]
# The full table's pretraining: 40 x 30,000 crops, what make demo-full ran until 2026-12-01 (it now
# runs 30 epochs, to fit 5 folds in 30 min), pinned so the table stays reproducible.
FULL_WEIGHTS = "experiments/glyphs_fcn_e40/pretrain/weights.pt"
FULL_PRETRAIN = (
    "python -m multimnist.pretrain backbone=fcn exp=glyphs_fcn_e40 trainer.epochs=40 crops.per_epoch=30000 "
    "trainer.precision=bf16 trainer.channels_last=true"
)


def train_args(base: list[str], variant: list[str], absolute: bool = True) -> list[str]:
    """The base overrides less the keys the variant sets, then the variant's. `absolute` makes a
    weights file absolute, as the demos pass it, so that the runs they trained are the same config."""
    keys = {a.split("=", 1)[0] for a in variant}
    kept = [a.split("=", 1) for a in base if a.split("=", 1)[0] not in keys]
    path = ROOT if absolute else Path()
    return [f"{k}={path / v}" if k == "backbone.weights" else f"{k}={v}" for k, v in kept] + variant


@dataclass
class Benchmark:
    """The data, the shared train overrides, and the variants (experiment name -> what it changes)."""

    data: str  # relative to the repository root
    base: list[str]
    variants: dict[str, list[str]]
    folds: dict[str, str]  # experiment -> folds trained (default all five)
    mark: str
    needs: str  # what writes the data (and weights) first

    def command(self, name: str) -> str:
        """A variant's training command as a user types it from the repository root."""
        args = [f"data.root={self.data}", *train_args(self.base, self.variants[name], absolute=False)]
        args.append(f"exp={name}")
        return "python -m multimnist.train " + " ".join(args + [f"fold={self.folds.get(name, FOLDS)}", "-m"])


FOLDS = "0,1,2,3,4"
END = "<!-- end of table -->"
EASY = Benchmark(
    data="data/demo",
    base=EASY_MODEL,
    variants={
        "claims_easy": [],
        "claims_rot90": ["augmentation=rot90"],
        "claims_rot90_flip": ["augmentation=rot90_flip"],
        "claims_no_denoise": ["data.denoise=false"],
    },
    folds={},
    mark="<!-- claims table (scripts/claims.py) -->",
    needs="make demo",
)
FULL = Benchmark(
    data="data/full_procedural",
    base=[  # measured with cpu_full's max head and lr of then (lse since 2026-12-01, lr 2e-3 since 12-02)
        "experiment=cpu_full",
        "backbone.global_pool=max",
        "optimizer.lr=1e-3",
        "trainer.epochs=4",
        f"backbone.weights={FULL_WEIGHTS}",
    ],
    variants={
        "claims_full": [],
        "claims_full_no_aug": ["augmentation=none"],
        "claims_full_flip": ["augmentation=rot90_flip"],
        "claims_full_avg": ["backbone.global_pool=avg"],
        "claims_full_pooled_max": ["backbone.head=pooled"],
        "claims_full_scratch": ["backbone.weights=null"],
    },
    folds={f"claims_full_{k}": "0" for k in ("no_aug", "flip", "avg", "pooled_max", "scratch")},
    mark="<!-- full-rotation claims table (scripts/claims.py --bench full) -->",
    needs=f"make demo-full && {FULL_PRETRAIN}",
)


class Bench:
    """Saved logits of one experiment (optionally some of its folds), scored like the ensemble does."""

    def __init__(self, bench: Benchmark, name: str, folds: list[int] | None = None):
        self.runs = [
            r
            for r in collect_runs(EXPERIMENTS, [name], allow_partial=True)
            if folds is None or r.fold in folds
        ]
        layout = DaconLayout(ROOT / bench.data)
        answers = read_label_csv(layout.path("train_csv"))
        self.test_labels = read_label_csv(layout.path("test_answer")).to_numpy()
        self.index = answers.index.to_numpy()
        self.oof, rows = oof_matrix(self.runs, self.index, True)
        self.labels = answers.to_numpy()[rows]
        counts = answers.to_numpy().sum(1)
        self.count_range = (int(counts.min()), int(counts.max()))
        self.test, self.test_w = test_matrix(self.runs, {name: 1.0})

    def score(self, aggregation="prob_mean", views="identity", decoding="global", temperature=True):
        cands = score_candidates(self.oof, self.labels, np.ones(1), self.count_range, temperature)
        c = next(c for c in cands if (c.aggregation, c.views, c.decoding) == (aggregation, views, decoding))
        probs = aggregate(self.test, aggregation, view_columns(views), self.test_w, c.temperature)
        return c.oof_accuracy, decode.cell_accuracy(decode_with(c, probs, self.count_range), self.test_labels)

    def single_folds(self, views="identity"):
        """Test accuracy of each fold's model alone (threshold tuned on its own OOF)."""
        out = []
        for run in self.runs:
            rows = np.searchsorted(self.index, run.oof_index)  # Dacon ids are sorted
            oof = aggregate(run.oof[:, None], "prob_mean", view_columns(views), np.ones(1), 1.0)
            test = aggregate(run.test[:, None], "prob_mean", view_columns(views), np.ones(1), 1.0)
            t, _ = decode.tune_global(oof, self.labels[rows])
            out.append(decode.cell_accuracy(decode.threshold(test, t), self.test_labels))
        return out

    def calibration(self):
        z = self.oof[:, 0, 0]
        t = decode.fit_temperature(z, self.labels)
        p0, p1 = decode.sigmoid(z), decode.sigmoid(z / t)
        return (
            t,
            decode.nll(p0, self.labels),
            decode.nll(p1, self.labels),
            decode.ece(p0, self.labels),
            decode.ece(p1, self.labels),
        )


class Rows(list):
    """The table's rows: (claim, setting, run, OOF accuracy, test accuracy)."""

    def add(self, claim: str, setting: str, source: str, scores: tuple[float, float]) -> None:
        self.append((claim, setting, source, *scores))


def easy_rows(b: Benchmark) -> tuple[Rows, list[str]]:
    """The seed's claims on the +-15 degree demo benchmark, and the notes under the table."""
    base, rot, flip, raw = (Bench(b, n) for n in b.variants)
    rows = Rows()
    add = rows.add

    add("1. rot90 augmentation vs none", "no augmentation", "claims_easy", base.score())
    add("", "rot90 augmentation", "claims_rot90", rot.score())
    add("2. adding flips hurts", "rot90", "claims_rot90", rot.score())
    add("", "rot90 + flips", "claims_rot90_flip", flip.score())
    add(
        "3. rot90 TTA vs none",
        "identity view (rot90-trained model)",
        "claims_rot90",
        rot.score(views="identity"),
    )
    add("", "4 rot90 views (rot90-trained model)", "claims_rot90", rot.score(views="all"))
    add("", "identity view (unaugmented model)", "claims_easy", base.score(views="identity"))
    add("", "4 rot90 views (unaugmented model)", "claims_easy", base.score(views="all"))
    add("4. threshold 0.6 vs 0.5 vs tuned", "0.5", "claims_easy", base.score(decoding="fixed_0.5"))
    add("", "0.6", "claims_easy", base.score(decoding="fixed_0.6"))
    add("", "tuned on OOF", "claims_easy", base.score(decoding="global"))
    singles = base.single_folds()
    add(
        "5. 5-fold ensemble vs one fold",
        "one fold (mean of 5 single models)",
        "claims_easy",
        (nan, np.mean(singles)),
    )
    add("", "5-fold ensemble", "claims_easy", base.score())
    add(
        "6. mean of probabilities vs logits",
        "mean of probabilities",
        "claims_easy",
        base.score(aggregation="prob_mean"),
    )
    add("", "mean of logits", "claims_easy", base.score(aggregation="logit_mean"))
    add("7. count-aware decoding", "tuned threshold", "claims_easy", base.score(decoding="global"))
    add("", f"+ count clip into {list(base.count_range)}", "claims_easy", base.score(decoding="count_aware"))
    add(
        "8. temperature scaling",
        "0.5 on raw probabilities",
        "claims_easy",
        base.score(decoding="fixed_0.5", temperature=False),
    )
    add("", "0.5 after temperature", "claims_easy", base.score(decoding="fixed_0.5", temperature=True))
    add("", "0.6 on raw probabilities", "claims_easy", base.score(decoding="fixed_0.6", temperature=False))
    add("", "0.6 after temperature", "claims_easy", base.score(decoding="fixed_0.6", temperature=True))
    add("9. denoise (keep only 255)", "denoised input", "claims_easy", base.score())
    add("", "raw noisy input", "claims_no_denoise", raw.score())
    t, nll0, nll1, ece0, ece1 = base.calibration()
    notes = [
        "Unless a row says otherwise: mean of probabilities, identity view, a global threshold tuned on",
        "OOF, temperature fitted on OOF. Single folds: " + ", ".join(f"{s:.4f}" for s in singles) + ".",
        f"Calibration of one view's OOF logits: T={t:.3f}, NLL {nll0:.4f} -> {nll1:.4f}, "
        f"ECE {ece0:.4f} -> {ece1:.4f}.",
    ]
    return rows, notes


def full_rows(b: Benchmark) -> tuple[Rows, list[str]]:
    """The claims on the full task (10-14 letters, any rotation), and the notes under the table."""
    five = Bench(b, "claims_full")
    base, no_aug, flip, avg, pooled_max, scratch = (
        Bench(b, n, folds=[0]) for n in ("claims_full", *list(b.variants)[1:])
    )
    rows = Rows()
    add = rows.add

    add("1. rot90 augmentation vs none", "no augmentation", "claims_full_no_aug", no_aug.score())
    add("", "rot90 augmentation", "claims_full", base.score())
    add("2. adding flips hurts", "rot90", "claims_full", base.score())
    add("", "rot90 + flips", "claims_full_flip", flip.score())
    add("3. rot90 TTA vs none", "identity view (rot90-trained model)", "claims_full", base.score())
    add("", "4 rot90 views (rot90-trained model)", "claims_full", base.score(views="all"))
    add("", "identity view (unaugmented model)", "claims_full_no_aug", no_aug.score())
    add("", "4 rot90 views (unaugmented model)", "claims_full_no_aug", no_aug.score(views="all"))
    for setting, decoding in (("0.5", "fixed_0.5"), ("0.6", "fixed_0.6"), ("tuned on OOF", "global")):
        claim = "4. threshold 0.6 vs 0.5 vs tuned (5 folds, 4 views)" if decoding == "fixed_0.5" else ""
        add(claim, setting, "claims_full", five.score(views="all", decoding=decoding))
    singles = five.single_folds(views="all")
    add(
        "5. 5-fold ensemble vs one fold",
        "one fold (mean of 5 single models)",
        "claims_full",
        (nan, np.mean(singles)),
    )
    add("", "5-fold ensemble", "claims_full", five.score(views="all"))
    add("6. mean of probabilities vs logits", "mean of probabilities", "claims_full", five.score(views="all"))
    add("", "mean of logits", "claims_full", five.score(aggregation="logit_mean", views="all"))
    add("7. count-aware decoding", "tuned threshold", "claims_full", five.score(views="all"))
    clip = f"+ count clip into {list(five.count_range)}"
    add("", clip, "claims_full", five.score(views="all", decoding="count_aware"))
    add("10. glyph pretraining vs none", "from scratch", "claims_full_scratch", scratch.score())
    add("", "pretrained on glyph crops", "claims_full", base.score())
    add("11. presence head", "per-location scores, max over places", "claims_full", base.score())
    add("", "per-location scores, average (= pooled avg)", "claims_full_avg", avg.score())
    add("", "max-pooled features, then linear", "claims_full_pooled_max", pooled_max.score())
    notes = [
        "Rows 1-3 and 10-11 compare fold 0 alone (identity view unless a row says otherwise); rows 4-7",
        "use all five folds and the 4 rot90 views. Every decoding is tuned on OOF predictions only.",
        "Single folds (4 views): " + ", ".join(f"{s:.4f}" for s in singles) + ".",
        "Per-location average pooling equals pooled average (a linear head commutes with the mean).",
    ]
    return rows, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", choices=("easy", "full"), default="easy")
    args = parser.parse_args()
    bench, make_rows = (EASY, easy_rows) if args.bench == "easy" else (FULL, full_rows)
    data = ROOT / bench.data
    weights = [a.split("=", 1)[1] for a in bench.base if a.startswith("backbone.weights=")]
    for path in [data / "synth.json", *(ROOT / w for w in weights)]:
        if not path.is_file():
            print(f"{path} is missing: run `{bench.needs}` first (it writes the benchmark's inputs)")
            return 2
    for name in bench.variants:  # each variant's folds, through the recipe runner (finished ones skipped)
        folds = [int(f) for f in bench.folds.get(name, FOLDS).split(",")]
        stage = Stage("folds", "train", exp=name, args=train_args(bench.base, bench.variants[name]))
        run_recipe(Recipe(f"claims {name}", [stage], str(data), str(EXPERIMENTS), folds=folds))
    rows, notes = make_rows(bench)
    floor = 1 - read_label_csv(DaconLayout(data).path("test_answer")).to_numpy().mean()
    lines = [bench.mark, "", "| claim | setting | run | OOF acc | test acc |", "|---|---|---|---|---|"]
    for claim, setting, source, oof, test in rows:
        oof_s = "-" if oof != oof else f"{oof:.4f}"
        lines.append(f"| {claim} | {setting} | `{source}` | {oof_s} | {test:.4f} |")
    lines += ["", f"All-zeros floor of the test set: {floor:.4f}. " + notes[0], *notes[1:], ""]
    lines += [
        "Commands (re-running skips finished folds):",
        "",
        "```",
        f"{bench.needs}   # writes {bench.data}",
    ]
    lines += [*(bench.command(n) for n in bench.variants), f"python scripts/claims.py --bench {args.bench}"]
    lines += ["```", END]
    table = "\n".join(lines)
    print(table)
    readme = EXPERIMENTS / "README.md"
    text = readme.read_text()
    if bench.mark in text:  # replace this benchmark's table, from its mark to its end mark
        start = text.index(bench.mark)
        end = text.find(END, start)
        text = text[:start] + table + (text[end + len(END) :] if end >= 0 else "\n")
    else:
        text += "\n" + table + "\n"
    readme.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
