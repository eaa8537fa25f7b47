"""The synthetic generator: determinism, labels that match what was drawn, realism, glyph sources, CLI."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.errors import ConfigCompositionException

from multimnist.config import compose
from multimnist.data.dacon import DaconLayout, DatasetError, decode_gray, load_split
from multimnist.synth.compositor import Compositor, CompositorConfig
from multimnist.synth.distractors import distractor_bank
from multimnist.synth.generate import generate
from multimnist.synth.glyphs import (
    GlyphBank,
    load_glyphs,
    procedural_bank,
    read_dacon7,
    read_emnist,
    redraw_strokes,
)
from multimnist.synth.show import generated_images, preview
from multimnist.synth.stats import dataset_stats, image_stats
from multimnist.synth.stats import main as stats_main


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "synth.json"
    }


def test_same_seed_same_bytes_whatever_the_workers(tmp_path, compositor):
    generate(tmp_path / "a", compositor, n_train=70, n_test=10, seed=5, workers=1, progress=False)
    generate(tmp_path / "b", compositor, n_train=70, n_test=10, seed=5, workers=2, progress=False)
    generate(tmp_path / "c", compositor, n_train=70, n_test=10, seed=6, workers=2, progress=False)
    a, b, c = (tree_bytes(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys() and a["dirty_mnist_2nd/00000.png"] != c["dirty_mnist_2nd/00000.png"]


def test_letters_per_image_and_labels_match_the_glyphs_drawn(synth_root, bank):
    layout = DaconLayout(synth_root)
    train = load_split(layout, "train")
    counts = train.labels.sum(1)
    assert counts.min() >= 10 and counts.max() <= 14 and len(set(counts)) >= 3
    meta = pd.read_csv(layout.path("meta"), dtype={"glyph_ids": str})
    letter_of_id = dict(zip(bank.ids.tolist(), bank.letters.tolist(), strict=True))
    for row, ids in zip(train.labels, meta["glyph_ids"], strict=True):
        drawn = sorted(letter_of_id[int(g)] for g in ids.split())
        assert drawn == np.flatnonzero(row).tolist()  # one glyph per labelled letter, no more, no fewer
    test = load_split(layout, "test")
    assert test.labels.sum(1).min() >= 10
    sample = pd.read_csv(layout.path("sample_submission"))
    assert sample.iloc[:, 1:].to_numpy().sum() == 0 and list(sample["index"]) == list(range(120, 160))


def test_letter_that_cannot_be_placed_is_not_labelled(bank):
    cramped = CompositorConfig(
        image_size=64,
        letters_min=6,
        letters_max=6,
        size_min=40,
        size_max=44,
        rotation=0,
        max_overlap=0.0,
        placement_tries=5,
        distractors_max=0,
        distractors_min=0,
    )
    comp = Compositor(cramped, bank, distractor_bank(0))
    out = comp.compose(np.random.default_rng(0))
    assert out.dropped and len(out.letters) + len(out.dropped) == 6
    assert not set(out.letters) & set(out.dropped) and len(out.glyph_ids) == len(out.letters)


def test_spread_keeps_letters_in_the_central_box(bank):
    """compositor.spread=0.3: every letter's centre lies in the central 30% of the image, so all ink does
    within half a letter of it; spread=1 draws the same letters all over the image."""

    def ink_extent(spread: float) -> tuple[int, int]:
        cfg = CompositorConfig(
            image_size=128,
            letters_min=8,
            letters_max=8,
            size_min=10,
            size_max=12,
            max_overlap=1.0,
            spread=spread,
            distractors_min=0,
            distractors_max=0,
            noise=False,
        )
        lows, highs = [], []
        for seed in range(6):
            ys, xs = np.nonzero(
                Compositor(cfg, bank, distractor_bank(0)).compose(np.random.default_rng(seed)).image
            )
            lows.append(min(ys.min(), xs.min()))
            highs.append(max(ys.max(), xs.max()))
        return min(lows), max(highs)

    low, high = ink_extent(0.3)
    half_letter = 12  # a 12 px glyph rotated any way stays within 9 px of its centre; 12 with stretch
    assert low >= 128 * 0.35 - half_letter and high <= 128 * 0.65 + half_letter
    low, high = ink_extent(1.0)
    assert low < 128 * 0.35 - half_letter and high > 128 * 0.65 + half_letter
    with pytest.raises(ValueError, match="spread"):
        CompositorConfig(spread=0)


def test_letters_are_drawn_where_labelled(bank):
    """On a black background every labelled letter leaves ink (faint ones saturate only over noise)."""
    cfg = CompositorConfig(noise=False, distractors_min=0, distractors_max=0, letters_min=1, letters_max=1)
    comp = Compositor(cfg, bank, distractor_bank(0))
    for seed in range(20):
        out = comp.compose(np.random.default_rng(seed))
        assert len(out.letters) == 1 and (out.image > 64).sum() > 20


@pytest.mark.parametrize("source", ["procedural", "dacon7"])
def test_realism_within_ten_percent_of_real_images(source, bank, shared_data):
    """The configured defaults of each glyph source match the real images' saturated-ink figures."""

    overrides = (
        ["out=x", f"glyphs={source}", f"glyphs.path={shared_data / 'dacon7'}"] if source == "dacon7" else []
    )
    cfg = compose_synth(overrides or ["out=x"])
    glyphs = bank if source == "procedural" else load_glyphs(cfg.glyphs.source, cfg.glyphs.path)
    compositor = Compositor(CompositorConfig(**cfg.compositor), glyphs, distractor_bank(0))
    real = [image_stats(p) for p in _real_images(shared_data)]
    synth = [image_stats(compositor.compose(np.random.default_rng([9, i])).image) for i in range(80)]
    for key in ("bg_mean", "bg_sd", "frac255", "inside255", "blob_area"):
        r, s = np.mean([x[key] for x in real]), np.mean([x[key] for x in synth])
        assert abs(s - r) <= 0.10 * r, f"{key}: synthetic {s:.4f} vs real {r:.4f}"
    r_size = np.median(np.concatenate([x["blob_sizes"] for x in real]))
    s_size = np.median(np.concatenate([x["blob_sizes"] for x in synth]))
    assert abs(s_size - r_size) <= 0.15 * r_size


