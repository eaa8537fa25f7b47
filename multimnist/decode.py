"""Logits -> probabilities -> 0/1 labels: aggregation over models and TTA views, thresholds (global,
per class), count-aware decoding, temperature scaling, and the candidates the ensemble scores on OOF.
Everything works on numpy arrays ([N, K, V, 26] logits, [N, 26] probabilities); nothing here knows
about runs or files.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.metrics import roc_auc_score

from multimnist.choices import AGGREGATIONS

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


def aggregate(
    logits: np.ndarray,
    how: str,
    views: list[int] | None = None,
    weights: np.ndarray | None = None,
    temperature: float = 1.0,
) -> np.ndarray:
    """Combine logits [N, K, V, 26] (K models, V views) into probabilities [N, 26].

    prob_mean averages sigmoid(logit / T) (the seed solution); logit_mean averages logits, then applies
    the sigmoid (1st place). `views` picks view columns; `weights` (K) weighs the models.
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {how!r}")
    z = logits if views is None else logits[:, :, views]
    z = z.astype(np.float64) / temperature
    w = np.ones(z.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    if how == "prob_mean":
        return np.einsum("nkvc,k->nc", sigmoid(z), w) / z.shape[2]
    return sigmoid(np.einsum("nkvc,k->nc", z, w) / z.shape[2])


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
    pred = threshold(probs, np.asarray(c.thresholds))
    if c.decoding == "count_aware":
        pred = count_aware(probs, pred, *count_range)
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
                t = fit_temperature(mean_logits, labels)
            probs = aggregate(oof, how, cols, exp_weights, t)
            best_t, _ = tune_global(probs, labels)
            held_out, per_class = cross_fitted_per_class(probs, labels, seed)
            for name, thr, acc in (
                ("fixed_0.5", 0.5, None),
                ("fixed_0.6", 0.6, None),
                ("global", best_t, None),
                ("per_class", per_class.tolist(), held_out),
                ("count_aware", best_t, None),
            ):
                c = Candidate(how, views_name, name, 0.0, thr, t)
                if acc is None:
                    acc = cell_accuracy(decode_with(c, probs, count_range), labels)
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
        raise ValueError(
            f"no candidate matches aggregation={aggregation}, views={views}, decoding={decoding}"
        )
    return max(allowed, key=lambda c: c.oof_accuracy)


def multilabel_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Cell accuracy at probability 0.5 (logit 0) and macro ROC-AUC over letters that vary in `labels`.

    Macro AUC moves long before accuracy leaves the all-zeros floor, so it shows early learning.
    """
    acc = float(((logits > 0) == (labels > 0.5)).mean())
    varied = [c for c in range(labels.shape[1]) if 0 < labels[:, c].sum() < len(labels)]
    auc = (
        float(roc_auc_score(labels[:, varied], logits[:, varied], average="macro"))
        if varied
        else float("nan")
    )
    return {"val_acc": acc, "val_auc": auc}


def gap_closed(accuracy: float | None, floor: float | None) -> float | None:
    """The share of the all-zeros floor -> perfect gap an accuracy closes (None when unknown)."""
    if accuracy is None or floor is None or floor >= 1:
        return None
    return (accuracy - floor) / (1 - floor)
