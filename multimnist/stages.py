"""A recipe's stages run in order: each is one of the package's commands (`python -m multimnist.synth |
pretrain | train | ensemble`) with its overrides, started as its own process, exactly as a user
types it. `multimnist.recipe` is the command line; benchmarks call `run_recipe` with stages they build.

The runner adds the plumbing a chain needs, so a recipe names no file: where the data goes and
which experiment each stage writes (`data.root`, `out`, `exp`, `paths.experiments`), the pretrained
weights a later stage starts from (`weights: STAGE` -> `backbone.weights=`), the folds a
self-training pretraining harvests (`harvest: STAGE` -> `harvest.exp=`), and the submission that
labels the test images (`pseudo_labels: STAGE` -> `data.pseudo_labels=`).

A stage whose outputs exist and that was last run with the same command is skipped (its recorded
minutes are shown); any other stage runs, and the command itself resumes, reuses or refuses what it
finds. A failed stage stops the recipe with its command's one error line, naming the stage. Each
stage's command and wall time are kept in `<paths.experiments>/stages.json`; the recipe's table goes
to `<paths.experiments>/<last ensemble's exp>/recipe.json`.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from filelock import FileLock

from multimnist.io import save_text
from multimnist.rundir import (
    ENSEMBLE_RECORD,
    FINISHED_MARK,
    METRICS,
    PRETRAIN_WEIGHTS,
    SUBMISSION,
    ensemble_dir,
    fold_dir,
    pretrain_dir,
)

MODULES = {c: f"multimnist.{c}" for c in ("synth", "pretrain", "train", "ensemble")}
STAGE_RECORD = "stages.json"  # in paths.experiments: each stage's last command and wall seconds
RECIPE_RECORD = "recipe.json"  # in the last ensemble's experiment folder: the recipe's table
ALL_FOLDS = [0, 1, 2, 3, 4]


class StageFailed(Exception):
    """A stage's command exited non-zero; the message names the stage and carries its error line."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Stage:
    name: str
    command: str  # synth | pretrain | train | ensemble
    exp: str | None = None
    args: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    weights: str | None = None
    harvest: str | None = None
    pseudo_labels: str | None = None


@dataclass
class Recipe:
    name: str
    stages: list[Stage]
    data_root: str
    experiments: str = "experiments"
    folds: list[int] = field(default_factory=lambda: list(ALL_FOLDS))
    extra: dict[str, list[str]] = field(default_factory=dict)  # command -> overrides for all its stages
    bar: float | None = None

    @classmethod
    def from_mapping(cls, name: str, cfg: Any) -> Recipe:
        """From the recipe config's plain values (`stages` a mapping name -> stage, in order)."""
        stages = [Stage(name=k, **dict(v)) for k, v in cfg["stages"].items()]
        extra = {k: list(v) for k, v in dict(cfg.get("extra") or {}).items()}
        return cls(
            name=name,
            stages=stages,
            data_root=str(cfg["data"]["root"]),
            experiments=str(cfg["paths"]["experiments"]),
            folds=[int(f) for f in cfg.get("folds", ALL_FOLDS)],
            extra=extra,
            bar=cfg.get("bar"),
        )

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def fold_sweep(self) -> str:
        """The train stages' `fold=` value."""
        return ",".join(str(f) for f in self.folds)


# --- checking and planning -------------------------------------------------------------------------

LINKS = {  # link -> (the command of the stage it names, the commands whose stages may have it)
    "weights": ("pretrain", "pretrain", "train"),
    "harvest": ("train", "pretrain"),
    "pseudo_labels": ("ensemble", "train"),
}


def check(recipe: Recipe) -> None:
    """Every stage names a known command and an experiment where it needs one, and each link
    (weights, harvest, pseudo_labels) names an earlier stage of the right command; ValueError otherwise."""
    if not recipe.stages:
        raise ValueError(f"recipe {recipe.name}: no stages")
    if not recipe.folds or any(f < 0 for f in recipe.folds) or len(set(recipe.folds)) < len(recipe.folds):
        raise ValueError(f"folds={recipe.folds}: want distinct fold numbers, e.g. folds=[0,1,2,3,4]")
    seen: dict[str, str] = {}
    for s in recipe.stages:
        where = f"stages.{s.name}"
        if s.command not in MODULES:
            raise ValueError(f"{where}.command={s.command}: want one of {tuple(MODULES)}")
        if s.command != "synth" and not s.exp:
            raise ValueError(f"{where}.exp: required for a {s.command} stage (the experiment it writes)")
        for link, (wanted, *users) in LINKS.items():
            target = getattr(s, link)
            if target is None:
                continue
            if s.command not in users:
                raise ValueError(f"{where}.{link}: a {s.command} stage takes no {link}")
            if seen.get(target) != wanted:
                raise ValueError(
                    f"{where}.{link}={target}: want an earlier {wanted} stage; earlier stages: "
                    + (", ".join(f"{k} ({v})" for k, v in seen.items()) or "none")
                )
        seen[s.name] = s.command