def _real_images(shared_data):
    import cv2

    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((shared_data / "real").glob("*.png"))]


def test_procedural_bank_is_deterministic(bank):
    assert np.array_equal(procedural_bank(seed=0, variants=1).images, bank.images)
    assert not np.array_equal(procedural_bank(seed=1, variants=1).images, bank.images)


def test_a_redrawn_stroke_follows_the_centre_line_with_the_pens_width_and_ink():
    bar = np.zeros((56, 56), np.uint8)
    bar[24:34, 8:48] = 255  # a 10 px thick stroke along y = 28.5
    rng = np.random.default_rng(0)
    even = redraw_strokes(bar, rng, jitter=0, pen_width=0, ink_variation=0)
    rows = np.flatnonzero(even.max(axis=1) > 127)
    assert 1 <= len(rows) <= 4 and 26 <= rows.mean() <= 31  # a 2 px pen on the bar's centre line
    bent = redraw_strokes(bar, rng, jitter=6, pen_width=0, ink_variation=0)
    assert np.ptp(np.flatnonzero(bent.max(axis=1) > 127)) > 3  # no longer one straight line
    assert np.all(bent[:14] == 0) and np.all(bent[44:] == 0)  # within jitter + pen of the line
    wide = redraw_strokes(bar, rng, jitter=0, pen_width=3, ink_variation=0)
    assert (wide > 127).sum() > 1.5 * (even > 127).sum()
    faint = redraw_strokes(bar, rng, jitter=0, pen_width=2, ink_variation=0.6)
    columns = faint.max(axis=0)[12:44]
    assert columns.min() < 200 and columns.min() >= 0.4 * 255 - 2  # the ink drifts, never below 40%


