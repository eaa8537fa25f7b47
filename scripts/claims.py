"""The seed solution's claims (and ours), measured on the demo benchmark; table in experiments/README.md.

    python scripts/claims.py            # trains what is missing (resumable), then scores every row

Benchmark: the demo's data (`easy` synthetic preset, 8,000 + 1,000 images, seed 0) and the `cpu`
experiment preset, 5 folds, seeds fixed. Each training variant changes one thing from the demo run.
Rows that compare decodings or ensembling read the saved logits of those runs; nothing is tuned on
the test answers (thresholds and temperatures come from out-of-fold predictions).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from multimnist import decode
from multimnist.data.dacon import DaconLayout, read_label_csv
from multimnist.ensemble import collect_runs, decode_with, oof_matrix, score_candidates, test_matrix
from multimnist.tta import aggregate

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "demo"
EXPERIMENTS = ROOT / "experiments"
TRAIN = [
    "-m",
    "multimnist.train",
    f"data.root={DATA}",
    "experiment=cpu",
    f"paths.experiments={EXPERIMENTS}",
    "fold=0,1,2,3,4",
    "trainer.progress=false",
]
VARIANTS = {  # experiment name -> what it changes from the demo run
    "demo": [],
    "claims_rot90": ["augmentation=rot90"],
    "claims_rot90_flip": ["augmentation=rot90_flip"],
    "claims_no_denoise": ["data.denoise=false"],
}
MARK = "<!-- claims table (scripts/claims.py) -->"


def command(name: str) -> str:
    """The training command of a variant as a user types it from the repository root."""
    args = ["data.root=data/demo", "experiment=cpu", f"exp={name}", *VARIANTS[name], "fold=0,1,2,3,4", "-m"]
    return "python -m multimnist.train " + " ".join(args)


class Bench:
    """Saved logits of one experiment, scored like the ensemble step scores them."""

    def __init__(self, name: str):
        self.runs = collect_runs(EXPERIMENTS, [name])
        layout = DaconLayout(DATA)
        answers = read_label_csv(layout.path("train_csv"))
        self.test_labels = read_label_csv(layout.path("test_answer")).to_numpy()
        self.index = answers.index.to_numpy()
        self.oof, rows = oof_matrix(self.runs, self.index, False)
        self.labels = answers.to_numpy()[rows]
        counts = answers.to_numpy().sum(1)
        self.count_range = (int(counts.min()), int(counts.max()))
        self.test, self.test_w = test_matrix(self.runs, {name: 1.0})

    def score(self, aggregation="prob_mean", views="identity", decoding="global", temperature=True):
        cands = score_candidates(self.oof, self.labels, np.ones(1), self.count_range, temperature)
        c = next(c for c in cands if (c.aggregation, c.views, c.decoding) == (aggregation, views, decoding))
        probs = aggregate(
            self.test, aggregation, [0] if views == "identity" else None, self.test_w, c.temperature
        )
        return c.oof_accuracy, decode.cell_accuracy(decode_with(c, probs, self.count_range), self.test_labels)

    def single_folds(self):
        """Test accuracy of each fold's model alone (identity view, threshold tuned on its own OOF)."""
        out = []
        for run in self.runs:
            rows = np.searchsorted(self.index, run.oof_index)  # Dacon ids are sorted
            t, _ = decode.tune_global(decode.sigmoid(run.oof[:, 0]), self.labels[rows])
            out.append(
                decode.cell_accuracy(decode.threshold(decode.sigmoid(run.test[:, 0]), t), self.test_labels)
            )
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


def main() -> int:
    if not (DATA / "synth.json").is_file():
        print(f"{DATA} is missing: run `make demo` first (it writes the benchmark data and the base run)")
        return 2
    for name, extra in VARIANTS.items():
        print(f"$ {command(name)}", flush=True)
        subprocess.run([sys.executable, *TRAIN, f"exp={name}", *extra, "-m"], check=True, cwd=ROOT)
    base, rot, flip, raw = (Bench(n) for n in VARIANTS)
    floor = 1 - base.test_labels.mean()

    rows: list[tuple[str, str, str, float, float]] = []

    def add(claim: str, setting: str, source: str, scores: tuple[float, float]) -> None:
        rows.append((claim, setting, source, *scores))

    add("1. rot90 augmentation vs none", "no augmentation", "demo", base.score())
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
    add("", "identity view (unaugmented model)", "demo", base.score(views="identity"))
    add("", "4 rot90 views (unaugmented model)", "demo", base.score(views="all"))
    add("4. threshold 0.6 vs 0.5 vs tuned", "0.5", "demo", base.score(decoding="fixed_0.5"))
    add("", "0.6", "demo", base.score(decoding="fixed_0.6"))
    add("", "tuned on OOF", "demo", base.score(decoding="global"))
    singles = base.single_folds()
    add(
        "5. 5-fold ensemble vs one fold",
        "one fold (mean of 5 single models)",
        "demo",
        (float("nan"), np.mean(singles)),
    )
    add("", "5-fold ensemble", "demo", base.score())
    add(
        "6. mean of probabilities vs logits",
        "mean of probabilities",
        "demo",
        base.score(aggregation="prob_mean"),
    )
    add("", "mean of logits", "demo", base.score(aggregation="logit_mean"))
    add("7. count-aware decoding", "tuned threshold", "demo", base.score(decoding="global"))
    add("", f"+ count clip into {list(base.count_range)}", "demo", base.score(decoding="count_aware"))
    add(
        "8. temperature scaling",
        "0.5 on raw probabilities",
        "demo",
        base.score(decoding="fixed_0.5", temperature=False),
    )
    add("", "0.5 after temperature", "demo", base.score(decoding="fixed_0.5", temperature=True))
    add("", "0.6 on raw probabilities", "demo", base.score(decoding="fixed_0.6", temperature=False))
    add("", "0.6 after temperature", "demo", base.score(decoding="fixed_0.6", temperature=True))
    add("9. denoise (keep only 255)", "denoised input", "demo", base.score())
    add("", "raw noisy input", "claims_no_denoise", raw.score())
    t, nll0, nll1, ece0, ece1 = base.calibration()

    lines = [MARK, "", "| claim | setting | run | OOF acc | test acc |", "|---|---|---|---|---|"]
    for claim, setting, source, oof, test in rows:
        oof_s = "-" if oof != oof else f"{oof:.4f}"
        lines.append(f"| {claim} | {setting} | `{source}` | {oof_s} | {test:.4f} |")
    lines += [
        "",
        f"All-zeros floor of the test set: {floor:.4f}. Unless a row says otherwise: mean of probabilities,",
        "identity view, a global threshold tuned on OOF, temperature fitted on OOF. Single folds: "
        + ", ".join(f"{s:.4f}" for s in singles)
        + ".",
        f"Calibration of one view's OOF logits: T={t:.3f}, NLL {nll0:.4f} -> {nll1:.4f}, "
        f"ECE {ece0:.4f} -> {ece1:.4f}.",
        "",
        "Commands (each trains 5 folds; re-running skips finished folds):",
        "",
        "```",
        "make demo   # writes data/demo and the `demo` run",
        *(command(n) for n in VARIANTS if n != "demo"),
        "python scripts/claims.py   # all of the above, then this table",
        "```",
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    readme = EXPERIMENTS / "README.md"
    text = readme.read_text()
    text = text[: text.index(MARK)] if MARK in text else text + "\n"
    readme.write_text(text + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
