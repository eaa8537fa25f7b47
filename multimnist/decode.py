"""Probabilities -> 0/1 labels, and calibration: thresholds (global, per class), count-aware decoding,
temperature scaling. Everything works on numpy arrays [N, 26]; nothing here knows about runs or files.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def cell_accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """The competition metric: accuracy over all N x 26 cells."""
    return float((pred.astype(bool) == labels.astype(bool)).mean())


def threshold(probs: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """0/1 at `t` (a scalar, or one threshold per class)."""
    return (probs > np.asarray(t)).astype(np.uint8)


def tune_global(probs: np.ndarray, labels: np.ndarray, grid: np.ndarray = GRID) -> tuple[float, np.ndarray]:
    """The threshold on `grid` with the best cell accuracy, and the accuracy at every grid point."""
    accs = np.array([cell_accuracy(threshold(probs, t), labels) for t in grid])
    return float(grid[int(np.argmax(accs))]), accs


def tune_per_class(probs: np.ndarray, labels: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """One threshold per class, each maximising that class's accuracy."""
    hits = (probs[:, :, None] > grid[None, None, :]) == labels[:, :, None].astype(bool)  # [N, C, G]
    return grid[np.argmax(hits.mean(0), axis=1)]


def cross_fitted_per_class(probs: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[float, np.ndarray]:
    """Per-class thresholds judged honestly: tuned on one half of the rows, scored on the other, both ways.

    Returns that held-out accuracy and the thresholds tuned on all rows (to use if the accuracy holds up).
    26 thresholds fitted on the same rows they are scored on would flatter themselves.
    """
    order = np.random.default_rng(seed).permutation(len(probs))
    halves = np.array_split(order, 2)
    pred = np.zeros_like(labels, dtype=np.uint8)
    for fit, score in ((halves[0], halves[1]), (halves[1], halves[0])):
        pred[score] = threshold(probs[score], tune_per_class(probs[fit], labels[fit]))
    return cell_accuracy(pred, labels), tune_per_class(probs, labels)


def count_aware(probs: np.ndarray, pred: np.ndarray, low: int, high: int) -> np.ndarray:
    """Clip each row's predicted set size into [low, high]: add the most confident missing letters, or
    drop the least confident predicted ones. Every image holds low..high letters, so this only fixes
    decodings that are impossible."""
    if not 0 <= low <= high <= probs.shape[1]:
        raise ValueError(
            f"count range must satisfy 0 <= low <= high <= {probs.shape[1]}, got [{low}, {high}]"
        )
    out = pred.astype(np.uint8).copy()
    counts = out.sum(1)
    few, many = counts < low, counts > high
    if few.any():  # add the most confident letters not yet predicted until the row holds `low`
        missing = np.where(out[few] == 0, probs[few], -np.inf)
        rank = np.argsort(np.argsort(-missing, axis=1, kind="stable"), axis=1)
        out[few] |= (rank < (low - counts[few])[:, None]).astype(np.uint8)
    if many.any():  # keep only the `high` most confident of those predicted
        kept = np.where(out[many] == 1, probs[many], -np.inf)
        rank = np.argsort(np.argsort(-kept, axis=1, kind="stable"), axis=1)
        out[many] = (rank < high).astype(np.uint8)
    return out


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy over cells."""
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    return float(-(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean())


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error over cells: |confidence - frequency| weighted by bin size."""
    conf, freq, share = reliability(probs, labels, bins)
    return float(np.nansum(share * np.abs(conf - freq)))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The scalar T minimising the NLL of sigmoid(logits / T) (searched on log T in [1/20, 20])."""
    res = minimize_scalar(
        lambda log_t: nll(sigmoid(logits / np.exp(log_t)), labels),
        bounds=(-3.0, 3.0),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(res.x))


def reliability(
    probs: np.ndarray, labels: np.ndarray, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: mean confidence, observed frequency, share of cells (for the reliability diagram)."""
    p, y = probs.ravel(), labels.ravel()
    idx = np.minimum((p * bins).astype(int), bins - 1)
    conf, freq, share = (np.full(bins, np.nan) for _ in range(3))
    for b in range(bins):
        m = idx == b
        if m.any():
            conf[b], freq[b], share[b] = p[m].mean(), y[m].mean(), m.mean()
    return conf, freq, share
