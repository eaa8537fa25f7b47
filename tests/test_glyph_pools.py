"""Disjoint glyph pools (glyphs.pool=A|B) and test images on glyphs the train images never use
(test_glyphs_held_out): what keeps the real-handwriting benchmark honest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multimnist.config import compose
from multimnist.data.dacon import DatasetError
from multimnist.synth.__main__ import run as synth_run
from multimnist.synth.glyphs import load_glyphs


def write_dacon7(path, per_letter: int, seed: int = 0):
    """A Dacon-7 CSV with `per_letter` random glyphs of each letter (ids 1000..)."""
    rng = np.random.default_rng(seed)
    n = 26 * per_letter
    letters = [chr(ord("A") + k % 26) for k in range(n)]
    frame = pd.DataFrame(
        {"id": np.arange(1000, 1000 + n), "digit": rng.integers(0, 10, n), "letter": letters}
    )
    pixels = pd.DataFrame(rng.integers(0, 256, (n, 784)), columns=[str(i) for i in range(784)])
    pd.concat([frame, pixels], axis=1).to_csv(path, index=False)
    return path


def ids_in(meta_csv) -> set[int]:
    meta = pd.read_csv(meta_csv, dtype={"glyph_ids": str})
    return {int(g) for ids in meta["glyph_ids"] for g in ids.split()}


def test_pools_a_and_b_halve_the_glyphs_the_same_way_whatever_the_seed(tmp_path):
    csv = write_dacon7(tmp_path / "train.csv", per_letter=8)
    whole = load_glyphs("dacon7", csv)
    a, b = load_glyphs("dacon7", csv, pool="A"), load_glyphs("dacon7", csv, pool="B")
    assert set(a.ids.tolist()).isdisjoint(b.ids.tolist())
    assert sorted(a.ids.tolist() + b.ids.tolist()) == sorted(whole.ids.tolist())
    assert abs(len(a) - len(b)) <= 1 and len(a) < len(whole)
    again = load_glyphs("dacon7", csv, seed=7, pool="A")  # another run's seed: the same half
    assert again.ids.tolist() == a.ids.tolist()


def test_procedural_pools_split_by_font(bank):
    a = load_glyphs("procedural", pool="A", variants=1)
    b = load_glyphs("procedural", pool="B", variants=1)
    assert set(a.families.tolist()).isdisjoint(b.families.tolist())
    assert set(a.families.tolist()) | set(b.families.tolist()) == set(bank.families.tolist())


def test_a_pool_without_every_letter_is_one_clear_error(tmp_path):
    csv = write_dacon7(tmp_path / "train.csv", per_letter=1)
    with pytest.raises(DatasetError, match=r"glyphs.pool=A: .*lacks letters .*too small to halve"):
        load_glyphs("dacon7", csv, pool="A")


def synth(tmp_path, csv, name, *extra):
    out = tmp_path / name
    cfg = compose(
        "synth",
        [f"out={out}", "n_train=40", "n_test=40", "workers=1", "progress=false", "glyphs=dacon7"]
        + [f"glyphs.path={csv}", "compositor.letters_min=4", "compositor.letters_max=6", *extra],
    )
    synth_run(cfg)
    return ids_in(out / "meta.csv"), ids_in(out / "test_meta.csv")


def test_test_images_can_use_only_glyphs_the_train_images_never_use(tmp_path):
    csv = write_dacon7(tmp_path / "train.csv", per_letter=12)
    pool_b = set(load_glyphs("dacon7", csv, pool="B").ids.tolist())
    train, test = synth(tmp_path, csv, "held", "glyphs.pool=B", "test_glyphs_held_out=0.3")
    assert train.isdisjoint(test)
    assert train | test <= pool_b  # and both sides stay inside the pool
    shared_train, shared_test = synth(tmp_path, csv, "shared", "glyphs.pool=B")
    assert shared_train & shared_test  # without the option the two splits share glyphs


def test_an_unknown_pool_is_refused_naming_the_key():
    from multimnist.config import ConfigError, validate

    with pytest.raises(ConfigError, match=r"glyphs.pool.*must be one of"):
        validate(compose("synth", ["out=x", "glyphs.pool=C"]))