def test_handdrawn_glyphs_redraw_every_font_and_keep_the_bank_as_it_was(bank):
    config = compose_synth(["out=x", "glyphs=handdrawn"])
    assert config.glyphs.source == "procedural" and config.compositor.thickness_min == 0
    options = {**config.glyphs.options, "variants": 1}
    hand = load_glyphs(config.glyphs.source, config.glyphs.path, seed=0, **options)
    plain = bank
    assert np.array_equal(hand.letters, plain.letters) and np.array_equal(hand.families, plain.families)
    changed = [not np.array_equal(a, b) for a, b in zip(hand.images, plain.images, strict=True)]
    assert all(changed)  # every font, outline and stroke alike
    assert (hand.images > 127).mean() < (plain.images > 127).mean()  # pen lines, not filled outlines
    redrawn_off = procedural_bank(seed=0, variants=1, stroke_jitter=0, pen_width=5, ink_variation=0.9)
    assert np.array_equal(redrawn_off.images, plain.images)  # stroke_jitter=0: the fonts as they were


def test_glyph_groups_keep_images_within_one_family_group(bank):
    comp = Compositor(CompositorConfig(glyph_groups=4), bank, distractor_bank(0), seed=0)
    family_of_id = dict(zip(bank.ids.tolist(), bank.families.tolist(), strict=True))
    group_of_family = {}
    for g, pools in enumerate(comp.pools):
        for rows in pools:
            for f in bank.families[rows]:
                group_of_family[int(f)] = g
    for seed in range(10):
        ids = comp.compose(np.random.default_rng(seed)).glyph_ids
        assert len({group_of_family[family_of_id[i]] for i in ids}) == 1


def test_dacon7_reader_on_real_csv(shared_data):
    glyphs = read_dacon7([shared_data / "dacon7" / "train.csv"])
    assert len(glyphs) == 2048 and glyphs.images.shape == (2048, 28, 28)
    assert set(glyphs.letters.tolist()) == set(range(26))
    assert glyphs.images[:, 0, :].max() == 0  # the faint scan background became paper
    comp = Compositor(CompositorConfig(), glyphs, distractor_bank(0))
    assert 10 <= len(comp.compose(np.random.default_rng(0)).letters) <= 14


def test_dacon7_reader_rejects_bad_letter(tmp_path):
    row = {"id": 1, "digit": 5, "letter": "7", **{str(i): 0 for i in range(784)}}
    pd.DataFrame([row]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DatasetError, match=r"bad\.csv: line 2: letter '7' is not a-z"):
        read_dacon7([tmp_path / "bad.csv"])


