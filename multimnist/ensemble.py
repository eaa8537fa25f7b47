"""Combine fold runs into a Dacon submission: `python -m multimnist.ensemble data.root=DIR exp=NAME`.

Reads each fold's saved logits (no GPU, no model; `ensemble.repredict=true` re-runs inference from
checkpoints instead), builds the out-of-fold (OOF) matrix over the training set and the fold-averaged
test matrix, scores every aggregation x views x decoding candidate on OOF, and writes
`<experiments>/<exp>/ensemble/`: submission.csv, ensemble.json and the report's plots.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from torch import nn

from multimnist import decode, plots
from multimnist.build import build_datasets, build_model, make_loader, place_model
from multimnist.cli import report, run_cli
from multimnist.config import dataset_args, loader_args, model_args, validate
from multimnist.data.dacon import DaconLayout, read_label_csv
from multimnist.data.fingerprint import dataset_fingerprint, fingerprint_difference
from multimnist.engine import Batching, Precision, predict, resolve_device, resolve_precision
from multimnist.io import atomic_path, ensure_writable, save_text
from multimnist.labels import CSV_COLUMNS, LETTERS
from multimnist.report import write_diagnostics, write_page
from multimnist.rundir import (
    BEST,
    CONFIG,
    DATASET,
    FINISHED_MARK,
    OOF_INDEX,
    OOF_LOGITS,
    TEST_LOGITS,
    computed_config,
    load_checkpoint,
    load_logits,
    read_json,
    read_yaml,
)
from multimnist.tta import AGGREGATIONS, aggregate

log = logging.getLogger("multimnist.ensemble")

LOGITS = (OOF_LOGITS, OOF_INDEX, TEST_LOGITS)


class EnsembleError(ValueError):
    """Runs that cannot be combined; the message names the run."""


@dataclass
class FoldRun:
    path: Path
    exp: str  # the experiment folder's name (a copied or renamed experiment is keyed by its folder)
    fold: int
    config: DictConfig
    oof: np.ndarray  # [n_val, V, 26]
    oof_index: np.ndarray  # [n_val]
    test: np.ndarray  # [n_test, V, 26]
    dataset: dict | None = None  # the trained-on data's fingerprint (dataset.json; older runs lack it)

    @property
    def config_hash(self) -> str:
        """Same for every fold of one training config (fold and execution-only keys left out)."""
        cfg = computed_config(OmegaConf.to_container(self.config, resolve=True))
        cfg.pop("fold", None)
        return hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:12]


def load_run(path: Path) -> FoldRun:
    missing = [str(f) for f in (*LOGITS, CONFIG) if not (path / f).is_file()]
    if missing:
        raise EnsembleError(f"{path}: not a finished fold run (missing {', '.join(missing)})")
    try:  # every file read back through rundir's checked readers: a damaged one is one line
        cfg = OmegaConf.create(read_yaml(path / CONFIG, "re-run the fold with trainer.overwrite=true"))
        oof, oof_index, test = (load_logits(path / f, finite=True) for f in LOGITS)
        dataset = read_json(path / DATASET) if (path / DATASET).is_file() else None
    except ValueError as err:
        raise EnsembleError(str(err)) from None
    if oof.ndim != 3 or test.ndim != 3 or oof.shape[-1] != len(LETTERS) or len(oof) != len(oof_index):
        raise EnsembleError(f"{path}: logits have shapes {oof.shape}, {oof_index.shape}, {test.shape}")
    if "fold" not in cfg or "data" not in cfg:
        raise EnsembleError(f"{path / CONFIG}: no fold or data key; not a config written by multimnist.train")
    oof, test = oof.astype(np.float32), test.astype(np.float32)
    return FoldRun(path, path.parent.name, int(cfg.fold), cfg, oof, oof_index, test, dataset)


def most_recent_experiment(experiments: Path) -> str:
    """The experiment whose newest finished fold is the most recent."""
    marks = sorted(experiments.glob(f"*/fold*/{FINISHED_MARK}"), key=lambda p: p.stat().st_mtime)
    if not marks:
        raise EnsembleError(
            f"{experiments}: no finished fold runs (train some with python -m multimnist.train)"
        )
    return marks[-1].parent.parent.name


def collect_runs(experiments: Path, names: list[str], allow_partial: bool = False) -> list[FoldRun]:
    """Every fold run of the named experiments, checked to be combinable."""
    runs: list[FoldRun] = []
    for name in names:
        folders = sorted((experiments / name).glob("fold*"))
        if not folders:
            raise EnsembleError(f"{experiments / name}: no fold runs")
        found = [load_run(f) if (f / FINISHED_MARK).is_file() else None for f in folders]
        done = [r for r in found if r is not None]
        if not done:
            raise EnsembleError(f"{experiments / name}: no finished fold (no {FINISHED_MARK} in any fold)")
        n_splits = int(done[0].config.data.folds.n_splits)
        missing = sorted(set(range(n_splits)) - {r.fold for r in done})
        if missing:
            message = f"{experiments / name}: fold(s) {missing} of {n_splits} missing or unfinished"
            if not allow_partial:
                raise EnsembleError(message + " (ensemble.allow_partial=true to combine the rest)")
            log.warning("%s; combining the %d finished fold(s)", message, len(done))
        runs += done
    ref = runs[0]
    for run in runs[1:]:
        other_data = _data_difference(ref, run)
        if other_data:
            raise EnsembleError(f"{run.path}: trained on other data than {ref.path}: {other_data}")
        for what, a, b in (
            ("folds (data.folds)", dict(ref.config.data.folds), dict(run.config.data.folds)),
            ("number of TTA views", ref.oof.shape[1], run.oof.shape[1]),
            ("test set size", len(ref.test), len(run.test)),
        ):
            if a != b:
                raise EnsembleError(f"{run.path}: its {what} is {b}, but {ref.path} has {a}")
    return runs


def _data_difference(a: FoldRun, b: FoldRun) -> str | None:
    """How two runs' data differ, by fingerprint; runs older than fingerprints are compared by path."""
    if a.dataset is not None and b.dataset is not None:
        return fingerprint_difference(a.dataset, b.dataset)
    return None if _root(a) == _root(b) else f"data.root {_root(b)}, not {_root(a)}"


