"""Read and validate a dataset root in Dacon's layout (no torch: the generator and `--help` import it).

Everything that reads the layout goes through `load_split`, which checks the whole split first and
raises one `DatasetError` naming the file and the problem, so no training starts on broken data.
`multimnist.data.dataset.DaconImages` serves a split's images as a torch Dataset.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from multimnist.labels import CSV_COLUMNS, LETTERS

log = logging.getLogger(__name__)

# Modes a gray competition image may arrive in that decode faithfully to 8-bit gray (with a warning).
_CONVERTIBLE_MODES = {"RGB": "3-channel RGB", "RGBA": "4-channel RGBA", "LA": "gray+alpha", "P": "palette"}
_MODE_NAMES = {
    "I;16": "16-bit gray",
    "I;16B": "16-bit gray",
    "I": "32-bit integer",
    "F": "32-bit float",
    "1": "1-bit",
    "CMYK": "CMYK",
    "YCbCr": "YCbCr",
}


class DatasetError(ValueError):
    """A dataset root that breaks the Dacon layout; the message names the file and what is wrong."""


@dataclass(frozen=True)
class DaconLayout:
    """Where each part of a dataset root lives. Defaults are the names Dacon ships."""

    root: Path
    train_dir: str = "dirty_mnist_2nd"
    train_csv: str = "dirty_mnist_2nd_answer.csv"
    test_dir: str = "test_dirty_mnist_2nd"
    sample_submission: str = "sample_submission.csv"
    test_answer: str = "test_answer.csv"
    meta: str = "meta.csv"
    test_meta: str = "test_meta.csv"  # the generator's: per test image, its glyph ids
    image_size: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def from_mapping(cls, values: Mapping) -> DaconLayout:
        """A layout from a config mapping that may hold other keys too (e.g. the `data` group)."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def path(self, name: str) -> Path:
        """Absolute path of one part (e.g. `layout.path("train_csv")`)."""
        return self.root / getattr(self, name)


@dataclass(frozen=True)
class Split:
    """One validated split: image paths in CSV order, dataset indices and (if known) 0/1 labels."""

    name: str
    indices: np.ndarray  # int64 [n]
    paths: tuple[Path, ...]
    labels: np.ndarray | None  # uint8 [n, 26], None when the answers are unknown (test without answers)

    def __len__(self) -> int:
        return len(self.indices)


def image_name(index: int) -> str:
    """Dacon's file name for a dataset index: 5-digit zero-padded PNG (00000.png, 50000.png)."""
    return f"{index:05d}.png"


