"""Read an experiment's fold runs: configs, logits, checkpoints, data fingerprints.

What the ensemble and predict share: every finished fold folder of one or more experiments, checked
to be combinable (same data, folds, views, test set), their OOF and test logits as matrices, each
run's weight, the answers of the data they trained on, and a fold's network rebuilt for inference
from its `best.pt` alone. Configs are plain dicts here (`rundir.read_config`); nothing knows Hydra.
torch is imported only when a fold's model is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from multimnist.data.dacon import DaconLayout, read_label_csv
from multimnist.data.fingerprint import dataset_fingerprint, fingerprint_difference
from multimnist.labels import LETTERS
from multimnist.rundir import (
    BEST,
    CONFIG,
    DATASET,
    FINISHED_MARK,
    OOF_INDEX,
    OOF_LOGITS,
    REPLACED,
    TEST_LOGITS,
    computed_config,
    fold_dirs,
    heal_replaced,
    is_debug,
    load_checkpoint,
    load_logits,
    read_config,
    read_json,
)

if TYPE_CHECKING:
    from torch import nn

    from multimnist.engine import Batching, Precision

log = logging.getLogger("multimnist.runs")

LOGITS = (OOF_LOGITS, OOF_INDEX, TEST_LOGITS)


class EnsembleError(ValueError):
    """Runs that cannot be combined; the message names the run."""


@dataclass
class FoldRun:
    path: Path
    exp: str  # the experiment folder's name (a copied or renamed experiment is keyed by its folder)
    fold: int
    config: dict  # the stored config (rundir.read_config)
    oof: np.ndarray  # [n_val, V, 26]
    oof_index: np.ndarray  # [n_val]
    test: np.ndarray  # [n_test, V, 26]
    dataset: dict | None = None  # the trained-on data's fingerprint (dataset.json; older runs lack it)

    @property
    def config_hash(self) -> str:
        """Same for every fold of one training config (fold and execution-only keys left out)."""
        cfg = computed_config(self.config)
        cfg.pop("fold", None)
        return hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:12]

    @property
    def root(self) -> str:
        """The data.root it trained on, resolved."""
        return str(Path(self.config["data"]["root"]).expanduser().resolve())


def load_run(path: Path) -> FoldRun:
    missing = [str(f) for f in (*LOGITS, CONFIG) if not (path / f).is_file()]
    if missing:
        raise EnsembleError(f"{path}: not a finished fold run (missing {', '.join(missing)})")
    try:  # every file read back through rundir's checked readers: a damaged one is one line
        cfg = read_config(path)
        oof, oof_index, test = (load_logits(path / f, finite=True) for f in LOGITS)
        dataset = read_json(path / DATASET) if (path / DATASET).is_file() else None
    except ValueError as err:
        raise EnsembleError(str(err)) from None
    if oof.ndim != 3 or test.ndim != 3 or oof.shape[-1] != len(LETTERS) or len(oof) != len(oof_index):
        raise EnsembleError(f"{path}: logits have shapes {oof.shape}, {oof_index.shape}, {test.shape}")
    if "fold" not in cfg or "data" not in cfg:
        raise EnsembleError(f"{path / CONFIG}: no fold or data key; not a config written by multimnist.train")
    oof, test = oof.astype(np.float32), test.astype(np.float32)
    return FoldRun(path, path.parent.name, int(cfg["fold"]), cfg, oof, oof_index, test, dataset)


def training_summary(config: dict) -> dict[str, str]:
    """What a run was trained as, for the report: backbone, input, epochs, optimiser, starting weights."""
    b, t, o = (config.get(k) or {} for k in ("backbone", "trainer", "optimizer"))
    start = "random"
    if b.get("weights"):
        start = f"weights file {b['weights']}"
    elif b.get("pretrained"):
        start = f"timm's pretrained weights ({b.get('pretrained_file') or 'hub/cache'})"
    return {
        "backbone": f"{b.get('name', '?')} ({b.get('head')} head, {b.get('global_pool')} pooling)",
        "input": f"{b.get('img_size', '?')} px, denoise {config.get('data', {}).get('denoise', False)}",
        "training": f"{t.get('epochs', '?')} epochs, batch {t.get('batch_size', '?')}, "
        f"{o.get('opt', '?')} lr {o.get('lr', '?')}, {t.get('precision', '?')}",
        "started from": start,
    }


def most_recent_experiment(experiments: Path) -> str:
    """The experiment whose newest finished fold is the most recent; debug runs (`trainer=debug`,
    folders named `<exp>-debug`) are never picked: their numbers mean nothing."""
    marks = [m for m in experiments.glob(f"*/fold*/{FINISHED_MARK}") if not is_debug(m.parent.parent.name)]
    marks = sorted(marks, key=lambda p: p.stat().st_mtime)
    if not marks:
        raise EnsembleError(
            f"{experiments}: no finished fold runs (train some with python -m multimnist.train)"
        )
    return marks[-1].parent.parent.name


def collect_runs(experiments: Path, names: list[str], allow_partial: bool = False) -> list[FoldRun]:
    """Every fold run of the named experiments, checked to be combinable."""
    runs: list[FoldRun] = []
    for name in names:
        folders = fold_dirs(experiments, name)
        if not folders:
            raise EnsembleError(f"{experiments / name}: no fold runs")
        for folder in folders:  # a killed overwrite's set-aside run is put back before it is read
            heal_replaced(folder, REPLACED)
        found = [load_run(f) if (f / FINISHED_MARK).is_file() else None for f in folders]
        done = [r for r in found if r is not None]
        if not done:
            raise EnsembleError(f"{experiments / name}: no finished fold (no {FINISHED_MARK} in any fold)")
        n_splits = int(done[0].config["data"]["folds"]["n_splits"])
        missing = sorted(set(range(n_splits)) - {r.fold for r in done})
        if missing:
            message = f"{experiments / name}: fold(s) {missing} of {n_splits} missing or unfinished"
            if not allow_partial:
                raise EnsembleError(
                    f"{message}: train them, combine the finished ones with ensemble.allow_partial=true, "
                    f"or, for fewer folds, train all with data.folds.n_splits=K (these used {n_splits})"
                )
            log.warning("%s; combining the %d finished fold(s)", message, len(done))
        runs += done
    ref = runs[0]
    for run in runs[1:]:
        other_data = data_difference(ref, run)
        if other_data:
            raise EnsembleError(f"{run.path}: trained on other data than {ref.path}: {other_data}")
        for what, a, b in (
            ("folds (data.folds)", dict(ref.config["data"]["folds"]), dict(run.config["data"]["folds"])),
            ("number of TTA views", ref.oof.shape[1], run.oof.shape[1]),
            ("test set size", len(ref.test), len(run.test)),
        ):
            if a != b:
                raise EnsembleError(f"{run.path}: its {what} is {b}, but {ref.path} has {a}")
    return runs


def data_difference(a: FoldRun, b: FoldRun) -> str | None:
    """How two runs' data differ, by fingerprint; runs older than fingerprints are compared by path."""
    if a.dataset is not None and b.dataset is not None:
        return fingerprint_difference(a.dataset, b.dataset)
    return None if a.root == b.root else f"data.root {b.root}, not {a.root}"


