"""Self-training crops: letters cut from the user's own labelled images where a fine-tuned model finds
them, for another round of glyph pretraining (`python -m multimnist.pretrain harvest.exp=EXP`).

For each finished fold of EXP, its best.pt scores every place of its own validation images (images
it never trained on; with all folds, each training image is looked at once). For each letter an
image's label says is present, the crop is centred on that letter's best-scoring place, and kept when
that score's probability is at least `min_confidence`. Crops are cut from the image as stored (noise
and all, native scale, a margin around them for shifting), so pretraining preprocesses them exactly
as it does rendered crops. The harvest is saved in the pretraining run folder (harvest.npz) with a
picture of what was cut (harvest.png).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multimnist.data.dacon import DaconLayout, decode_gray, load_split
from multimnist.labels import LETTERS
from multimnist.rundir import FINISHED_MARK, fold_dirs, read_config

log = logging.getLogger("multimnist.harvest")

HARVEST = "harvest.npz"
HARVEST_GRID = "harvest.png"


class HarvestError(ValueError):
    """An experiment that cannot be harvested; the message names it and what to do."""


@dataclass(frozen=True)
class Harvest:
    crops: np.ndarray  # uint8 [n, side + 2 margin, same]: native scale, as stored
    letters: np.ndarray  # int64 [n], 0..25
    confidence: np.ndarray  # float32 [n]: the letter's probability at its best place
    images: np.ndarray  # int64 [n]: the dataset index of the image each crop comes from
    looked_at: np.ndarray  # int64 [26]: labelled occurrences of each letter scored (kept or not)
    margin: int  # px around the crop's side: pretraining shifts within it

    def __len__(self) -> int:
        return len(self.letters)

    @property
    def scored(self) -> int:
        """Labelled letters scored, kept or not."""
        return int(self.looked_at.sum())

    def take(self, rows: np.ndarray) -> Harvest:
        return Harvest(
            self.crops[rows], self.letters[rows], self.confidence[rows], self.images[rows], self.looked_at,
            self.margin,
        )  # fmt: skip

    @classmethod
    def merge(cls, parts: list[Harvest]) -> Harvest:
        """The crops of several folds (each its own validation images) as one harvest."""
        return cls(
            *(
                np.concatenate([getattr(p, k) for p in parts])
                for k in ("crops", "letters", "confidence", "images")
            ),
            sum(p.looked_at for p in parts),
            parts[0].margin,
        )

    def save(self, path: Path) -> None:
        from multimnist.io import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, crops=self.crops, letters=self.letters, confidence=self.confidence,
                     images=self.images, looked_at=self.looked_at, margin=self.margin)  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> Harvest:
        with np.load(path) as z:
            return cls(z["crops"], z["letters"], z["confidence"], z["images"], z["looked_at"],
                       int(z["margin"]))  # fmt: skip


def finished_folds(experiments: Path, exp: str) -> list[Path]:
    folds = [f for f in fold_dirs(experiments, exp) if (f / FINISHED_MARK).is_file()]
    if not folds:
        raise HarvestError(
            f"harvest.exp={exp}: no finished fold in {Path(experiments) / exp} "
            "(fine-tune first: python -m multimnist.train ... exp=NAME)"
        )
    return folds


def cut(image: np.ndarray, cy: float, cx: float, side: int, rng: np.random.Generator) -> np.ndarray:
    """A side x side window of `image` centred at (cy, cx); beyond the borders, uniform noise."""
    window = rng.integers(0, 256, (side, side), dtype=np.uint8)
    y0, x0 = int(round(cy - side / 2)), int(round(cx - side / 2))
    ya, xa = max(0, y0), max(0, x0)
    yb, xb = min(image.shape[0], y0 + side), min(image.shape[1], x0 + side)
    if ya < yb and xa < xb:
        window[ya - y0 : yb - y0, xa - x0 : xb - x0] = image[ya:yb, xa:xb]
    return window


def harvest_fold(
    run_dir: Path, side: int, margin: int, min_confidence: float, device_name: str, batch_size: int
) -> Harvest:
    """One fold's best.pt on its validation images: crops of the confident labelled letters."""
    import torch

    from multimnist.build import make_loader
    from multimnist.config import inference_args
    from multimnist.data.dataset import DaconImages
    from multimnist.engine import autocast
    from multimnist.rundir import OOF_INDEX, load_logits
    from multimnist.runs import fold_model

    cfg = read_config(run_dir)
    model, batching, precision = fold_model(run_dir, **inference_args(cfg), device_name=device_name)
    if not hasattr(model, "location_scores"):
        raise HarvestError(
            f"{run_dir}: harvesting needs a multimnist_* backbone (it scores every place); "
            f"{cfg['backbone']['name']} has no per-place scores"
        )
    layout = DaconLayout.from_mapping(cfg["data"])
    split = load_split(layout, "train")
    val_ids = set(load_logits(run_dir / OOF_INDEX).astype(np.int64).tolist())
    rows = np.flatnonzero(np.isin(split.indices, list(val_ids)))
    row_of = {int(v): r for r, v in enumerate(split.indices.tolist())}
    ds = DaconImages(split, img_size=cfg["backbone"]["img_size"], denoise=cfg["data"]["denoise"], rows=rows)
    crops, letters, conf, images = [], [], [], []
    looked_at = np.zeros(len(LETTERS), np.int64)  # labelled occurrences per letter
    model.eval()
    with torch.inference_mode():
        for x, y, index in make_loader(ds, batch_size, 0):
            with autocast(batching.device, precision):
                maps = model.location_scores(batching(x)).float()  # [B, 26, H, W]
            b, c, h, w = maps.shape
            best, place = maps.flatten(2).max(-1)  # [B, 26]
            prob = torch.sigmoid(best).cpu().numpy()
            place = place.cpu().numpy()
            for k in range(b):
                present = np.flatnonzero(y[k].numpy() > 0.5)
                looked_at[present] += 1
                keep = [int(c_) for c_ in present if prob[k, c_] >= min_confidence]
                if not keep:
                    continue
                image_index = int(index[k])
                image = decode_gray(split.paths[row_of[image_index]])
                rng = np.random.default_rng([image_index, 5])
                cell_y, cell_x = image.shape[0] / h, image.shape[1] / w
                for letter in keep:
                    i, j = divmod(int(place[k, letter]), w)
                    cy, cx = (i + 0.5) * cell_y, (j + 0.5) * cell_x
                    crops.append(cut(image, cy, cx, side + 2 * margin, rng))
                    letters.append(letter)
                    conf.append(float(prob[k, letter]))
                    images.append(image_index)
    width = side + 2 * margin
    return Harvest(
        np.stack(crops) if crops else np.zeros((0, width, width), np.uint8),
        np.asarray(letters, np.int64),
        np.asarray(conf, np.float32),
        np.asarray(images, np.int64),
        looked_at,
        margin,
    )


