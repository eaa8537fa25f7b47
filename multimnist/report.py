"""What a user reads after a sweep, in `<experiments>/<exp>/ensemble/`: training curves, the worst
out-of-fold images, the letters missed and invented, and `report.md`, one page that ties the chosen
decoding, the candidate table, the calibration and every figure together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from multimnist import plots
from multimnist.data.dacon import DaconLayout, decode_gray, image_name, preprocess
from multimnist.decode import Candidate, multilabel_metrics
from multimnist.io import save_text
from multimnist.rundir import METRICS
from multimnist.tracking import read_metrics

GALLERY_SIZE = 8
# Every figure the ensemble folder can hold, in the page's order, with what it answers.
FIGURES = (
    ("curves.png", "Training curves: did every fold converge?"),
    ("error_gallery.png", "The worst out-of-fold images: true letters, missed (red) and extra (orange) ones"),
    ("letter_errors.png", "Which letters are missed most, and which are predicted when absent"),
    ("per_letter_accuracy.png", "Per-letter accuracy"),
    ("accuracy_vs_threshold.png", "Accuracy against a global threshold"),
    ("reliability.png", "Calibration before and after the temperature"),
    ("letters_per_image.png", "Letters per image, true and predicted"),
)


def fold_scores(runs: list, train_answers: pd.DataFrame) -> dict:
    """Each fold run on its own validation images (its TTA views' mean probability): cell accuracy
    at 0.5, macro ROC-AUC, the epoch of its best validation loss; and their mean and sd over the runs.
    What a competitor compares after a sweep, before any ensembling."""
    rows = []
    for r in runs:
        labels = train_answers.loc[r.oof_index].to_numpy()
        p = np.clip((1 / (1 + np.exp(-r.oof.astype(np.float64)))).mean(1), 1e-7, 1 - 1e-7)
        scores = multilabel_metrics(np.log(p / (1 - p)), labels)
        metrics = pd.DataFrame(read_metrics(r.path / METRICS)) if (r.path / METRICS).is_file() else None
        best = None if metrics is None or metrics.empty else int(metrics.epoch[metrics.val_loss.idxmin()])
        rows.append(
            {
                "run": f"{r.exp}/fold{r.fold}",
                "oof_accuracy": scores["val_acc"],
                "oof_auc": scores["val_auc"],
                "best_epoch": best,
                "epochs": None if metrics is None else len(metrics),
                "images": len(labels),
            }
        )
    frame = pd.DataFrame(rows)
    summary = {
        k: {"mean": float(frame[k].mean()), "sd": float(frame[k].std(ddof=1)) if len(frame) > 1 else 0.0}
        for k in ("oof_accuracy", "oof_auc")
    }
    return {"runs": rows, **summary}


def fold_lines(folds: dict) -> list[str]:
    """The per-fold table as terminal lines: each run, then mean +- sd."""
    lines = [f"{'fold run':28} {'OOF acc':>8} {'OOF AUC':>8} {'best epoch':>11}"]
    for r in folds["runs"]:
        epoch = "-" if r["best_epoch"] is None else f"{r['best_epoch']} of {r['epochs']}"
        lines.append(f"{r['run']:28} {r['oof_accuracy']:8.4f} {r['oof_auc']:8.4f} {epoch:>11}")
    a, u = folds["oof_accuracy"], folds["oof_auc"]
    lines.append(f"{'mean +- sd':28} {a['mean']:8.4f} {u['mean']:8.4f}   (sd {a['sd']:.4f}, {u['sd']:.4f})")
    return lines


def fold_metrics(run_dirs: list[Path]) -> dict[str, pd.DataFrame]:
    """Each run's metrics.csv (checked), named `<exp>/<fold folder>`; runs without one are left out."""
    return {
        f"{d.parent.name}/{d.name}": pd.DataFrame(read_metrics(d / METRICS))
        for d in run_dirs
        if (d / METRICS).is_file()
    }


def write_curves(run_dirs: list[Path], path: Path) -> Path:
    metrics = fold_metrics(run_dirs)
    if not metrics:
        raise FileNotFoundError(f"no {METRICS} in {', '.join(map(str, run_dirs)) or 'any run'}")
    plots.training_curves(metrics, path)
    return path


def worst_rows(pred: np.ndarray, labels: np.ndarray, n: int = GALLERY_SIZE) -> np.ndarray:
    """Rows with the most wrong cells (ties: dataset order), at most `n`, only rows with an error."""
    wrong = (pred.astype(bool) != labels.astype(bool)).sum(1)
    order = np.argsort(-wrong, kind="stable")
    return order[wrong[order] > 0][:n]


def write_diagnostics(
    run_dirs: list[Path],
    layout: DaconLayout,
    ids: np.ndarray,
    pred: np.ndarray,
    labels: np.ndarray,
    out: Path,
    img_size: int | None = None,
    denoise: bool = False,
) -> None:
    """curves.png, error_gallery.png and letter_errors.png from the chosen decoding's OOF predictions
    (`ids`: the dataset index of each row; `img_size`, `denoise`: the runs' preprocessing, so the
    gallery shows what the model saw)."""
    metrics = fold_metrics(run_dirs)
    if metrics:  # runs copied without their metrics.csv still ensemble
        plots.training_curves(metrics, out / "curves.png")
    plots.letter_errors(pred, labels, out / "letter_errors.png")
    rows = worst_rows(pred, labels)
    images = [decode_gray(layout.path("train_dir") / image_name(int(ids[r]))) for r in rows]
    seen = [preprocess(img, img_size, denoise) for img in images]
    plots.error_gallery(images, seen, ids[rows], pred[rows], labels[rows], out / "error_gallery.png")


def _markdown_table(frame: pd.DataFrame) -> str:
    cells = [[str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _thresholds(value: float | list[float] | None) -> str:
    if isinstance(value, list):
        return f"per-letter thresholds {min(value):.2f}-{max(value):.2f}"
    return f"threshold {value}"


def at_floor(report: dict) -> str | None:
    """The warning for a chosen decoding no better than predicting no letter at all, or None."""
    if report["oof_accuracy"] > report["oof_floor"] + 1e-9:
        return None
    return (
        f"the chosen decoding scores {report['oof_accuracy']:.4f} on OOF, no better than all-zeros "
        f"({report['oof_floor']:.4f}): the folds have not learned yet (more epochs, glyph pretraining, "
        "or check the data)"
    )


def write_page(out: Path, report: dict, exp: str) -> Path:
    """report.md: the chosen candidate, the scores, calibration, runs, candidate table, figures."""
    c, cal = report["chosen"], report["calibration"]
    floor = report["floor"]
    runs = ", ".join(f"{r['exp']}/fold{r['fold']}" for r in report["runs"])
    training = report.get("training") or {}
    lines = [
        f"# Ensemble report: {exp}",
        "",
        f"Chosen: **{c['name']}** ({_thresholds(c['thresholds'])}, temperature {c['temperature']:.3f}).",
        "",
        *([f"**Warning**: {at_floor(report)}.", ""] if at_floor(report) else []),
        f"- OOF cell accuracy: **{_fmt(report['oof_accuracy'])}** on {report['oof_images']} images "
        f"(all-zeros floor {_fmt(report['oof_floor'])})",
        f"- Test cell accuracy: **{_fmt(report['test_accuracy'])}** (floor {_fmt(floor)})"
        + (
            f", **{report['gap_closed']:.1%}** of the floor->perfect gap"
            if report.get("gap_closed") is not None
            else ""
        ),
        f"- Calibration (OOF): NLL {cal['nll_before']:.4f} -> {cal['nll_after']:.4f}, "
        f"ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f}",
        f"- Runs: {runs}",
        *(f"- {key}: {value}" for key, value in training.items()),
        "",
    ]
    if report.get("folds"):
        lines += ["## Fold runs (each on its own validation images, before ensembling)", "", "```"]
        lines += [*fold_lines(report["folds"]), "```", ""]
    lines += ["## Candidates (scored out of fold; the chosen one first, then the best)", ""]
    ordered = sorted(report["candidates"], key=lambda k: (k["name"] != c["name"], -k["oof_accuracy"]))
    table = pd.DataFrame(
        [
            {
                "candidate": ("**" + k["name"] + "**") if k["name"] == c["name"] else k["name"],
                "OOF accuracy": _fmt(k["oof_accuracy"]),
                "test accuracy": _fmt(k["test_accuracy"]),
                "temperature": f"{k['temperature']:.3f}",
            }
            for k in ordered
        ]
    )
    lines += [_markdown_table(table), ""]
    for name, caption in FIGURES:
        if (out / name).is_file():
            lines += [f"## {caption}", "", f"![{caption}]({name})", ""]
    path = out / "report.md"
    save_text("\n".join(lines), path)
    return path


def format_table(candidates: list[Candidate], chosen: Candidate, report: dict) -> str:
    """The terminal's candidate table (best OOF first, the chosen one marked), calibration, summary."""
    has_test = any(c.test_accuracy is not None for c in candidates)
    lines = [*fold_lines(report["folds"]), ""] if report.get("folds") else []
    lines.append(f"{'candidate':40} {'OOF acc':>8}" + (f" {'test acc':>9}" if has_test else ""))
    chosen_mark = "  <- chosen" + ("  (no better than all-zeros)" if at_floor(report) else "")
    for c in sorted(candidates, key=lambda c: -c.oof_accuracy):
        mark = chosen_mark if c is chosen else ""
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
        if report.get("gap_closed") is not None:
            summary += f", {report['gap_closed']:.1%} of the gap closed"
    lines.append(summary)
    if at_floor(report):
        lines.append(f"warning: {at_floor(report)}")
    return "\n".join(lines)