def oof_matrix(
    runs: list[FoldRun], train_index: np.ndarray, allow_partial: bool
) -> tuple[np.ndarray, np.ndarray]:
    """OOF logits [n_rows, E, V, 26] over the training rows every experiment covered, and those rows."""
    exps = list(dict.fromkeys(r.exp for r in runs))
    position = pd.Series(np.arange(len(train_index)), index=train_index)
    n_views = runs[0].oof.shape[1]
    out = np.full((len(train_index), len(exps), n_views, len(LETTERS)), np.nan, np.float32)
    covered = np.ones(len(train_index), bool)
    for e, name in enumerate(exps):
        seen = np.zeros(len(train_index), bool)
        for run in (r for r in runs if r.exp == name):
            unknown = ~np.isin(run.oof_index, train_index)
            if unknown.any():
                raise EnsembleError(
                    f"{run.path}: oof_index holds {run.oof_index[unknown][0]}, not a training index"
                )
            rows = position.loc[run.oof_index].to_numpy()
            if seen[rows].any():
                raise EnsembleError(f"{run.path}: its validation rows overlap another fold of {name}")
            seen[rows] = True
            out[rows, e] = run.oof
        if not seen.all() and not allow_partial:
            raise EnsembleError(f"{name}: its folds cover {seen.sum()} of {len(seen)} training images")
        covered &= seen
    return out[covered], np.flatnonzero(covered)