def _root(run: FoldRun) -> str:
    return str(Path(run.config.data.root).expanduser().resolve())


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
    """Test logits [n_test, K, V, 26] of every fold run and each run's weight (its experiment's, split
    evenly over that experiment's folds)."""
    return np.stack([r.test for r in runs], axis=1), run_weights([r.exp for r in runs], exp_weights)


def run_weights(exps: list[str], exp_weights: dict[str, float]) -> np.ndarray:
    """Each fold run's weight: its experiment's (`exps`: each run's experiment), split evenly over
    that experiment's folds."""
    counts = pd.Series(exps).value_counts()
    return np.array([exp_weights[e] / counts[e] for e in exps])


@dataclass
class Candidate:
    aggregation: str
    views: str  # identity | all
    decoding: str
    oof_accuracy: float
    thresholds: float | list[float] | None = None
    temperature: float = 1.0
    test_accuracy: float | None = None
    test_pred: np.ndarray | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self.aggregation}/{self.views}/{self.decoding}"

    def to_json(self) -> dict:
        """The report's record of this candidate (its test predictions left out)."""
        return {"name": self.name} | {
            f.name: getattr(self, f.name) for f in fields(self) if f.name != "test_pred"
        }


def view_columns(views: str) -> list[int] | None:
    """The TTA view columns a candidate's `views` means: identity = [0], all = every saved view (None)."""
    return [0] if views == "identity" else None


def decode_with(c: Candidate, probs: np.ndarray, count_range: tuple[int, int]) -> np.ndarray:
    pred = decode.threshold(probs, np.asarray(c.thresholds))
    if c.decoding == "count_aware":
        pred = decode.count_aware(probs, pred, *count_range)
    return pred


