"""Combine fold runs into a Dacon submission: `python -m multimnist.ensemble data.root=DIR exp=NAME`.

Reads each fold's saved logits (no GPU, no model; `ensemble.repredict=true` re-runs inference from
checkpoints instead), builds the out-of-fold (OOF) matrix over the training set and the fold-averaged
test matrix, scores every aggregation x views x decoding candidate on OOF, and writes
`<experiments>/<exp>/ensemble/`: submission.csv, ensemble.json and the report's plots.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from multimnist import decode, plots
from multimnist.cli import report, run_cli
from multimnist.config import dataset_args, inference_args, loader_args, validate
from multimnist.decode import (
    Candidate,
    aggregate,
    choose,
    decode_with,
    gap_closed,
    score_candidates,
    view_columns,
)
from multimnist.io import atomic_path, ensure_writable, save_text
from multimnist.labels import CSV_COLUMNS, LETTERS
from multimnist.report import fold_scores, format_table, write_diagnostics, write_page
from multimnist.rundir import ENSEMBLE_RECORD, SUBMISSION, ensemble_dir, run_lock
from multimnist.runs import (
    Answers,
    EnsembleError,
    FoldRun,
    collect_runs,
    fold_model,
    most_recent_experiment,
    oof_matrix,
    read_answers,
    test_matrix,
    training_summary,
)

log = logging.getLogger("multimnist.ensemble")


def validate_submission(sub: pd.DataFrame, sample: pd.DataFrame) -> None:
    """The submission has the sample's ids in its order, the index,a..z header and 0/1 ints."""
    if tuple(sub.columns) != CSV_COLUMNS:
        raise EnsembleError(f"submission header {list(sub.columns)[:4]}... is not index,a..z")
    if not np.array_equal(sub["index"].to_numpy(), sample.index.to_numpy()):
        raise EnsembleError("submission ids or their order differ from sample_submission.csv")
    values = sub[list(LETTERS)].to_numpy()
    if not np.issubdtype(values.dtype, np.integer) or not np.isin(values, (0, 1)).all():
        raise EnsembleError("submission labels must be the integers 0 and 1")


def repredict(run: FoldRun, tta_views: int | None) -> FoldRun:
    """Inference from the run's best checkpoint (e.g. with other TTA views) instead of its saved logits."""
    from multimnist.build import build_datasets, make_loader  # torch: only when re-predicting
    from multimnist.engine import predict

    cfg = OmegaConf.create(run.config)
    if tta_views is not None:
        cfg.trainer.tta_views = tta_views
    t = cfg.trainer
    model, batching, precision = fold_model(run.path, **inference_args(cfg), device_name=t.device)
    _, val_ds, test_ds = build_datasets(**dataset_args(cfg) | {"pseudo_labels": None})  # no training set
    (oof, oof_index, _), (test, _, _) = (
        predict(
            model,
            make_loader(ds, **loader_args(cfg)),
            batching,
            precision,
            t.tta_views,
            t.progress,
            f"{run.exp}/{run.path.name} {name}",
        )
        for ds, name in ((val_ds, "oof"), (test_ds, "test"))
    )
    config = OmegaConf.to_container(cfg, resolve=True)
    return FoldRun(run.path, run.exp, run.fold, config, oof, oof_index, test, run.dataset)


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
    out = ensure_writable(ensemble_dir(experiments, exp), "paths.experiments")
    with run_lock(out, "ensemble"):
        return ensemble_into(out, cfg, exp, names, runs)


def ensemble_into(out: Path, cfg: DictConfig, exp: str, names: list[str], runs: list[FoldRun]) -> Path:
    """The ensemble's work once its folder is held: score, choose, write."""
    e = cfg.ensemble
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

    write_submission(chosen, answers.sample, out / SUBMISSION)
    raw = aggregate(oof, chosen.aggregation, view_columns(chosen.views), weights)
    calibrated = aggregate(oof, chosen.aggregation, view_columns(chosen.views), weights, chosen.temperature)
    report = {
        "exp": exp,  # whose ensemble this is: predict reads its folds from the folder it lies in
        "oof_accuracy": chosen.oof_accuracy,
        "test_accuracy": chosen.test_accuracy,
        "floor": answers.floor,
        "gap_closed": gap_closed(chosen.test_accuracy, answers.floor),  # of the test floor -> perfect gap
        "oof_gap_closed": gap_closed(chosen.oof_accuracy, float(1 - labels.mean())),
        "folds": fold_scores(runs, answers.train),
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
        "training": training_summary(runs[0].config),
    }
    save_text(json.dumps(report, indent=2) + "\n", out / ENSEMBLE_RECORD)
    if e.plots:
        write_plots(chosen, raw, calibrated, labels, count_range, report["oof_floor"], out)
        oof_pred = decode_with(chosen, calibrated, count_range)
        ids = answers.train.index.to_numpy()[rows]
        seen = {"img_size": runs[0].config.get("backbone", {}).get("img_size")}
        seen["denoise"] = bool(runs[0].config["data"].get("denoise", False))
        write_diagnostics([r.path for r in runs], answers.layout, ids, oof_pred, labels, out, **seen)
    page = write_page(out, report, exp)
    print(format_table(candidates, chosen, report))
    print(f"wrote {out / SUBMISSION}, {out / ENSEMBLE_RECORD}, the plots and {page.name}")
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


@hydra.main(version_base="1.3", config_path="pkg://multimnist.conf", config_name="ensemble")
def main(cfg: DictConfig) -> None:
    report(lambda: run_ensemble(cfg), exp=cfg.exp)  # EnsembleError is a ValueError


def cli() -> None:
    """The console script (multimnist-...): the same as python -m."""
    run_cli(main)


if __name__ == "__main__":
    cli()