def argv(recipe: Recipe, s: Stage) -> list[str]:
    """The stage's command line after `python -m multimnist.<command>`: the recipe's overrides, the
    plumbing, then the user's extras (the last value of a key wins)."""
    exps, root = recipe.experiments, recipe.data_root
    plumbing: list[str]
    if s.command == "synth":
        plumbing = [f"out={root}", "overwrite=true", "progress=false"]
    elif s.command == "ensemble":
        plumbing = [f"data.root={root}", f"exp={s.exp}", f"paths.experiments={exps}"]
        plumbing += ["ensemble.allow_partial=true"] if recipe.folds != ALL_FOLDS else []
    else:
        plumbing = [f"exp={s.exp}", f"paths.experiments={exps}", "trainer.progress=false"]
        if s.command == "train":
            plumbing.insert(0, f"data.root={root}")
    if s.weights:
        weights = pretrain_dir(exps, recipe.stage(s.weights).exp) / PRETRAIN_WEIGHTS
        plumbing.append(f"backbone.weights={weights}")
    if s.harvest:
        plumbing.append(f"harvest.exp={recipe.stage(s.harvest).exp}")
    if s.pseudo_labels:
        labels = ensemble_dir(exps, recipe.stage(s.pseudo_labels).exp) / SUBMISSION
        plumbing.append(f"data.pseudo_labels={labels}")
    line = [*s.args, *plumbing, *recipe.extra.get(s.command, []), *s.extra]
    return [*line, f"fold={recipe.fold_sweep()}", "-m"] if s.command == "train" else line


def shown(recipe: Recipe, s: Stage) -> str:
    """The stage's command as a user types it."""
    return " ".join(["python", "-m", MODULES[s.command], *(shlex.quote(a) for a in argv(recipe, s))])


def canonical(recipe: Recipe, s: Stage) -> str:
    """The stage's command with the data root and experiments folder absolute: what the stage record
    compares, so `data/x` and `/repo/data/x` are the same stage."""
    absolute = replace(recipe, data_root=str(Path(recipe.data_root).resolve()))
    absolute.experiments = str(Path(recipe.experiments).resolve())
    return shown(absolute, s)


def outputs_exist(recipe: Recipe, s: Stage) -> bool:
    exps = recipe.experiments
    if s.command == "synth":
        return (Path(recipe.data_root) / "synth.json").is_file()
    if s.command == "pretrain":
        return (pretrain_dir(exps, s.exp) / PRETRAIN_WEIGHTS).is_file()
    if s.command == "train":
        return all((fold_dir(exps, s.exp, k) / FINISHED_MARK).is_file() for k in recipe.folds)
    return (ensemble_dir(exps, s.exp) / ENSEMBLE_RECORD).is_file()


def guard_data_root(recipe: Recipe) -> None:
    """A synth stage writes data.root: refused when that folder holds a dataset the generator did
    not write (the user's own data), so a recipe never overwrites it."""
    if not any(s.command == "synth" for s in recipe.stages):
        return
    root = Path(recipe.data_root)
    if root.exists() and (not root.is_dir() or (any(root.iterdir()) and not (root / "synth.json").is_file())):
        raise ValueError(
            f"data.root={root}: holds files the generator did not write, and recipe {recipe.name} "
            "generates its data there; give a new folder (nothing was changed)"
        )


# --- the record of stages run ---------------------------------------------------------------------


def stage_key(recipe: Recipe, s: Stage) -> str:
    """What a stage makes: its command and output (`train bench_x`, `synth data/full`)."""
    return f"synth {Path(recipe.data_root).resolve()}" if s.command == "synth" else f"{s.command} {s.exp}"


