"""`make bench-full`: the full task (10-14 letters, any rotation) on real handwriting and on the
generator's own glyphs, every recipe side by side, each 5 folds + the ensemble; one table.

Data (the generator's `real` preset, 8,000 train + 2,000 test images, seed 0):
- `procedural`: procedural glyphs (make demo-full's data);
- `dacon7-B`: the competition's glyph source (--dacon7 FILE_OR_DIR: mnist_data's train.csv and/or
  test.csv) halved by id (`glyphs.pool=B`; pool A is left for pretraining), with the test images on
  a quarter of B's glyphs that no train image uses (`test_glyphs_held_out=0.25`).
Recipes (glyph pretraining of multimnist_fcn on 30,000 crops per epoch, then `experiment=cpu_full`
5 folds, then the ensemble):
- `scratch`: no pretraining, the baseline;
- `procedural`: pretraining on procedural glyphs (what every user has);
- `handdrawn`: pretraining on the same fonts redrawn stroke by stroke (`glyphs=handdrawn`: bent
  strokes, a pen of drifting width and ink), also needing no files;
- `dacon7-A`: pretraining on pool A of the competition's glyphs (no glyph of the data's);
- `procedural+self`: the `procedural` recipe, then self-training: crops of its own training images
  where its folds find each labelled letter (multimnist.harvest), pretraining again on them mixed
  with procedural crops (from the first weights), and fine-tuning again; `procedural+self2` runs a
  second round, harvested by the first round's folds; `dacon7-A+self` is the same round after the
  `dacon7-A` recipe, its harvest mixed with pool A's glyphs;
- `...+pseudo`: then a pseudo-labelling round: the same weights fine-tuned again, 5 folds, with the
  last ensemble's test predictions (its submission.csv) as labels of the test images added to every
  fold's training images (`data.pseudo_labels`). Its test score is transductive: the model has seen
  the test images (never their answers); the OOF is still on labelled images alone.

A row may name variants of the fine-tuning after `@` (DATA:RECIPE@VARIANT[,VARIANT...], VARIANTS
below): their overrides go to every fine-tuning stage of the row and their names to the row's
experiments (`@max,lr1`: `_max_lr1`).

Each row's minutes are everything after the data: pretraining, fine-tuning, the ensemble (and for
self-training, both rounds). Finished stages are reused with their recorded times, so re-running
prints the same table; the table also goes to experiments/README.md (its own section) with the
commands each stage ran.

    python scripts/bench_full.py --dacon7 mnist_data/ [--rows procedural:procedural dacon7-B:dacon7-A]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from multimnist.rundir import ENSEMBLE_RECORD, FINISHED_MARK, PRETRAIN_WEIGHTS, ensemble_dir, pretrain_dir

ROOT = Path(__file__).resolve().parents[1]
FOLDS = "0,1,2,3,4"
DATASETS = ("procedural", "dacon7-B")
RECIPES = (  # a pretraining source, then optional rounds: self-training (once or twice), pseudo-labels
    "scratch",
    "procedural",
    "handdrawn",
    "dacon7-A",
    "procedural+self",
    "handdrawn+self",
    "procedural+self2",
    "dacon7-A+self",
    "procedural+pseudo",
    "dacon7-A+pseudo",
    "procedural+self+pseudo",
    "dacon7-A+self+pseudo",
)
DACON7_A = ["data.synthetic.glyphs.path={dacon7}", "data.synthetic.glyphs.pool=A"]  # the stream's glyphs
SPREAD = "data.synthetic.compositor.spread=0.8"  # the stream's layout: not the data's
VARIANTS = {  # DATA:RECIPE@VARIANT: extra fine-tuning overrides (a lever, judged against the plain row)
    "max": ["backbone.global_pool=max"],  # cpu_full's head before 2026-12-01: each letter's best place
    "seed1": ["trainer.seed=1"],  # the fine-tune's seed (init, shuffle, augmentation): the spread of a row
    "lr1": ["optimizer.lr=1e-3"],  # cpu_full's learning rate before 2026-12-02 (2e-3 since)
    "lr4": ["optimizer.lr=4e-3"],  # twice cpu_full's: does the rise from 1e-3 to 2e-3 go on?
    # The synthetic stream (docs/levers.md): composed each epoch from pool A of --dacon7 (disjoint
    # from the dacon7-B data's glyphs), or from procedural glyphs; in another layout than the data's
    # (letters clustered, spread 0.8), so a gain is not the stream matching the data's own layout.
    "stream": ["synthetic=dacon7", *DACON7_A, "data.synthetic.per_epoch=6400", SPREAD],  # = a fold's images
    "halfstream": [
        "synthetic=dacon7",
        *DACON7_A,
        "data.synthetic.per_epoch=3200",
        SPREAD,
    ],  # at half the price?
    "pstream": ["synthetic=procedural", "data.synthetic.per_epoch=6400", SPREAD],
}
DEFAULT_ROWS = (
    "procedural:scratch",
    "procedural:procedural",
    "dacon7-B:scratch",
    "dacon7-B:procedural",
    "dacon7-B:handdrawn",
    "dacon7-B:procedural+self",
    "dacon7-B:dacon7-A",
    "dacon7-B:dacon7-A+self",
)


UNTAGGED_EPOCHS = 30  # the rows before 2026-12-02 all pretrained 30 epochs and keep their names


@dataclass
class Budget:
    pretrain_epochs: int = 60  # x crops.per_epoch crops (15-23 s per epoch on 2 cores); 30 before 2026-12-02
    crops: int = 30000
    epochs: int = 5  # fine-tuning epochs per fold
    folds: str = FOLDS
    self_epochs: int = 8  # the self-training round's pretraining epochs
    n_train: int = 8000
    n_test: int = 2000

    def pretrain_tag(self) -> str:
        """Part of a fine-tune's experiment name: its pretraining's epochs, unless UNTAGGED_EPOCHS."""
        return "" if self.pretrain_epochs == UNTAGGED_EPOCHS else f"_p{self.pretrain_epochs}"

    def pretrain_text(self, recipe: str) -> str:
        """The table's pretraining epochs: the first pretraining's, and each self-training round's."""
        if recipe == "scratch":
            return "-"
        return " + ".join([str(self.pretrain_epochs)] + [str(self.self_epochs)] * self_rounds(recipe))