def score_candidates(
    oof: np.ndarray,
    labels: np.ndarray,
    exp_weights: np.ndarray,
    count_range: tuple[int, int],
    temperature: bool,
    seed: int = 0,
) -> list[Candidate]:
    """Every aggregation x views x decoding, scored on OOF. Per-class thresholds are scored cross-fitted."""
    n_views = oof.shape[2]
    view_sets = ["identity"] + (["all"] if n_views > 1 else [])
    out = []
    for how in AGGREGATIONS:
        for views_name in view_sets:
            cols = view_columns(views_name)
            t = 1.0
            if temperature:
                chosen = oof if cols is None else oof[:, :, cols]
                mean_logits = (
                    np.einsum("nkvc,k->nc", chosen, exp_weights / exp_weights.sum()) / chosen.shape[2]
                )
                t = decode.fit_temperature(mean_logits, labels)
            probs = aggregate(oof, how, cols, exp_weights, t)
            best_t, _ = decode.tune_global(probs, labels)
            held_out, per_class = decode.cross_fitted_per_class(probs, labels, seed)
            for name, thr, acc in (
                ("fixed_0.5", 0.5, None),
                ("fixed_0.6", 0.6, None),
                ("global", best_t, None),
                ("per_class", per_class.tolist(), held_out),
                ("count_aware", best_t, None),
            ):
                c = Candidate(how, views_name, name, 0.0, thr, t)
                if acc is None:
                    acc = decode.cell_accuracy(decode_with(c, probs, count_range), labels)
                c.oof_accuracy = acc
                out.append(c)
    return out


def choose(candidates: list[Candidate], aggregation: str, views: str, decoding: str) -> Candidate:
    """The best OOF accuracy among the candidates the config allows ('auto' allows all)."""
    allowed = [
        c
        for c in candidates
        if aggregation in ("auto", c.aggregation)
        and views in ("auto", c.views)
        and decoding in ("auto", c.decoding)
    ]
    if not allowed:
        raise EnsembleError(
            f"no candidate matches aggregation={aggregation}, views={views}, decoding={decoding}"
        )
    return max(allowed, key=lambda c: c.oof_accuracy)


def validate_submission(sub: pd.DataFrame, sample: pd.DataFrame) -> None:
    """The submission has the sample's ids in its order, the index,a..z header and 0/1 ints."""
    if tuple(sub.columns) != CSV_COLUMNS:
        raise EnsembleError(f"submission header {list(sub.columns)[:4]}... is not index,a..z")
    if not np.array_equal(sub["index"].to_numpy(), sample.index.to_numpy()):
        raise EnsembleError("submission ids or their order differ from sample_submission.csv")
    values = sub[list(LETTERS)].to_numpy()
    if not np.issubdtype(values.dtype, np.integer) or not np.isin(values, (0, 1)).all():
        raise EnsembleError("submission labels must be the integers 0 and 1")


def fold_model(cfg: DictConfig, run_dir: Path, device_name: str) -> tuple[nn.Module, Batching, Precision]:
    """A fold's network with its best.pt weights, placed as it trained (precision, channels_last)."""
    if not (run_dir / BEST).is_file():
        raise EnsembleError(f"{run_dir / BEST}: not found; the fold has no checkpoint to predict with")
    t = cfg.trainer
    device = resolve_device(device_name)
    model, batching = place_model(
        build_model(**model_args(cfg)), device, cfg.backbone.in_chans, t.channels_last
    )
    model.load_state_dict(load_checkpoint(run_dir / BEST)["model"])
    return model, batching, resolve_precision(t.precision, device)


