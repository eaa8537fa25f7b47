"""Self-training: crops harvested where fine-tuned folds find each labelled letter, mixed into glyph
pretraining (`python -m multimnist.pretrain harvest.exp=EXP`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from multimnist.config import compose
from multimnist.data.dacon import DaconLayout, decode_gray, load_split
from multimnist.fold import run_fold
from multimnist.harvest import HARVEST, HARVEST_GRID, Harvest, HarvestError, cut, harvest
from multimnist.model import SmallCNN
from multimnist.pretraining import build_crops, crop_sizes, run_pretrain

from .conftest import fold_cfg

PER_LOCATION = ["backbone.head=per_location", "backbone.global_pool=max", "backbone.img_size=64"]


def test_cut_centres_the_window_and_fills_beyond_the_border_with_noise():
    image = np.zeros((256, 256), np.uint8)
    image[100, 60] = 255
    window = cut(image, 100.0, 60.0, 21, np.random.default_rng(0))
    assert window.shape == (21, 21) and window[10, 10] == 255 and window.sum() == 255
    corner = cut(image, 0.0, 0.0, 20, np.random.default_rng(0))
    assert corner[10:, 10:].sum() == 0 and corner[:10, :10].std() > 30  # outside: uniform noise


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory, synth_root):
    """Two folds of a tiny per-location model, as a fine-tune a user would harvest from."""
    tmp = tmp_path_factory.mktemp("harvest")
    for fold in (0, 1):
        args = ["data.folds.n_splits=2", f"fold={fold}", "trainer.epochs=1", *PER_LOCATION]
        run_fold(fold_cfg(synth_root, tmp, *args))
    return tmp


def test_each_fold_harvests_its_own_validation_images_once(fine_tuned, synth_root):
    found = harvest(fine_tuned / "exp", "t", side=24, min_confidence=0.0)
    labels = load_split(DaconLayout(synth_root), "train").labels
    assert len(found) == found.scored == labels.sum()  # every labelled letter of every image, once
    assert (found.looked_at == labels.sum(0)).all()  # per letter
    per_image = np.bincount(found.images, minlength=len(labels))
    assert (per_image == labels.sum(1)).all()
    assert found.crops.shape[1:] == (24 + 2 * found.margin,) * 2
    assert all(labels[i, c] for i, c in zip(found.images, found.letters, strict=True))
    bar = float(np.median(found.confidence))  # a barely trained model: its own median as the bar
    stricter = harvest(fine_tuned / "exp", "t", side=24, min_confidence=bar)
    assert 0 < len(stricter) < len(found) and (stricter.confidence >= bar).all()


def test_top_share_keeps_each_letters_most_confident_occurrences(fine_tuned, synth_root):
    every = harvest(fine_tuned / "exp", "t", side=24, min_confidence=0.0)
    top = harvest(fine_tuned / "exp", "t", side=24, min_confidence=0.0, top_share=0.25)
    labels = load_split(DaconLayout(synth_root), "train").labels
    for letter in range(26):
        kept = top.confidence[top.letters == letter]
        assert len(kept) == round(0.25 * labels[:, letter].sum())  # a share of its occurrences
        others = np.sort(every.confidence[every.letters == letter])[::-1]
        assert np.allclose(np.sort(kept)[::-1], others[: len(kept)])  # the most confident ones


def test_the_crop_is_cut_where_the_letter_scores_best(fine_tuned, synth_root, monkeypatch):
    def peak_at_row_2_column_5(self, x):  # every letter's best place: cell (2, 5) of an 8x8 map
        scores = torch.full((len(x), 26, 8, 8), -5.0)
        scores[:, :, 2, 5] = 5.0
        return scores

    monkeypatch.setattr(SmallCNN, "location_scores", peak_at_row_2_column_5)
    found = harvest(fine_tuned / "exp", "t", side=24, min_confidence=0.9)  # the peak: probability 0.99
    first = int(found.images[0])
    image = decode_gray(DaconLayout(synth_root).path("train_dir") / f"{first:05d}.png")
    side = 24 + 2 * found.margin  # cells are 256 / 8 = 32 px: the centre is (2.5 x 32, 5.5 x 32)
    expected = image[80 - side // 2 : 80 + side // 2, 176 - side // 2 : 176 + side // 2]
    assert np.array_equal(found.crops[0], expected)


def test_pretraining_mixes_in_the_harvest_and_draws_its_grid(fine_tuned):
    overrides = [
        "backbone=tiny",
        "exp=self",
        f"paths.experiments={fine_tuned / 'exp'}",
        "crops.per_epoch=64",
        "crops.eval_crops=32",
        "trainer.epochs=1",
        "trainer.batch_size=32",
        "trainer.num_workers=0",
        "trainer.progress=false",
        "harvest.exp=t",
        "harvest.min_confidence=0.0",
        "harvest.share=1.0",
    ]
    cfg = compose("pretrain", overrides)
    train, _ = build_crops(cfg, fine_tuned / "exp" / "self" / "pretrain")
    found = Harvest.load(fine_tuned / "exp" / "self" / "pretrain" / HARVEST)
    assert {int(train[i][1]) for i in range(64)} <= set(found.letters.tolist())  # share=1: all harvested
    native, size = crop_sizes(cfg)
    assert found.crops.shape[1] == native + 2 * found.margin  # cut at pretraining's own crop side
    assert train[0][0].shape == (1, size, size)  # and preprocessed to its input size
    weights = run_pretrain(cfg)
    assert (weights.parent / HARVEST_GRID).stat().st_size > 1000
    assert torch.load(weights, weights_only=True)["pretrain"]["harvest"] == "t"


def test_harvesting_an_experiment_without_finished_folds_is_one_line(tmp_path):
    with pytest.raises(HarvestError, match=r"harvest.exp=nothing: no finished fold .*fine-tune first"):
        harvest(tmp_path, "nothing", side=24)