def self_rounds(recipe: str) -> int:
    """How many self-training rounds a recipe runs: `+self2` two, `+self` one."""
    _, *rounds = recipe.split("+")
    return 2 if "self2" in rounds else 1 if "self" in rounds else 0


@dataclass
class Bench:
    """Runs the stages (skipping finished ones) and records each stage's wall time."""

    experiments: Path
    data_dir: Path
    budget: Budget
    dacon7: str | None = None
    times: dict[str, float] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)  # every stage's, as run from the repository root

    def __post_init__(self) -> None:
        self.times_file = self.experiments / "bench_full_times.json"
        if self.times_file.is_file():
            self.times = json.loads(self.times_file.read_text())

    def stage(self, key: str, done: bool, cmds: list[list[str]]) -> float:
        """Run `cmds` unless `done` (then its recorded time); returns the stage's wall seconds."""
        for cmd in cmds:
            shown = "python " + " ".join(str(a).replace(str(ROOT) + "/", "") for a in cmd)
            if self.dacon7 is not None:  # as a user writes it: the competition's folder (or a file in it)
                given = Path(self.dacon7).resolve()
                mine, theirs = (given.parent, "mnist_data") if given.is_file() else (given, "mnist_data/")
                shown = shown.replace(str(mine), theirs)
            if shown not in self.commands:
                self.commands.append(shown)
        if done:
            seconds = self.times.get(key, float("nan"))
            print(f"[bench-full] {key}: finished ({seconds / 60:.1f} min when it ran)", flush=True)
            return seconds
        started = time.perf_counter()
        for cmd in cmds:
            print("[bench-full] $ python", " ".join(cmd), flush=True)
            subprocess.run([sys.executable, *cmd], check=True, cwd=ROOT)
        self.times[key] = time.perf_counter() - started
        self.experiments.mkdir(parents=True, exist_ok=True)
        self.times_file.write_text(json.dumps(self.times, indent=2) + "\n")
        print(f"[bench-full] {key}: {self.times[key] / 60:.1f} min\n", flush=True)
        return self.times[key]

    # --- the stages --------------------------------------------------------------------------

    def glyph_args(self, pool: str) -> list[str]:
        if self.dacon7 is None:
            raise SystemExit("dacon7 rows need --dacon7 FILE_OR_DIR (mnist_data's train.csv / test.csv)")
        return ["glyphs=dacon7", f"glyphs.path={Path(self.dacon7).resolve()}", f"glyphs.pool={pool}"]

    def data(self, name: str) -> Path:
        out = self.data_dir / f"full_{name.replace('-', '')}"
        b = self.budget
        cmd = ["-m", "multimnist.synth", f"out={out}", f"n_train={b.n_train}", f"n_test={b.n_test}"]
        cmd += ["seed=0", "preset=real", "progress=false"]
        if name == "dacon7-B":
            cmd += [*self.glyph_args("B"), "test_glyphs_held_out=0.25"]
        self.stage(f"data {name}", (out / "synth.json").is_file(), [cmd])
        return out

    def pretraining(self, exp: str, epochs: int, start: list[str], glyphs: list[str]) -> tuple[Path, float]:
        """One glyph-pretraining stage of multimnist_fcn (`start`: where it starts and what it mixes in)."""
        cmd = ["-m", "multimnist.pretrain", "backbone=fcn", f"exp={exp}"]
        cmd += [f"paths.experiments={self.experiments}", *start]
        cmd += [f"trainer.epochs={epochs}", f"crops.per_epoch={self.budget.crops}", "trainer.precision=bf16"]
        cmd += ["trainer.channels_last=true", "trainer.progress=false", *glyphs]
        weights = pretrain_dir(self.experiments, exp) / PRETRAIN_WEIGHTS
        return weights, self.stage(f"pretrain {exp}", weights.is_file(), [cmd])

    def source_glyphs(self, source: str) -> list[str]:
        """The pretraining overrides of a recipe's glyph source."""
        if source == "dacon7-A":
            return self.glyph_args("A")
        return {"procedural": [], "handdrawn": ["glyphs=handdrawn"]}[source]

    def pretrain(self, source: str) -> tuple[Path, float]:
        tag = "" if source == "procedural" else f"_{source.replace('-', '')}"  # _handdrawn, _dacon7A
        exp = f"glyphs_fcn_e{self.budget.pretrain_epochs}{tag}"
        return self.pretraining(exp, self.budget.pretrain_epochs, [], self.source_glyphs(source))

    def fine_tune(
        self, data: Path, exp: str, weights: Path | None, variant: str = "", extra: tuple | list = ()
    ) -> float:
        b = self.budget
        train = ["-m", "multimnist.train", f"data.root={data}", "experiment=cpu_full", f"exp={exp}"]
        train += [
            f"paths.experiments={self.experiments}",
            f"trainer.epochs={b.epochs}",
            "trainer.progress=false",
        ]
        train += [f"backbone.weights={weights}"] if weights else []
        overrides = variant_overrides(variant)
        if any("{dacon7}" in o for o in overrides) and self.dacon7 is None:
            raise SystemExit(f"variant {variant} composes from the Dacon-7 glyphs: give --dacon7 FILE_OR_DIR")
        train += [*(o.format(dacon7=Path(self.dacon7 or ".").resolve()) for o in overrides), *extra]
        ens = [
            "-m",
            "multimnist.ensemble",
            f"data.root={data}",
            f"exp={exp}",
            f"paths.experiments={self.experiments}",
        ]
        folds = [int(f) for f in b.folds.split(",")]
        finished = all((self.experiments / exp / f"fold{k}" / FINISHED_MARK).is_file() for k in folds)
        finished &= (ensemble_dir(self.experiments, exp) / ENSEMBLE_RECORD).is_file()
        partial = ["ensemble.allow_partial=true"] if len(folds) < 5 else []
        return self.stage(f"fine-tune {exp}", finished, [[*train, f"fold={b.folds}", "-m"], [*ens, *partial]])

    def self_train(self, first_exp: str, first_weights: Path, glyphs: list[str]) -> tuple[Path, float]:
        """Harvest `first_exp`'s training images and pretrain again from `first_weights`, the harvest
        mixed with `glyphs` (the first pretraining's source)."""
        start = [f"backbone.weights={first_weights}", f"harvest.exp={first_exp}", "optimizer.lr=1e-3"]
        return self.pretraining(f"self_{first_exp}", self.budget.self_epochs, start, glyphs)

    # --- one row -------------------------------------------------------------------------------

    def row(self, dataset: str, recipe: str, variant: str = "") -> dict:
        data = self.data(dataset)
        tag = dataset.replace("-", "")
        minutes, weights = 0.0, None
        source, *rounds = recipe.split("+")
        if recipe != "scratch":
            weights, seconds = self.pretrain(source)
            minutes += seconds / 60
        base = source.replace("-", "") + self.budget.pretrain_tag()
        suffix = "".join(f"_{v}" for v in variant_names(variant))
        exp = f"bench_{tag}_{base}_e{self.budget.epochs}{suffix}"
        minutes += self.fine_tune(data, exp, weights, variant) / 60
        again = self_rounds(recipe)
        glyphs = self.source_glyphs(source) if again else []
        for k in range(1, again + 1):  # each round harvests from the previous round's folds
            weights, seconds = self.self_train(exp, weights, glyphs)
            name = f"self{self.budget.pretrain_tag()}" if source == "procedural" else f"{base}self"
            exp = f"bench_{tag}_{name}{k if k > 1 else ''}_e{self.budget.epochs}{suffix}"
            minutes += (seconds + self.fine_tune(data, exp, weights, variant)) / 60
        if "pseudo" in rounds:  # the same weights again, the last ensemble's test predictions added
            labels = ensemble_dir(self.experiments, exp) / "submission.csv"
            exp = exp.replace(f"_e{self.budget.epochs}", f"pseudo_e{self.budget.epochs}", 1)
            minutes += self.fine_tune(data, exp, weights, variant, [f"data.pseudo_labels={labels}"]) / 60
        return self.result(dataset, recipe, exp, minutes, variant)

    def result(self, dataset: str, recipe: str, exp: str, minutes: float, variant: str = "") -> dict:
        report = json.loads((ensemble_dir(self.experiments, exp) / ENSEMBLE_RECORD).read_text())
        auc = [
            pd.read_csv(p)["val_auc"].iloc[-1]
            for p in sorted((self.experiments / exp).glob("fold*/metrics.csv"))
        ]
        acc, floor, oof = report["test_accuracy"], report["floor"], report["oof_accuracy"]
        b = self.budget
        return {
            "data": dataset,
            "recipe": f"{recipe} + {' '.join(variant_overrides(variant))}".replace("{dacon7}", "mnist_data/")
            if variant
            else recipe,
            "pretraining glyphs": pretraining_glyphs(recipe),
            "pretraining epochs": b.pretrain_text(recipe),
            "exp": exp,
            "folds": len(auc),
            "epochs": b.epochs,
            "lr": fine_tune_lr(self.experiments / exp),
            "minutes": minutes,
            "test": acc,
            "oof": oof,
            "floor": floor,
            "gap": (acc - floor) / (1 - floor),
            "auc": sum(auc) / len(auc),
        }