def test_the_competitions_mnist_data_folder_loads_train_and_test_csv_alike(tmp_path):
    """mnist_data.zip holds train.csv (id,digit,letter,0..783) and test.csv (id,letter,0..783, no
    digit column, ids numbered again from 0): a folder of both is one glyph bank."""
    rng = np.random.default_rng(0)
    upper, lower = [chr(ord("A") + k) for k in range(26)], [chr(ord("a") + k) for k in range(26)]
    pixels = {str(i): rng.integers(0, 255, 26) for i in range(784)}
    train = pd.DataFrame({"id": range(26), "digit": rng.integers(0, 10, 26), "letter": upper, **pixels})
    test = pd.DataFrame({"id": range(26), "letter": lower, **pixels})
    (tmp_path / "mnist_data").mkdir()
    train.to_csv(tmp_path / "mnist_data" / "train.csv", index=False)
    test.to_csv(tmp_path / "mnist_data" / "test.csv", index=False)
    alone = load_glyphs("dacon7", tmp_path / "mnist_data" / "test.csv")
    assert sorted(alone.letters.tolist()) == list(range(26))
    both = load_glyphs("dacon7", tmp_path / "mnist_data")
    assert len(both) == 52 and sorted(both.letters.tolist()) == sorted(list(range(26)) * 2)
    assert len(set(both.ids.tolist())) == 52  # the two files' ids, which overlap, are made distinct


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_emnist_reader_transposes_and_shifts_labels(tmp_path):
    images = np.zeros((26, 28, 28), np.uint8)
    images[:, 2, 10] = 255  # stored transposed: this is row 10, column 2 once read
    _write_idx(tmp_path / "emnist-letters-train-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "emnist-letters-train-labels-idx1-ubyte.gz", np.arange(1, 27))
    glyphs = load_glyphs("emnist", tmp_path)
    assert len(glyphs) == 26 and glyphs.letters.tolist() == list(range(26))
    assert glyphs.images[0, 10, 2] == 255 and glyphs.images[0, 2, 10] == 0


def test_emnist_reader_errors(tmp_path):
    with pytest.raises(DatasetError, match="EMNIST letters file not found"):
        read_emnist(tmp_path)
    (tmp_path / "emnist-letters-train-images-idx3-ubyte").write_bytes(b"\x00\x00\x0c\x03junk")
    _write_idx(tmp_path / "emnist-letters-train-labels-idx1-ubyte.gz", np.arange(1, 27))
    with pytest.raises(DatasetError, match="bad magic"):
        read_emnist(tmp_path)


def test_bank_must_cover_all_letters():
    with pytest.raises(DatasetError, match="lacks letters"):
        GlyphBank(np.zeros((2, 28, 28), np.uint8), np.array([0, 1]), np.arange(2), np.arange(2))


def test_existing_output_is_refused_and_nothing_half_written(tmp_path, compositor):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=true"):
        generate(out, compositor, n_train=2, n_test=1, progress=False)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert not list(tmp_path.glob(".ds.partial-*"))


def test_stats_reports_real_and_synthetic_side_by_side(synth_root, shared_data, capsys):
    assert stats_main([str(synth_root), str(shared_data / "real"), "--max-images", "20"]) == 0
    table = capsys.readouterr().out
    assert "pixels exactly 255" in table and "letters per image mean" in table
    real = dataset_stats(shared_data / "real")
    assert real["labelled images"] == 50000 and real["letters/image min"] == 10


def test_stats_error_is_one_line(tmp_path, capsys):
    assert stats_main([str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def compose_synth(overrides):
    return compose("synth", overrides)


def test_config_presets_and_sources_compose(shared_data):

    default = compose_synth(["out=x"])
    assert CompositorConfig(**default.compositor) == CompositorConfig()
    easy = compose_synth(["out=x", "preset=easy"])
    assert easy.compositor.letters_max == 3 and easy.compositor.rotation == 15
    dacon = compose_synth(["out=x", "glyphs=dacon7", f"glyphs.path={shared_data / 'dacon7'}"])
    bank = load_glyphs(dacon.glyphs.source, dacon.glyphs.path, **dacon.glyphs.options)
    assert len(bank) == 2048 and dacon.compositor.thickness_min == 0  # its thin strokes get thickened
    with pytest.raises(ConfigCompositionException):
        compose_synth(["out=x", "compositor.letters_maxx=3"])


def test_cli_contract_writes_a_valid_root(tmp_path):
    out = tmp_path / "cli"
    cmd = [
        sys.executable,
        "-m",
        "multimnist.synth",
        f"out={out}",
        "n_train=20",
        "n_test=5",
        "seed=2",
        "preset=easy",
        "progress=false",
        "glyphs.options.variants=1",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    train = load_split(DaconLayout(out), "train")
    assert len(train) == 20 and train.labels.sum(1).max() <= 3
    assert not (tmp_path / "outputs").exists()  # Hydra leaves no run folder behind
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert again.returncode == 2 and again.stderr.startswith("error: ") and "Traceback" not in again.stderr


def test_show_draws_the_generators_own_images_beside_real_ones(synth_root, compositor, tmp_path):
    # synth_root was written by `generate(..., seed=3)` with this compositor: the preview's images are
    # those very files, with their letters from the answer CSV.
    answers = pd.read_csv(synth_root / "dirty_mnist_2nd_answer.csv").set_index("index")
    for i, (letters, image) in enumerate(generated_images(compositor, seed=3, n=3)):
        assert np.array_equal(image, decode_gray(synth_root / "dirty_mnist_2nd" / f"{i:05d}.png"))
        assert sorted(letters) == list(np.flatnonzero(answers.loc[i].to_numpy()))
    real = tmp_path / "real"
    real.mkdir()
    shutil.copy(synth_root / "test_dirty_mnist_2nd" / "00120.png", real / "some_real.png")
    out = preview(compose("show", [f"out={tmp_path / 'preview.png'}", "n=2", f"real={real}"]))
    assert decode_gray(out).shape[1] > 600  # a grid of 3 tiles was drawn
