"""The ensemble report's figures (PNG, matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from multimnist.decode import reliability  # noqa: E402
from multimnist.io import atomic_path  # noqa: E402
from multimnist.labels import LETTERS  # noqa: E402


def save_figure(fig, path: Path) -> None:
    """Write the figure as a PNG atomically and free it."""
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
    save_figure(fig, path)


def per_letter_accuracy(pred: np.ndarray, labels: np.ndarray, path: Path) -> None:
    acc = (pred.astype(bool) == labels.astype(bool)).mean(0)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.bar(range(len(LETTERS)), acc)
    ax.set_xticks(range(len(LETTERS)), LETTERS)
    ax.set(
        ylim=(max(0.0, acc.min() - 0.05), 1.0), ylabel="accuracy", title="Per-letter accuracy (out of fold)"
    )
    save_figure(fig, path)


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
    save_figure(fig, path)


def letters_per_image(pred: np.ndarray, labels: np.ndarray, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.arange(0, len(LETTERS) + 2) - 0.5
    ax.hist(labels.sum(1), bins=bins, alpha=0.6, label="true")
    ax.hist(pred.sum(1), bins=bins, alpha=0.6, label="predicted")
    ax.set(xlabel="letters per image", ylabel="images", title="Letters per image (out of fold)")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def training_curves(metrics: dict[str, pd.DataFrame], path: Path) -> None:
    """Every fold's train / val loss, val accuracy and val AUC per epoch (metrics.csv): did it converge?"""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for i, (name, frame) in enumerate(metrics.items()):
        color = f"C{i % 10}"
        axes[0].plot(frame.epoch, frame.train_loss, color=color, ls="-", marker=".", label=f"{name} train")
        axes[0].plot(frame.epoch, frame.val_loss, color=color, ls="--", marker=".", label=f"{name} val")
        axes[1].plot(frame.epoch, frame.val_acc, color=color, marker=".", label=name)
        axes[2].plot(frame.epoch, frame.val_auc, color=color, marker=".", label=name)
    axes[0].set(xlabel="epoch", ylabel="loss", title="Loss (solid: train, dashed: val)")
    axes[1].set(xlabel="epoch", ylabel="cell accuracy at 0.5", title="Validation accuracy")
    axes[2].set(xlabel="epoch", ylabel="macro ROC-AUC", title="Validation AUC")
    for ax in axes[1:]:
        ax.legend(fontsize=7)
    axes[0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    save_figure(fig, path)


def letter_errors(pred: np.ndarray, labels: np.ndarray, path: Path) -> None:
    """Per letter: the share of its occurrences missed, and of its absences predicted anyway."""
    pred, labels = pred.astype(bool), labels.astype(bool)
    missed = (labels & ~pred).sum(0) / np.maximum(labels.sum(0), 1)
    extra = (~labels & pred).sum(0) / np.maximum((~labels).sum(0), 1)
    x = np.arange(len(LETTERS))
    fig, ax = plt.subplots(figsize=(9, 3.4))
    ax.bar(x - 0.2, missed, width=0.4, color="C3", label="missed (present, not predicted)")
    ax.bar(x + 0.2, extra, width=0.4, color="C1", label="extra (absent, predicted)")
    ax.set_xticks(x, LETTERS)
    ax.set(ylabel="share", title="Which letters the model misses and invents (out of fold)")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def _letters(row: np.ndarray) -> str:
    return "".join(LETTERS[i] for i in np.flatnonzero(row)) or "-"


def error_gallery(
    images: list[np.ndarray], ids: np.ndarray, pred: np.ndarray, labels: np.ndarray, path: Path
) -> None:
    """The given images (the worst out-of-fold ones), each with its true letters and, marked, the
    letters missed (red) and predicted when absent (orange)."""
    cols = 4
    rows = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, index, p, y in zip(
        axes.flat, images, ids, pred.astype(bool), labels.astype(bool), strict=False
    ):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        wrong = int((p != y).sum())
        ax.set_title(f"{int(index):05d}.png: {wrong} wrong cell(s)\ntrue {_letters(y)}", fontsize=8)
        ax.text(
            0, -0.02, f"missed {_letters(y & ~p)}", color="C3", fontsize=8, transform=ax.transAxes, va="top"
        )
        ax.text(
            0, -0.10, f"extra {_letters(~y & p)}", color="C1", fontsize=8, transform=ax.transAxes, va="top"
        )
    fig.suptitle("Worst out-of-fold images (most wrong cells)")
    save_figure(fig, path)
