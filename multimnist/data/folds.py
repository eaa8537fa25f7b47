"""K-fold assignment of the training images, written once to a CSV and reused by every fold run.

Methods:
- ``stratified`` (default): MultilabelStratifiedKFold, so each fold sees every letter at its base rate.
- ``contiguous``: unshuffled KFold over the CSV order, what the seed solution and 1st place used.
- ``group``: glyph-disjoint folds from meta.csv: images that share a source glyph land in the same
  fold, so validation measures handwriting never seen in training.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import GroupKFold, KFold

from multimnist.choices import FOLD_METHODS
from multimnist.data.dacon import DatasetError
from multimnist.io import atomic_path

log = logging.getLogger(__name__)


def read_glyph_ids(meta_path: Path | str, indices: np.ndarray) -> list[list[int]]:
    """Source glyph ids per train image from meta.csv (`index,glyph_ids`, ids space-separated)."""
    meta_path = Path(meta_path)
    if not meta_path.is_file():
        raise DatasetError(f"{meta_path}: not found; 'group' folds need the generator's meta.csv")
    try:
        meta = pd.read_csv(meta_path, dtype={"glyph_ids": str}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DatasetError(f"{meta_path}: not a readable CSV ({' '.join(str(err).split())[:160]})") from None
    if not {"index", "glyph_ids"} <= set(meta.columns):
        raise DatasetError(f"{meta_path}: needs columns 'index' and 'glyph_ids', got {list(meta.columns)}")
    try:
        by_index = dict(zip(meta["index"].astype(np.int64), meta["glyph_ids"], strict=True))
        glyphs = {i: [int(g) for g in ids.split()] for i, ids in by_index.items()}
    except ValueError:
        raise DatasetError(
            f"{meta_path}: index and glyph_ids must be integers (ids space-separated)"
        ) from None
    missing = [int(i) for i in indices if int(i) not in glyphs]
    if missing:
        raise DatasetError(f"{meta_path}: no row for train index {missing[0]} ({len(missing)} missing)")
    return [glyphs[int(i)] for i in indices]


def glyph_components(glyph_ids: list[list[int]]) -> np.ndarray:
    """Connected components of the image-glyph graph: images sharing any glyph get the same id."""
    n = len(glyph_ids)
    rows = np.repeat(np.arange(n), [len(g) for g in glyph_ids])
    cols = np.concatenate([np.asarray(g, dtype=np.int64) for g in glyph_ids]) if n else np.zeros(0, np.int64)
    _, cols = np.unique(cols, return_inverse=True)
    m = int(cols.max()) + 1 if cols.size else 0
    # Bipartite graph: nodes 0..n-1 are images, n..n+m-1 are glyphs.
    graph = coo_matrix((np.ones(len(rows)), (rows, n + cols)), shape=(n + m, n + m))
    _, comp = connected_components(graph, directed=False)
    return comp[:n]


def assign_folds(
    indices: np.ndarray,
    labels: np.ndarray,
    n_splits: int = 5,
    seed: int = 42,
    method: str = "stratified",
    glyph_ids: list[list[int]] | None = None,
) -> np.ndarray:
    """Fold number (0..n_splits-1) for each row."""
    if method not in FOLD_METHODS:
        raise ValueError(f"fold method must be one of {FOLD_METHODS}, got {method!r}")
    if n_splits < 2 or n_splits > len(indices):
        raise ValueError(f"n_splits={n_splits} needs 2 <= n_splits <= {len(indices)} images")
    folds = np.full(len(indices), -1, dtype=np.int64)
    x = np.zeros((len(indices), 1))
    if method == "stratified":
        splits = MultilabelStratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(
            x, labels
        )
    elif method == "contiguous":
        splits = KFold(n_splits=n_splits, shuffle=False).split(x)
    else:
        if glyph_ids is None:
            raise ValueError("'group' folds need glyph_ids (from meta.csv)")
        groups = glyph_components(glyph_ids)
        n_groups = len(np.unique(groups))
        if n_groups < n_splits:
            raise DatasetError(
                f"glyph-disjoint folds need >= {n_splits} groups of images with no glyph in common, "
                f"found {n_groups}; generate the data with glyph_groups>={n_splits}"
            )
        splits = GroupKFold(n_splits=n_splits).split(x, groups=groups)
    for k, (_, val) in enumerate(splits):
        folds[val] = k
    return folds


def load_or_make_folds(
    path: Path | str | None,
    indices: np.ndarray,
    labels: np.ndarray,
    n_splits: int = 5,
    seed: int = 42,
    method: str = "stratified",
    meta_path: Path | str | None = None,
) -> pd.DataFrame:
    """Read folds.csv (index, fold) if it matches these images and n_splits, else make and write it.

    Written once per (dataset, n_splits, seed, method) so every fold of a sweep, and every later
    ensemble, agrees on who validated what. Name the file after those four (see `folds_filename`).
    `path=None` makes them without writing anything (the assignment is deterministic).
    """
    path = None if path is None else Path(path)
    if path is not None and path.is_file():
        try:
            folds = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            folds = pd.DataFrame()  # damaged: a cache file, so it is made again below
        if (
            list(folds.columns) == ["index", "fold"]
            and np.array_equal(folds["index"].to_numpy(), indices)
            and set(folds["fold"].unique()) == set(range(n_splits))
        ):
            return folds
        log.warning("%s does not match this dataset (ids or folds differ); writing it again", path)
    glyph_ids = None
    if method == "group":
        if meta_path is None:
            raise ValueError("'group' folds need meta_path (the generator's meta.csv)")
        glyph_ids = read_glyph_ids(meta_path, indices)
    fold = assign_folds(indices, labels, n_splits, seed, method, glyph_ids)
    folds = pd.DataFrame({"index": indices, "fold": fold})
    if path is None:
        return folds
    with atomic_path(path) as tmp:
        folds.to_csv(tmp, index=False)
    log.info("wrote %s (%s, %d folds, seed %d)", path, method, n_splits, seed)
    return folds


def folds_filename(n_splits: int, seed: int, method: str) -> str:
    """The folds file name for one (n_splits, seed, method); it lives in the dataset's cache folder."""
    return f"folds_{method}_k{n_splits}_s{seed}.csv"