def repredict(run: FoldRun, tta_views: int | None) -> FoldRun:
    """Inference from the run's best checkpoint (e.g. with other TTA views) instead of its saved logits."""
    cfg = run.config.copy()
    if tta_views is not None:
        cfg.trainer.tta_views = tta_views
    t = cfg.trainer
    model, batching, precision = fold_model(cfg, run.path, t.device)
    _, val_ds, test_ds = build_datasets(**dataset_args(cfg))
    (oof, oof_index, _), (test, _, _) = (
        predict(
            model,
            make_loader(ds, **loader_args(cfg)),
            batching,
            precision,
            t.tta_views,
            t.progress,
            f"{run.exp}/fold{run.fold} {name}",
        )
        for ds, name in ((val_ds, "oof"), (test_ds, "test"))
    )
    return FoldRun(run.path, run.exp, run.fold, cfg, oof, oof_index, test, run.dataset)


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
    root = root or runs[0].config.data.root
    layout = DaconLayout.from_mapping({**OmegaConf.to_container(runs[0].config.data), "root": root})
    trained_on = runs[0].dataset
    if trained_on is None:  # an older run: only its path says which data it used
        if str(Path(root).expanduser().resolve()) != _root(runs[0]):
            raise EnsembleError(f"data.root={root} is not the dataset the runs trained on ({_root(runs[0])})")
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


def experiment_weights(names: list[str], weights: list[float] | None) -> dict[str, float]:
    weights = list(weights) if weights else [1.0] * len(names)
    if len(weights) != len(names):
        raise EnsembleError(f"ensemble.weights has {len(weights)} values for {len(names)} experiments")
    return dict(zip(names, map(float, weights), strict=True))


def letters_per_image_range(count_range: list[int] | None, answers: pd.DataFrame) -> tuple[int, int]:
    """`count_range` as given, or the dataset's own rule read off its training answers."""
    if count_range is not None:
        return int(count_range[0]), int(count_range[1])
    counts = answers.to_numpy().sum(1)
    return int(counts.min()), int(counts.max())


def predict_test(
    candidates: list[Candidate],
    runs: list[FoldRun],
    exp_weights: dict,
    count_range: tuple[int, int],
    answers: Answers,
) -> None:
    """Each candidate's test predictions (and accuracy, when the test answers are known)."""
    test, test_w = test_matrix(runs, exp_weights)
    for c in candidates:
        probs = aggregate(test, c.aggregation, view_columns(c.views), test_w, c.temperature)
        c.test_pred = decode_with(c, probs, count_range)
        if answers.test is not None:
            c.test_accuracy = decode.cell_accuracy(c.test_pred, answers.test.to_numpy())


def write_submission(chosen: Candidate, sample: pd.DataFrame, path: Path) -> None:
    sub = pd.DataFrame(chosen.test_pred.astype(int), columns=list(LETTERS))
    sub.insert(0, "index", sample.index.to_numpy())
    validate_submission(sub, sample)
    with atomic_path(path) as tmp:
        sub.to_csv(tmp, index=False, lineterminator="\n")