class StageRecord:
    """`<paths.experiments>/stages.json`: each stage's last command and wall seconds, shared by every
    recipe writing there (a pretraining two recipes share keeps one time). Locked while updated."""

    def __init__(self, experiments: str | Path) -> None:
        self.path = Path(experiments) / STAGE_RECORD

    def read(self) -> dict[str, dict]:
        if not self.path.is_file():
            return {}
        try:
            return json.loads(self.path.read_text())
        except ValueError as err:
            raise ValueError(f"{self.path}: not JSON ({err}); delete it (the stage times are lost)") from None

    def get(self, key: str) -> dict:
        return self.read().get(key, {})

    def put(self, key: str, command: str, seconds: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            entries = self.read() | {key: {"command": command, "seconds": seconds}}
            save_text(json.dumps(entries, indent=2) + "\n", self.path)


# --- running ------------------------------------------------------------------------------------


def run_command(module: str, args: list[str]) -> float:
    """`python -m <module> <args>` as its own process: its output streams through, its `error:`
    line is held back and raised as StageFailed (with the exit code) when it fails. Wall seconds."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args], stderr=subprocess.PIPE, text=True, bufsize=1
    )
    error = None
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if line.startswith("error: "):
                error = line[len("error: ") :].strip()
            else:
                sys.stderr.write(line)
                sys.stderr.flush()
        code = proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reaches the command too: it saves where to resume and exits
        proc.wait()
        raise StageFailed("interrupted; the command resumes from its last finished epoch", 130) from None
    if code:
        reason = error or f"exit status {code} (its output is above)"
        raise StageFailed(reason, code)
    return time.perf_counter() - started


def ensemble_record(experiments: str | Path, exp: str) -> dict:
    """What an experiment's ensemble wrote (ensemble.json): its scores, the floor, the gap, the folds."""
    return json.loads((ensemble_dir(experiments, exp) / ENSEMBLE_RECORD).read_text())


def figure(recipe: Recipe, s: Stage) -> str:
    """A stage's figure, read from what it wrote: images generated, held-out top-1 of a pretraining,
    folds' OOF accuracy, the ensemble's test accuracy and gap."""
    exps = recipe.experiments
    try:
        if s.command == "synth":
            info = json.loads((Path(recipe.data_root) / "synth.json").read_text())["config"]
            return f"{info['n_train']} + {info['n_test']} images"
        if s.command == "pretrain":
            import pandas as pd

            rows = pd.read_csv(pretrain_dir(exps, s.exp) / METRICS)
            return f"held-out glyph top-1 {rows['heldout_top1'].iloc[-1]:.3f}"
        if s.command == "train":
            import pandas as pd

            last = [pd.read_csv(fold_dir(exps, s.exp, k) / METRICS).iloc[-1] for k in recipe.folds]
            acc = [r["val_acc"] for r in last]
            return f"{len(acc)} folds: val accuracy {sum(acc) / len(acc):.4f}"
        report = ensemble_record(exps, s.exp)
        if report.get("test_accuracy") is None:
            return f"OOF accuracy {report['oof_accuracy']:.4f} (no test answers)"
        return (
            f"test {report['test_accuracy']:.4f} (floor {report['floor']:.4f}): "
            f"{report['gap_closed']:.1%} of the gap; OOF {report['oof_accuracy']:.4f}"
        )
    except (OSError, KeyError, ValueError, IndexError):
        return "-"


def table(rows: list[dict]) -> str:
    lines = ["| stage | command | minutes | figure |", "|---|---|---|---|"]
    for r in rows:
        minutes = "?" if r["seconds"] is None else f"{r['seconds'] / 60:.1f}"
        if r["status"] == "skipped":
            minutes += " (earlier)"
        lines.append(f"| {r['stage']} | {r['command'].split()[2]} | {minutes} | {r['figure']} |")
    return "\n".join(lines)


def say(text: str) -> None:
    print(f"[recipe] {text}", flush=True)


def run_recipe(recipe: Recipe, dry_run: bool = False) -> dict:
    """Run the recipe's stages in order, skipping finished ones; returns (and writes, unless dry_run)
    the recipe record: each stage's command, minutes, status and figure, and the last ensemble's
    scores. Raises StageFailed at the first failing stage, ValueError for a recipe that cannot run."""
    check(recipe)
    guard_data_root(recipe)
    record = StageRecord(recipe.experiments)
    rows = []
    for s in recipe.stages:
        command, key, same = shown(recipe, s), stage_key(recipe, s), canonical(recipe, s)
        before = record.get(key)
        finished = outputs_exist(recipe, s) and before.get("command", same) == same
        if dry_run:
            say(f"{s.name}: {'finished' if finished else 'to run'}\n  {command}")
            continue
        if finished:
            seconds = before.get("seconds")
            say(f"{s.name}: finished" + (f" ({seconds / 60:.1f} min when it ran)" if seconds else ""))
            status = "skipped"
        else:
            say(f"{s.name}: $ {command}")
            try:
                seconds = run_command(MODULES[s.command], argv(recipe, s))
            except StageFailed as failed:
                raise StageFailed(f"stage {s.name} ({MODULES[s.command]}): {failed}", failed.code) from None
            record.put(key, same, seconds)
            say(f"{s.name}: {seconds / 60:.1f} min\n")
            status = "ran"
        rows.append({"stage": s.name, "command": command, "seconds": seconds, "status": status})
        rows[-1]["figure"] = figure(recipe, s)
    if dry_run:
        return {}
    timed = [r["seconds"] for r in rows if r["seconds"] is not None]
    result = {
        "recipe": recipe.name,
        "stages": rows,
        "minutes": sum(timed) / 60 if len(timed) == len(rows) else None,  # None: a stage untimed
        "bar": recipe.bar,
    }
    last = next((s for s in reversed(recipe.stages) if s.command == "ensemble"), None)
    if last is None:  # a recipe of training runs only (a benchmark's): nothing scored, nothing written
        return result
    report = ensemble_record(recipe.experiments, last.exp)
    result |= {"exp": last.exp}
    result |= {k: report.get(k) for k in ("test_accuracy", "floor", "gap_closed", "oof_accuracy", "folds")}
    where = ensemble_dir(recipe.experiments, last.exp).parent / RECIPE_RECORD
    save_text(json.dumps(result, indent=2) + "\n", where)
    return result
