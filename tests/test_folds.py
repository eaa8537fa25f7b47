"""Fold assignment: disjoint and covering, stratified balance, contiguous blocks, glyph-disjoint groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multimnist.data.dacon import DaconLayout, DatasetError, load_split
from multimnist.data.folds import assign_folds, folds_filename, load_or_make_folds, read_glyph_ids
from multimnist.synth.compositor import Compositor, CompositorConfig
from multimnist.synth.distractors import distractor_bank
from multimnist.synth.generate import generate


@pytest.fixture(scope="module")
def labels():
    rng = np.random.default_rng(1)
    # skewed prevalence per letter, so a careless split would visibly unbalance it
    p = np.linspace(0.1, 0.8, 26)
    return (rng.random((600, 26)) < p).astype(np.uint8)


@pytest.mark.parametrize("method", ["stratified", "contiguous"])
def test_disjoint_and_covering(labels, method):
    folds = assign_folds(np.arange(600), labels, n_splits=5, seed=0, method=method)
    assert folds.shape == (600,) and set(folds) == set(range(5))
    assert np.bincount(folds).min() >= 115 and np.bincount(folds).max() <= 125


def test_stratified_balances_letters_better_than_chance(labels):
    """Iterative stratification serves the rarest letters first: they come out near-exact; dense
    letters (each image carries many) get less help, but the average beats a random split."""
    folds = assign_folds(np.arange(600), labels, n_splits=5, seed=0, method="stratified")
    random_folds = np.random.default_rng(0).permutation(np.arange(600) % 5)
    overall = labels.mean(0)

    def deviation(f):
        return np.array([np.abs(labels[f == k].mean(0) - overall) for k in range(5)]).max(0)

    strat, rand = deviation(folds), deviation(random_folds)
    rare = overall < 0.3
    assert strat[rare].max() < 0.015 < rand[rare].max()
    assert strat.mean() < rand.mean()


def test_contiguous_is_unshuffled_blocks(labels):
    folds = assign_folds(np.arange(600), labels, n_splits=4, method="contiguous")
    assert np.array_equal(folds, np.repeat(np.arange(4), 150))


def test_seed_changes_stratified_but_is_deterministic(labels):
    a = assign_folds(np.arange(600), labels, seed=1)
    assert np.array_equal(a, assign_folds(np.arange(600), labels, seed=1))
    assert not np.array_equal(a, assign_folds(np.arange(600), labels, seed=2))


@pytest.fixture(scope="module")
def grouped_root(tmp_path_factory, bank):
    comp = Compositor(CompositorConfig(glyph_groups=5), bank, distractor_bank(0), seed=0)
    root = tmp_path_factory.mktemp("grouped") / "root"
    generate(root, comp, n_train=100, n_test=0, seed=0, workers=1, progress=False)
    return root


def test_group_folds_are_glyph_disjoint(grouped_root, tmp_path):
    layout = DaconLayout(grouped_root)
    split = load_split(layout, "train")
    folds = load_or_make_folds(
        tmp_path / "f.csv", split.indices, split.labels, 5, 0, "group", layout.path("meta")
    )
    glyphs = read_glyph_ids(layout.path("meta"), split.indices)
    for k in range(5):
        val = {g for row, f in zip(glyphs, folds["fold"], strict=True) if f == k for g in row}
        train = {g for row, f in zip(glyphs, folds["fold"], strict=True) if f != k for g in row}
        assert val and train and not val & train


def test_group_folds_need_glyph_groups(synth_root, tmp_path):
    layout = DaconLayout(synth_root)  # generated with glyph_groups=1: every image shares glyphs
    split = load_split(layout, "train")
    with pytest.raises(DatasetError, match="generate the data with glyph_groups>=5"):
        load_or_make_folds(
            tmp_path / "f.csv", split.indices, split.labels, 5, 0, "group", layout.path("meta")
        )


def test_folds_file_written_once_and_rewritten_on_mismatch(labels, tmp_path):
    path = tmp_path / folds_filename(5, 0, "stratified")
    assert path.name == "folds_stratified_k5_s0.csv"
    first = load_or_make_folds(path, np.arange(600), labels, 5, 0)
    assert list(first.columns) == ["index", "fold"] and path.is_file()
    # a reused file is read back as written, not recomputed: plant a valid but different assignment
    planted = first.assign(fold=np.arange(600) % 5)
    planted.to_csv(path, index=False)
    assert np.array_equal(load_or_make_folds(path, np.arange(600), labels, 5, 0)["fold"], planted["fold"])
    # a file for other images is replaced
    again = load_or_make_folds(path, np.arange(1, 601), labels, 5, 0)
    assert np.array_equal(pd.read_csv(path)["index"], np.arange(1, 601)) and len(again) == 600


def test_bad_method_and_missing_meta(labels, tmp_path):
    with pytest.raises(ValueError, match="fold method must be one of"):
        assign_folds(np.arange(600), labels, method="random")
    with pytest.raises(DatasetError, match="meta.csv: not found"):
        load_or_make_folds(tmp_path / "f.csv", np.arange(600), labels, 5, 0, "group", tmp_path / "meta.csv")