def run_ensemble(cfg: DictConfig) -> Path:
    """Collect, score, choose, write. Returns the output folder."""
    validate(cfg)
    e = cfg.ensemble
    experiments = Path(cfg.paths.experiments)
    exp = cfg.exp
    if exp is None:
        exp = most_recent_experiment(experiments)
        print(f"ensembling the most recent experiment: {exp} (set exp=NAME to choose)")
    names = list(e.experiments) or [exp]
    runs = collect_runs(experiments, names, e.allow_partial)
    out = ensure_writable(experiments / exp / "ensemble", "paths.experiments")
    if e.repredict:
        runs = [repredict(r, e.tta_views) for r in runs]
    answers = read_answers(cfg.data.root, runs)
    exp_weights = experiment_weights(names, e.weights)
    weights = np.array(list(exp_weights.values()))
    oof, rows = oof_matrix(runs, answers.train.index.to_numpy(), e.allow_partial)
    labels = answers.train.to_numpy()[rows]
    count_range = letters_per_image_range(e.count_range, answers.train)
    candidates = score_candidates(oof, labels, weights, count_range, e.temperature, e.seed)
    predict_test(candidates, runs, exp_weights, count_range, answers)
    chosen = choose(candidates, e.aggregation, e.views, e.decoding)

    write_submission(chosen, answers.sample, out / "submission.csv")
    raw = aggregate(oof, chosen.aggregation, view_columns(chosen.views), weights)
    calibrated = aggregate(oof, chosen.aggregation, view_columns(chosen.views), weights, chosen.temperature)
    report = {
        "oof_accuracy": chosen.oof_accuracy,
        "test_accuracy": chosen.test_accuracy,
        "floor": answers.floor,
        "oof_floor": float(1 - labels.mean()),
        "oof_images": int(len(rows)),
        "chosen": chosen.to_json()
        | {"count_range": list(count_range) if chosen.decoding == "count_aware" else None},
        "calibration": {
            "temperature": chosen.temperature,
            "nll_before": decode.nll(raw, labels),
            "nll_after": decode.nll(calibrated, labels),
            "ece_before": decode.ece(raw, labels),
            "ece_after": decode.ece(calibrated, labels),
        },
        "candidates": [c.to_json() for c in candidates],
        "runs": [
            {"path": str(r.path), "exp": r.exp, "fold": r.fold, "config_hash": r.config_hash} for r in runs
        ],
        "weights": exp_weights,
        "repredicted": bool(e.repredict),
    }
    save_text(json.dumps(report, indent=2) + "\n", out / "ensemble.json")
    if e.plots:
        write_plots(chosen, raw, calibrated, labels, count_range, report["oof_floor"], out)
        oof_pred = decode_with(chosen, calibrated, count_range)
        ids = answers.train.index.to_numpy()[rows]
        write_diagnostics([r.path for r in runs], answers.layout, ids, oof_pred, labels, out)
    page = write_page(out, report, exp)
    print(format_table(candidates, chosen, report))
    print(f"wrote {out / 'submission.csv'}, {out / 'ensemble.json'}, the plots and {page.name}")
    return out


def write_plots(
    chosen: Candidate,
    raw: np.ndarray,
    calibrated: np.ndarray,
    labels: np.ndarray,
    count_range: tuple[int, int],
    oof_floor: float,
    out: Path,
) -> None:
    """The report's figures for the chosen aggregation, views and decoding, on OOF."""
    oof_pred = decode_with(chosen, calibrated, count_range)
    grid = decode.GRID
    _, accs = decode.tune_global(calibrated, labels, grid)
    global_t = chosen.thresholds if np.isscalar(chosen.thresholds) else None
    plots.accuracy_vs_threshold(grid, accs, global_t, oof_floor, out / "accuracy_vs_threshold.png")
    plots.per_letter_accuracy(oof_pred, labels, out / "per_letter_accuracy.png")
    plots.reliability_diagram(raw, calibrated, labels, chosen.temperature, out / "reliability.png")
    plots.letters_per_image(oof_pred, labels, out / "letters_per_image.png")


def format_table(candidates: list[Candidate], chosen: Candidate, report: dict) -> str:
    has_test = any(c.test_accuracy is not None for c in candidates)
    lines = [f"{'candidate':40} {'OOF acc':>8}" + (f" {'test acc':>9}" if has_test else "")]
    for c in sorted(candidates, key=lambda c: -c.oof_accuracy):
        mark = "  <- chosen" if c is chosen else ""
        test = f" {c.test_accuracy:9.4f}" if has_test else ""
        lines.append(f"{c.name:40} {c.oof_accuracy:8.4f}{test}{mark}")
    cal = report["calibration"]
    lines.append(
        f"calibration: T={cal['temperature']:.3f}, NLL {cal['nll_before']:.4f} -> {cal['nll_after']:.4f}, "
        f"ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f}"
    )
    summary = (
        f"chosen {chosen.name}: OOF accuracy {report['oof_accuracy']:.4f} ({report['oof_images']} images)"
    )
    if report["test_accuracy"] is not None:
        summary += f", test accuracy {report['test_accuracy']:.4f} (all-zeros floor {report['floor']:.4f})"
    lines.append(summary)
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path="../conf", config_name="ensemble")
def main(cfg: DictConfig) -> None:
    report(lambda: run_ensemble(cfg))  # EnsembleError is a ValueError


if __name__ == "__main__":
    run_cli(main)