def test_matrix(runs: list[FoldRun], exp_weights: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Test logits [n_test, K, V, 26] of every fold run and each run's weight (`run_weights`)."""
    return np.stack([r.test for r in runs], axis=1), run_weights([r.exp for r in runs], exp_weights)


def run_weights(exps: list[str], exp_weights: dict[str, float]) -> np.ndarray:
    """Each fold run's weight: its experiment's (`exps`: each run's experiment), split evenly over
    that experiment's folds."""
    counts = pd.Series(exps).value_counts()
    return np.array([exp_weights[e] / counts[e] for e in exps])


@dataclass
class Answers:
    """What the dataset says: training answers, the submission template, test answers when known."""

    train: pd.DataFrame
    sample: pd.DataFrame
    test: pd.DataFrame | None
    layout: DaconLayout  # where the images are (the error gallery shows some)

    @property
    def floor(self) -> float | None:
        """All-zeros accuracy of the test answers."""
        return None if self.test is None else float(1 - self.test.to_numpy().mean())


def read_answers(root: str | None, runs: list[FoldRun]) -> Answers:
    """The answers of the dataset the runs trained on (`root`, if given, must be that dataset)."""
    given = root is not None
    root = root or runs[0].config["data"]["root"]
    layout = DaconLayout.from_mapping({**runs[0].config["data"], "root": root})
    trained_on = runs[0].dataset
    if trained_on is None:  # an older run: only its path says which data it used
        if str(Path(root).expanduser().resolve()) != runs[0].root:
            raise EnsembleError(f"data.root={root} is not the dataset the runs trained on ({runs[0].root})")
    else:
        change = fingerprint_difference(trained_on, dataset_fingerprint(layout))
        if change:
            where = f"data.root={root}" if given else f"{root} (the runs' data.root)"
            raise EnsembleError(
                f"{where} no longer holds the data {runs[0].path} trained on ({change}). "
                "Point data.root at that data, or train again on this one"
            )
    test_answer = layout.path("test_answer")
    answers = Answers(
        read_label_csv(layout.path("train_csv")),
        read_label_csv(layout.path("sample_submission")),
        read_label_csv(test_answer) if test_answer.is_file() else None,
        layout,
    )
    if len(answers.sample) != len(runs[0].test):
        raise EnsembleError(
            f"{layout.path('sample_submission')}: {len(answers.sample)} rows, the runs predicted "
            f"{len(runs[0].test)} test images"
        )
    return answers


def fold_model(
    run_dir: Path,
    model: dict[str, Any],
    in_chans: int,
    channels_last: bool,
    precision: str,
    device_name: str,
    normalize: bool = False,
) -> tuple[nn.Module, Batching, Precision]:
    """A fold's network with its best.pt weights, placed as it trained (precision, channels_last).

    `model`: the fold's `build_model` arguments (`config.inference_args`). It is built with no
    pretrained weights and no weights file, whatever the fold started from: best.pt holds every
    weight, so predicting needs neither the network nor a glyph-pretraining folder that is gone.
    """
    from multimnist.build import build_model, place_model
    from multimnist.engine import resolve_device, resolve_precision

    if not (run_dir / BEST).is_file():
        raise EnsembleError(f"{run_dir / BEST}: not found; the fold has no checkpoint to predict with")
    device = resolve_device(device_name)
    net = build_model(**(dict(model) | {"pretrained": False, "weights": None, "pretrained_file": None}))
    net, batching = place_model(net, device, in_chans, channels_last, normalize)
    net.load_state_dict(load_checkpoint(run_dir / BEST)["model"])
    return net, batching, resolve_precision(precision, device)