def most_confident(
    letters: np.ndarray, confidence: np.ndarray, share: float, looked_at: np.ndarray
) -> np.ndarray:
    """Rows to keep: per letter, the `share` of its labelled occurrences (`looked_at[letter]`) with
    the highest probability. A model's probabilities differ by letter and by training length; ranks
    within a letter keep every letter represented."""
    keep = []
    for letter in range(len(LETTERS)):
        rows = np.flatnonzero(letters == letter)
        n = int(round(share * looked_at[letter]))
        keep += rows[np.argsort(-confidence[rows], kind="stable")[:n]].tolist()
    return np.sort(np.asarray(keep, np.int64))


def harvest(
    experiments: Path | str,
    exp: str,
    side: int,
    min_confidence: float = 0.5,
    top_share: float = 1.0,
    device_name: str = "auto",
    batch_size: int = 64,
) -> Harvest:
    """Crops of every finished fold of `exp`, each fold on its own validation images: the labelled
    letters whose probability at their best place is at least `min_confidence` and, per letter,
    among the `top_share` most confident of its labelled occurrences."""
    margin = max(1, side // 8)
    parts = [
        harvest_fold(d, side, margin, min_confidence, device_name, batch_size)
        for d in finished_folds(Path(experiments), exp)
    ]
    every = Harvest.merge(parts)
    found = every.take(most_confident(every.letters, every.confidence, top_share, every.looked_at))
    if len(found) == 0:
        raise HarvestError(
            f"harvest.exp={exp}: no labelled letter reached probability {min_confidence} in "
            f"{len(parts)} fold(s); lower harvest.min_confidence, raise harvest.top_share or fine-tune longer"
        )
    return found


def per_letter(found: Harvest) -> np.ndarray:
    return np.bincount(found.letters, minlength=len(LETTERS))


def harvest_grid(found: Harvest, path: Path, per_row: int = 12, rows: int = 8, seed: int = 0) -> None:
    """A sample of the crops with their letter and probability: what pretraining will learn from."""
    from multimnist.plots import plt, save_figure

    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(found))[: per_row * rows]
    pick = pick[np.argsort(found.letters[pick], kind="stable")]
    n_rows = max(1, -(-len(pick) // per_row))
    fig, axes = plt.subplots(n_rows, per_row, figsize=(per_row * 0.9, n_rows * 1.05), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, k in zip(axes.flat, pick, strict=False):
        ax.imshow(found.crops[k], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{LETTERS[found.letters[k]]} {found.confidence[k]:.2f}", fontsize=7)
    counts = per_letter(found)
    fig.suptitle(
        f"{len(found)} crops harvested of {found.scored} labelled letters "
        f"({len(found) / max(found.scored, 1):.0%}); fewest: "
        + ", ".join(f"{LETTERS[c]} {counts[c]}" for c in np.argsort(counts)[:3]),
        fontsize=8,
    )
    save_figure(fig, path, dpi=90)
