"""The ensemble report's figures (PNG, matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from multimnist.decode import reliability  # noqa: E402
from multimnist.io import atomic_path  # noqa: E402
from multimnist.labels import LETTERS  # noqa: E402


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def accuracy_vs_threshold(
    grid: np.ndarray, accs: np.ndarray, chosen: float | None, floor: float, path: Path
) -> None:
    """`chosen`: the chosen global threshold, or None when the chosen decoding has per-class ones."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(grid, accs, label="OOF cell accuracy")
    if chosen is not None:
        ax.axvline(chosen, color="C1", ls="--", label=f"chosen {chosen:.2f}")
    ax.axvline(0.5, color="grey", ls=":", label="0.5")
    ax.axhline(floor, color="C3", ls=":", label=f"all-zeros floor {floor:.3f}")
    ax.set(xlabel="global threshold", ylabel="accuracy", title="Accuracy vs threshold (out of fold)")
    ax.legend(fontsize=8)
    _save(fig, path)


def per_letter_accuracy(pred: np.ndarray, labels: np.ndarray, path: Path) -> None:
    acc = (pred.astype(bool) == labels.astype(bool)).mean(0)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.bar(range(len(LETTERS)), acc)
    ax.set_xticks(range(len(LETTERS)), LETTERS)
    ax.set(
        ylim=(max(0.0, acc.min() - 0.05), 1.0), ylabel="accuracy", title="Per-letter accuracy (out of fold)"
    )
    _save(fig, path)


def reliability_diagram(
    before: np.ndarray, after: np.ndarray, labels: np.ndarray, temperature: float, path: Path
) -> None:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", ls=":")
    for probs, name in ((before, "before"), (after, f"after T={temperature:.2f}")):
        conf, freq, _ = reliability(probs, labels)
        ax.plot(conf, freq, marker="o", label=name)
    ax.set(xlabel="predicted probability", ylabel="observed frequency", title="Reliability (out of fold)")
    ax.legend(fontsize=8)
    _save(fig, path)


def letters_per_image(pred: np.ndarray, labels: np.ndarray, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.arange(0, len(LETTERS) + 2) - 0.5
    ax.hist(labels.sum(1), bins=bins, alpha=0.6, label="true")
    ax.hist(pred.sum(1), bins=bins, alpha=0.6, label="predicted")
    ax.set(xlabel="letters per image", ylabel="images", title="Letters per image (out of fold)")
    ax.legend(fontsize=8)
    _save(fig, path)
