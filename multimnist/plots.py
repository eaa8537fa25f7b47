"""The ensemble report's figures (PNG, matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from multimnist.decode import reliability  # noqa: E402
from multimnist.io import atomic_path  # noqa: E402
from multimnist.labels import LETTERS  # noqa: E402


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    """Write the figure as a PNG atomically and free it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
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
    """Each letter's accuracy beside its all-zeros floor: absences dominate accuracy, so a bar means
    something only against its floor (letter_errors.png shows the misses and the inventions)."""
    pred, labels = pred.astype(bool), labels.astype(bool)
    acc = (pred == labels).mean(0)
    floor = 1 - labels.mean(0)
    x = np.arange(len(LETTERS))
    fig, ax = plt.subplots(figsize=(9, 3.4))
    ax.bar(x, acc, color="C0", label="accuracy")
    ax.scatter(x, floor, marker="_", s=160, color="k", label="all-zeros floor")
    ax.set(ylim=(max(0.0, min(acc.min(), floor.min()) - 0.05), 1.0), ylabel="accuracy")
    ax.set_title("Per-letter accuracy against its all-zeros floor (out of fold)")
    ax.set_xticks(x, LETTERS)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: no bar hidden
    save_figure(fig, path)


def reliability_diagram(
    before: np.ndarray, after: np.ndarray, labels: np.ndarray, temperature: float, path: Path
) -> None:
    """Observed frequency against predicted probability per bin, with each bin's cell count (after
    the temperature) written upright at the bottom, below its point: an empty-looking bin may rest
    on a handful of cells."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", ls=":")
    for probs, name in ((before, "before"), (after, f"after T={temperature:.2f}")):
        conf, freq, share = reliability(probs, labels)
        ax.plot(conf, freq, marker="o", label=name)
    for c, s in zip(conf, share, strict=True):  # along the bottom, upright: neighbours never overlap
        if not np.isnan(c):
            ax.text(
                c, 0.02, f"{int(round(s * labels.size)):,}", rotation=90, fontsize=6, ha="center", va="bottom"
            )
    ax.set(xlabel="predicted probability", ylabel="observed frequency", title="Reliability (out of fold)")
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8, title="numbers: cells per bin", title_fontsize=7)
    save_figure(fig, path)


def letters_per_image(pred: np.ndarray, labels: np.ndarray, path: Path) -> None:
    true, predicted = labels.sum(1), pred.sum(1)
    low, high = int(min(true.min(), predicted.min())), int(max(true.max(), predicted.max()))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    counts = np.arange(low, high + 1)  # the axis spans the counts that occur, not 0..26
    for shift, values, name in ((-0.2, true, "true"), (0.2, predicted, "predicted")):
        ax.bar(counts + shift, [(values == k).sum() for k in counts], width=0.4, label=name)
    ax.set_xlim(low - 0.6, high + 0.6)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="letters per image", ylabel="images", title="Letters per image (out of fold)")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def training_curves(metrics: dict[str, pd.DataFrame], path: Path) -> None:
    """Every fold's train / val loss, val accuracy and val AUC per epoch (metrics.csv): did it converge?"""
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    lines = []
    for i, (name, frame) in enumerate(metrics.items()):
        color = f"C{i % 10}"
        (line,) = axes[0].plot(frame.epoch, frame.train_loss, color=color, ls="-", marker=".", label=name)
        axes[0].plot(frame.epoch, frame.val_loss, color=color, ls="--", marker=".")
        axes[1].plot(frame.epoch, frame.val_acc, color=color, marker=".")
        axes[2].plot(frame.epoch, frame.val_auc, color=color, marker=".")
        axes[3].plot(frame.epoch, frame.lr, color=color, marker=".")
        lines.append(line)
    axes[0].set(xlabel="epoch", ylabel="loss", title="Loss (solid: train, dashed: val)")
    axes[1].set(xlabel="epoch", ylabel="cell accuracy at 0.5", title="Validation accuracy")
    axes[2].set(xlabel="epoch", ylabel="macro ROC-AUC", title="Validation AUC")
    axes[3].set(xlabel="epoch", ylabel="learning rate (end of epoch)", title="Learning rate")
    epochs = pd.concat([frame.epoch for frame in metrics.values()]) if metrics else pd.Series([0])
    first, last = int(epochs.min()), int(epochs.max())
    for ax in axes:
        if last - first < 10:  # few epochs (one, say): a tick at each, never at fractions like 0.045
            ax.set_xticks(range(first, last + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
        ax.set_xlim(first - 0.5, last + 0.5)
    fig.legend(lines, list(metrics), loc="lower center", ncol=min(len(lines), 6), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
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
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: no bar hidden
    save_figure(fig, path)


def _letters(row: np.ndarray) -> str:
    return "".join(LETTERS[i] for i in np.flatnonzero(row)) or "-"


def error_gallery(
    images: list[np.ndarray],
    seen: list[np.ndarray],
    ids: np.ndarray,
    pred: np.ndarray,
    labels: np.ndarray,
    path: Path,
) -> None:
    """The given images (the worst out-of-fold ones), each as it is on disk and as the model saw it
    (`seen`: preprocessed, e.g. denoised and resized), with its true letters and, marked, the letters
    missed (red) and predicted when absent (orange). Kept small: noise does not compress."""
    cases = 4  # per row, each two panels: raw | model input
    rows = max(1, -(-len(images) // cases))
    fig, axes = plt.subplots(rows, 2 * cases, figsize=(1.45 * 2 * cases, 2.05 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, (img, view, index, p, y) in enumerate(
        zip(images, seen, ids, pred.astype(bool), labels.astype(bool), strict=True)
    ):
        raw_ax, seen_ax = axes[k // cases, 2 * (k % cases)], axes[k // cases, 2 * (k % cases) + 1]
        raw_ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        seen_ax.imshow(view, cmap="gray", vmin=0, vmax=255)
        wrong = int((p != y).sum())
        raw_ax.set_title(f"{int(index):05d}.png, {wrong} wrong\ntrue {_letters(y)}", fontsize=6, loc="left")
        seen_ax.set_title(f"model input {view.shape[0]} px", fontsize=6)
        for y_pos, text, color in (
            (-0.03, f"missed {_letters(y & ~p)}", "C3"),
            (-0.15, f"extra {_letters(~y & p)}", "C1"),
        ):
            raw_ax.text(0, y_pos, text, color=color, fontsize=6, transform=raw_ax.transAxes, va="top")
    fig.suptitle("Worst out-of-fold images (most wrong cells): on disk | as the model saw it", fontsize=9)
    save_figure(fig, path, dpi=100)