def read_label_csv(path: Path | str) -> pd.DataFrame:
    """Read an `index,a..z` CSV (answers, sample submission, test answers) and check every cell.

    Returns a frame indexed by `index` (int64) with 26 uint8 columns. Raises `DatasetError` naming the
    file and the first bad row or column.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: not a readable CSV ({err})") from None
    header = tuple(c.strip() for c in frame.columns)
    if header != CSV_COLUMNS:
        raise DatasetError(f"{path}: header must be 'index,a,b,...,z' (27 columns), got {','.join(header)!r}")
    frame.columns = list(CSV_COLUMNS)
    if frame.empty:
        raise DatasetError(f"{path}: no rows")
    # Line numbers in messages count the header as line 1, as an editor shows them.
    index = pd.to_numeric(frame["index"].str.strip(), errors="coerce")
    bad = index.isna() | (index < 0) | (index != index.round())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(
            f"{path}: line {row + 2}: index {frame['index'].iloc[row]!r} is not a non-negative integer"
        )
    index = index.astype(np.int64)
    dup = index.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise DatasetError(f"{path}: line {row + 2}: duplicate index {index.iloc[row]}")
    values = frame[list(LETTERS)].apply(lambda col: col.str.strip())
    ok = values.isin(["0", "1"])
    if not ok.to_numpy().all():
        row, col = (int(v[0]) for v in np.nonzero(~ok.to_numpy()))
        raise DatasetError(
            f"{path}: line {row + 2}, column {LETTERS[col]!r}: label {values.iat[row, col]!r} is not 0 or 1"
        )
    out = values.astype(np.uint8)
    out.index = pd.Index(index.to_numpy(), name="index")
    return out


def check_image_header(path: Path, size: int) -> str | None:
    """Check one image from its header only (fast: no pixel decode).

    Returns a warning string for an image that is accepted but converted (RGB of gray content), None
    when it is 8-bit gray of the right size; raises `DatasetError` otherwise.
    """
    try:
        with Image.open(path) as im:
            mode, (w, h) = im.mode, im.size
    except FileNotFoundError:
        raise DatasetError(f"{path}: image file not found") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"{path}: cannot be decoded as an image ({err})") from None
    if (w, h) != (size, size):
        raise DatasetError(f"{path}: image is {w}x{h}, expected {size}x{size}")
    if mode == "L":
        return None
    if mode in _CONVERTIBLE_MODES:
        return f"{path}: {_CONVERTIBLE_MODES[mode]} image, converted to 8-bit gray"
    raise DatasetError(f"{path}: image is {_MODE_NAMES.get(mode, mode)}, expected 8-bit single-channel gray")


def decode_gray(path: Path) -> np.ndarray:
    """Decode an image file to 8-bit gray (HxW uint8), or raise `DatasetError` naming the file."""
    buf = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if buf.size else None
    if img is None:
        raise DatasetError(f"{path}: cannot be decoded as an image")
    return img


def _check_unlisted(folder: Path, present: set[str], listed: set[str], csv: Path, split: str) -> None:
    """PNGs the CSV does not list: ignored with one warning in train, an error in test (a submission
    made from the template would silently leave those images out)."""
    unlisted = sorted(n for n in present - listed if n.lower().endswith(".png"))
    if not unlisted:
        return
    what = f"{folder}: {len(unlisted)} PNG(s) not listed in {csv} (e.g. {unlisted[0]})"
    if split == "test":
        raise DatasetError(f"{what}; the submission template must list every test image")
    log.warning("%s; they are not used", what)


def _check_images(folder: Path, indices: np.ndarray, size: int, csv: Path, split: str) -> tuple[Path, ...]:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: image folder not found")
    present = set(os.listdir(folder))
    _check_unlisted(folder, present, {image_name(int(i)) for i in indices}, csv, split)
    paths = []
    warnings: list[str] = []
    for idx in indices:
        name = image_name(int(idx))
        if name not in present:
            raise DatasetError(f"{folder / name}: no image for index {idx} listed in {csv}")
        path = folder / name
        warn = check_image_header(path, size)
        if warn:
            warnings.append(warn)
        paths.append(path)
    if warnings:
        log.warning(
            "%d image(s) are not 8-bit gray and will be converted, e.g. %s", len(warnings), warnings[0]
        )
    return tuple(paths)


def require_root(layout: DaconLayout) -> None:
    """The dataset root exists (checked before torch loads, so a wrong data.root fails in seconds)."""
    if not layout.root.is_dir():
        raise DatasetError(
            f"{layout.root}: dataset root not found (set data.root to an unzipped Dacon folder)"
        )


def load_split(layout: DaconLayout, split: str) -> Split:
    """Validate one split ("train" or "test") of a dataset root and return its paths and labels.

    The train split takes its ids and labels from the answer CSV; the test split takes ids and order
    from sample_submission.csv and labels from test_answer.csv when present (the generator writes one).
    """
    require_root(layout)
    if split == "train":
        frame = read_label_csv(layout.path("train_csv"))
        csv, folder, labels = layout.path("train_csv"), layout.path("train_dir"), frame.to_numpy()
    elif split == "test":
        csv, folder = layout.path("sample_submission"), layout.path("test_dir")
        frame = read_label_csv(csv)
        labels = None
        answer_path = layout.path("test_answer")
        if answer_path.is_file():
            answers = read_label_csv(answer_path)
            if not answers.index.equals(frame.index):
                raise DatasetError(f"{answer_path}: ids or their order differ from {csv}")
            labels = answers.to_numpy()
    else:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    indices = frame.index.to_numpy(dtype=np.int64)
    paths = _check_images(folder, indices, layout.image_size, csv, split)
    return Split(split, indices, paths, labels)


def preprocess(img: np.ndarray, img_size: int | None = None, denoise: bool = False) -> np.ndarray:
    """The deterministic per-image steps before augmentation.

    denoise keeps only saturated pixels: letters are drawn at 255 while the background is uniform noise,
    so this drops ~99.6% of the background. It runs before resizing, which then averages the clean mask.
    """
    if denoise:
        img = np.where(img == 255, np.uint8(255), np.uint8(0))
    if img_size is not None and img.shape != (img_size, img_size):
        interp = cv2.INTER_AREA if img_size < img.shape[0] else cv2.INTER_LINEAR
        img = cv2.resize(img, (img_size, img_size), interpolation=interp)
    return img


def pseudo_labelled(test: Split, path: Path | str) -> tuple[Split, np.ndarray]:
    """The test split labelled by a predictions CSV (`index,a..z` 0/1 over test ids, e.g. an ensemble's
    submission.csv) instead of its answers, and the rows the CSV labels. Raises `DatasetError` naming
    the file and the first id that is not a test image."""
    frame = read_label_csv(path)
    rows = pd.Index(test.indices).get_indexer(frame.index)
    if (rows < 0).any():
        bad = int(frame.index[rows < 0][0])
        raise DatasetError(
            f"{path}: index {bad} is not a test image of this dataset (pseudo-labels label test ids)"
        )
    labels = np.zeros((len(test), len(LETTERS)), np.uint8)
    labels[rows] = frame.to_numpy()
    return replace(test, name="pseudo", labels=labels), rows
