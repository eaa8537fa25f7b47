"""Apply an ensembled experiment to any folder of images:
`python -m multimnist.predict exp=NAME images=DIR out=FILE.csv` (Hydra).

Runs every fold checkpoint (best.pt) that `<experiments>/<exp>/ensemble/ensemble.json` combined, read
from `<experiments>/<exp>/` itself (a copied or renamed experiment predicts with its own folds; folds of
other experiments the ensemble combined are read from theirs, and the log names each), with
each fold's TTA views, then the aggregation, views, temperature, thresholds and count rule the
ensemble chose, exactly as it made its submission. The images are validated like the data layer's
(8-bit gray PNGs of the training image size), and each file name is a number, the row's index (as
Dacon's ids: 50000.png ...); two files of one number are refused. Writes `index,a..z` (0/1) followed
by `p_a..p_z` (the calibrated probabilities). With `answers=FILE` (an `index,a..z` CSV of the images'
true letters, checked before any model runs) it also scores the predictions: cell accuracy, the
all-zeros floor, the share of the gap closed, and per letter the share missed and invented; printed,
and written beside the CSV as `<out>.scores.json`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig

from multimnist.cli import report, require_keys, run_cli
from multimnist.config import inference_args, validate
from multimnist.data.dacon import DatasetError, Split, check_image_header, read_label_csv
from multimnist.decode import Candidate, aggregate, decode_with, gap_closed, view_columns
from multimnist.io import atomic_path, ensure_writable, save_text
from multimnist.labels import LETTERS
from multimnist.rundir import ENSEMBLE_RECORD, ensemble_dir, fold_dir, read_config, read_json
from multimnist.runs import fold_model, run_weights

log = logging.getLogger("multimnist.predict")


def image_split(folder: Path, size: int) -> Split:
    """Every PNG in `folder`, sorted by name, checked like the data layer's images."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: image folder not found (images=DIR)")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if not paths:
        raise DatasetError(f"{folder}: no .png images")
    warnings = [w for w in (check_image_header(p, size) for p in paths) if w]
    if warnings:
        log.warning(
            "%d image(s) are not 8-bit gray and will be converted, e.g. %s", len(warnings), warnings[0]
        )
    named = next((p for p in paths if not p.stem.isdigit()), None)
    if named is not None:
        raise DatasetError(
            f"{named}: the file name is not a number; predict writes each image's number as its index "
            "(as Dacon's ids: 50000.png ...): rename the images, or move this one out"
        )
    ids = np.array([int(p.stem) for p in paths], dtype=np.int64)
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        twice = int(unique[counts > 1][0])
        both = [p.name for p, i in zip(paths, ids, strict=True) if i == twice]
        raise DatasetError(f"{folder}: {' and '.join(both)} are both image {twice}; keep one of them")
    return Split("predict", ids, tuple(paths), None)


def fold_runs(experiments: Path, exp: str, record: dict) -> list[Path]:
    """The fold folders to predict with: the ensemble's own experiment's folds from `exp`'s folder
    (where the record now lies, whatever the experiment was called when it was ensembled), other
    experiments' folds from theirs. A missing folder is one line naming it."""
    names = {r["exp"] for r in record["runs"]}
    owner = record.get("exp") or (next(iter(names)) if len(names) == 1 else None)
    dirs = []
    for r in record["runs"]:
        name = exp if r["exp"] == owner else r["exp"]
        run_dir = fold_dir(experiments, name, int(r["fold"]))
        if not run_dir.is_dir():
            raise FileNotFoundError(
                f"{run_dir}: not found, and {ensemble_dir(experiments, exp) / ENSEMBLE_RECORD} combined it; "
                f"put it back, or re-run python -m multimnist.ensemble exp={exp}"
            )
        dirs.append(run_dir)
    return dirs


def read_choice(experiments: Path, exp: str) -> tuple[dict, Candidate, tuple[int, int] | None]:
    """The ensemble's record (ensemble.json) and the candidate it chose."""
    path = ensemble_dir(experiments, exp) / ENSEMBLE_RECORD
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; run python -m multimnist.ensemble exp={exp} first")
    record = read_json(path)
    chosen = dict(record["chosen"])
    count_range = chosen.pop("count_range", None)
    keys = ("aggregation", "views", "decoding", "oof_accuracy", "thresholds", "temperature")
    return record, Candidate(**{k: chosen[k] for k in keys}), tuple(count_range) if count_range else None