def variant_names(variant: str) -> list[str]:
    """The names in `VARIANT[,VARIANT...]`, in the order given ("" names none)."""
    return [v for v in variant.split(",") if v]


def variant_overrides(variant: str) -> list[str]:
    """The fine-tuning overrides of the named variants, in their order."""
    return [o for v in variant_names(variant) for o in VARIANTS[v]]


def unknown_variants(variant: str) -> list[str]:
    """The named variants that VARIANTS lacks."""
    return [v for v in variant_names(variant) if v not in VARIANTS]


def fine_tune_lr(exp_dir: Path) -> float:
    """The learning rate a row's folds fine-tuned at, as their stored config says (cpu_full's default
    changed on 2026-12-02, so a folder of older runs holds both)."""
    lrs = {OmegaConf.load(p).optimizer.lr for p in sorted(exp_dir.glob("fold*/.hydra/config.yaml"))}
    if len(lrs) != 1:
        raise ValueError(f"{exp_dir}: its folds' configs give learning rates {sorted(lrs)}, want one")
    return lrs.pop()


def pretraining_glyphs(recipe: str) -> str:
    source = recipe.split("+")[0]
    text = {
        "scratch": "-",
        "procedural": "procedural",
        "handdrawn": "procedural, redrawn by hand",
        "dacon7-A": "dacon7 pool A",
    }[source]
    rounds = self_rounds(recipe)
    if rounds:
        text += ", then + harvested" + (", twice" if rounds == 2 else "")
    return text


