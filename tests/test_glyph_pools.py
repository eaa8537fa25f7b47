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


def _lines(path) -> list[str]:
    return path.read_text().splitlines()


DACON7_DAMAGE = {  # name -> (how line 6, the 5th glyph, or the file is damaged; what the error says)
    "row too long": (lambda ls: ls[:5] + [ls[5] + ",7"] + ls[6:], r"Expected 787 fields in line 6, saw 788"),
    "row too short": (lambda ls: ls[:5] + [ls[5].rsplit(",", 1)[0]] + ls[6:], r"line 6: 786 fields with a"),
    "non-numeric pixel": (
        lambda ls: ls[:5] + [ls[5].rsplit(",", 1)[0] + ",x"] + ls[6:],
        r"line 6: pixel column 783 is 'x', not a number",
    ),
    "pixel 300": (
        lambda ls: ls[:5] + [ls[5].rsplit(",", 1)[0] + ",300"] + ls[6:],
        r"line 6: pixel column 783 is 300; pixels are whole numbers 0\.\.255",
    ),
    "empty file": (lambda ls: [], r"empty file, not a Dacon-7 mnist_data CSV"),
    "header only": (lambda ls: ls[:1], r"a header and no glyph rows"),
}


@pytest.mark.parametrize("case", list(DACON7_DAMAGE))
def test_a_damaged_dacon7_csv_names_the_file_and_line(tmp_path, case):
    damage, message = DACON7_DAMAGE[case]
    csv = write_dacon7(tmp_path / "train.csv", per_letter=2)
    csv.write_text("\n".join(damage(_lines(csv))) + "\n")
    with pytest.raises(DatasetError, match=rf"^{tmp_path / 'train.csv'}: .*{message}") as err:
        load_glyphs("dacon7", csv)
    assert "\n" not in str(err.value)


def test_a_folder_without_csv_files_is_named(tmp_path):
    with pytest.raises(DatasetError, match=rf"^{tmp_path}: a folder with no \.csv file"):
        load_glyphs("dacon7", tmp_path)


def test_the_commands_say_it_in_one_line_with_exit_2(tmp_path):
    import subprocess
    import sys

    csv = write_dacon7(tmp_path / "train.csv", per_letter=2)
    csv.write_text("\n".join(DACON7_DAMAGE["non-numeric pixel"][0](_lines(csv))) + "\n")
    for module, args in (
        ("synth", [f"out={tmp_path / 'out'}", "n_train=4", "n_test=0"]),
        ("pretrain", [f"paths.experiments={tmp_path / 'e'}", "backbone=tiny"]),
    ):
        cmd = [sys.executable, "-m", f"multimnist.{module}", *args, "glyphs=dacon7", f"glyphs.path={csv}"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip().splitlines()[-1].startswith(f"error: {csv}: line 6: pixel column 783")
        assert "Traceback" not in out.stderr