def fold_logits(run_dir: Path, split: Split, loading: dict, device_name: str, progress: bool) -> np.ndarray:
    """[n, views, 26] logits of one fold's best.pt on the images, with the fold's own preprocessing,
    precision and TTA views."""
    from multimnist.build import make_loader  # torch: only once there is something to predict
    from multimnist.data.dataset import DaconImages
    from multimnist.engine import predict

    cfg = read_config(run_dir)
    model, batching, precision = fold_model(run_dir, **inference_args(cfg), device_name=device_name)
    ds = DaconImages(split, img_size=cfg["backbone"]["img_size"], denoise=cfg["data"]["denoise"])
    logits, _, _ = predict(
        model,
        make_loader(ds, **loading),
        batching,
        precision,
        cfg["trainer"]["tta_views"],
        progress,
        run_dir.name,
    )
    return logits


def answers_for(path: Path, split: Split) -> np.ndarray:
    """The true letters of the split's images from an `index,a..z` CSV, in the split's order."""
    frame = read_label_csv(path)
    missing = np.setdiff1d(split.indices, frame.index.to_numpy())
    if len(missing):
        raise DatasetError(f"{path}: no row for image {int(missing[0])} (answers must cover every image)")
    return frame.loc[split.indices].to_numpy().astype(np.uint8)


def scores(labels: np.ndarray, truth: np.ndarray) -> dict:
    """Cell accuracy, the all-zeros floor, the gap closed, and each letter's misses and inventions."""
    pred, truth = labels.astype(bool), truth.astype(bool)
    accuracy, floor = float((pred == truth).mean()), float(1 - truth.mean())
    missed = (truth & ~pred).sum(0) / np.maximum(truth.sum(0), 1)
    extra = (~truth & pred).sum(0) / np.maximum((~truth).sum(0), 1)
    return {
        "images": int(len(truth)),
        "accuracy": accuracy,
        "floor": floor,
        "gap_closed": gap_closed(accuracy, floor),
        "per_letter": {
            c: {"missed": float(m), "extra": float(e)} for c, m, e in zip(LETTERS, missed, extra, strict=True)
        },
    }


def run_predict(cfg: DictConfig) -> Path:
    validate(cfg)
    out = Path(cfg.out)
    ensure_writable(out.parent, "out", out)
    experiments = Path(cfg.paths.experiments)
    record, chosen, count_range = read_choice(experiments, cfg.exp)
    run_dirs = fold_runs(experiments, cfg.exp, record)
    log.info("predicting with %s", ", ".join(f"{d.parent.name}/{d.name}" for d in run_dirs))
    split = image_split(Path(cfg.images), int(read_config(run_dirs[0])["data"]["image_size"]))
    truth = answers_for(Path(cfg.answers), split) if cfg.answers else None  # before any model runs
    loading = {"batch_size": cfg.batch_size, "num_workers": cfg.num_workers}
    stacked = np.stack(
        [fold_logits(d, split, loading, cfg.device, cfg.progress) for d in run_dirs],
        axis=1,
    )
    weights = run_weights([r["exp"] for r in record["runs"]], record["weights"])
    probs = aggregate(stacked, chosen.aggregation, view_columns(chosen.views), weights, chosen.temperature)
    labels = decode_with(chosen, probs, count_range or (0, len(LETTERS)))
    frame = pd.DataFrame(labels.astype(int), columns=list(LETTERS))
    frame.insert(0, "index", split.indices)
    frame[[f"p_{c}" for c in LETTERS]] = probs
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n", float_format="%.6f")
    print(f"wrote {out}: {len(frame)} images, {len(run_dirs)} fold(s) of {cfg.exp} ({chosen.name})")
    if truth is not None:
        scored = scores(labels, truth)
        letters = scored["per_letter"]
        worst = sorted(LETTERS, key=lambda c: -sum(letters[c].values()))[:3]
        save_text(json.dumps(scored, indent=2) + "\n", out.with_name(out.name + ".scores.json"))
        print(
            f"scored against {cfg.answers}: accuracy {scored['accuracy']:.4f}, all-zeros floor "
            f"{scored['floor']:.4f}, {scored['gap_closed']:.1%} of the gap closed; most wrong letters: "
            + ", ".join(
                f"{c} (missed {letters[c]['missed']:.0%}, extra {letters[c]['extra']:.0%})" for c in worst
            )
        )
    return out


@hydra.main(version_base="1.3", config_path="pkg://multimnist.conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    require_keys(cfg, "python -m multimnist.predict exp=NAME images=DIR out=FILE.csv")
    report(lambda: run_predict(cfg), exp=cfg.exp)


def cli() -> None:
    """The console script (multimnist-...): the same as python -m."""
    run_cli(main)


if __name__ == "__main__":
    cli()