def table(rows: list[dict]) -> str:
    lines = [
        "| data | recipe | pretraining glyphs | pretraining epochs | folds x epochs | fine-tune lr | minutes "
        "| test (floor) | OOF | test - OOF | gap closed | AUC |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['recipe']} | {r['pretraining glyphs']} | {r['pretraining epochs']} | "
            f"{r['folds']} x {r['epochs']} | {r['lr']:g} | "
            f"{r['minutes']:.1f} | {r['test']:.4f} ({r['floor']:.4f}) | {r['oof']:.4f} | "
            f"{r['test'] - r['oof']:+.4f} | {r['gap']:.1%} | {r['auc']:.3f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dacon7", default=None, help="mnist_data's train.csv / test.csv, or their folder")
    parser.add_argument(
        "--rows",
        nargs="*",
        default=None,
        help=f"DATA:RECIPE[@VARIANT[,...]]; data {DATASETS}, recipes {RECIPES}, variants {tuple(VARIANTS)}",
    )
    parser.add_argument("--experiments", default=str(ROOT / "experiments"))
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    for name, value in vars(Budget()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args()
    rows = args.rows or [r for r in DEFAULT_ROWS if args.dacon7 or not r.startswith("dacon7")]
    if not args.dacon7 and not args.rows:
        print("[bench-full] no --dacon7: the real-handwriting rows are left out")
    budget = Budget(**{k: getattr(args, k) for k in vars(Budget())})
    bench = Bench(Path(args.experiments), Path(args.data_dir), budget, args.dacon7)
    results = []
    for spec in rows:
        dataset, _, recipe = spec.partition(":")
        recipe, _, variant = recipe.partition("@")
        if dataset not in DATASETS or recipe not in RECIPES or unknown_variants(variant):
            parser.error(
                f"--rows {spec}: want DATA:RECIPE[@VARIANT[,...]] with data in {DATASETS}, recipe in "
                f"{RECIPES} and variants in {tuple(VARIANTS)}"
            )
        results.append(bench.row(dataset, recipe, variant))
        print(table(results), flush=True)
    text = table(results)
    publish(Path(args.experiments) / "README.md", text, bench.commands)
    print(f"\n[bench-full] {len(results)} row(s), also in {Path(args.experiments) / 'README.md'}:\n\n{text}")
    return 0


MARK, END = "<!-- bench-full table (scripts/bench_full.py) -->", "<!-- end of bench-full table -->"


def row_key(line: str) -> str:
    """What names a table row: data, recipe, pretraining glyphs and epochs, folds x epochs, lr."""
    return "|".join(cell.strip() for cell in line.strip().strip("|").split("|")[:6])


def merged(old: str, text: str, commands: list[str]) -> tuple[str, list[str]]:
    """The section's table and commands with this run's rows and commands merged in: a re-measured
    row replaces its line, other earlier rows and commands stay (a run of some rows loses none)."""
    head, rows = text.splitlines()[:2], text.splitlines()[2:]
    fresh = {row_key(r): r for r in rows}
    kept, seen = [], set()
    for line in old.splitlines():
        if line.startswith("| ") and not line.startswith("| data |"):
            key = row_key(line)
            kept.append(fresh.get(key, line))
            seen.add(key)
    kept += [r for r in rows if row_key(r) not in seen]
    block = old.split("```")[1].strip().splitlines() if old.count("```") >= 2 else []
    return "\n".join(head + kept), list(dict.fromkeys(block + commands))


def publish(readme: Path, text: str, commands: list[str]) -> None:
    """The table and the commands behind it, as the bench-full section of experiments/README.md,
    merged with the rows and commands already there."""
    body = readme.read_text() if readme.is_file() else ""
    start, end = body.find(MARK), body.find(END)
    if start >= 0:
        text, commands = merged(body[start : end if end >= 0 else len(body)], text, commands)
    section = "\n".join([MARK, "", text, "", "Commands (re-running skips finished stages):", "", "```"])
    section += "\n" + "\n".join(commands) + "\n```\n" + END
    if start >= 0:
        body = body[:start] + section + (body[end + len(END) :] if end >= 0 else "\n")
    else:
        body += "\n" + section + "\n"
    readme.write_text(body)


if __name__ == "__main__":
    sys.exit(main())
