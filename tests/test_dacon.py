"""Reading and validating the Dacon layout, and the torch Dataset over it."""

from __future__ import annotations

import logging
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from multimnist.data.dacon import DaconLayout, DatasetError, load_split, read_label_csv
from multimnist.data.dataset import DaconImages
from multimnist.labels import CSV_COLUMNS


def make_root(tmp_path: Path, n_train: int = 4, n_test: int = 2, seed: int = 0) -> DaconLayout:
    """A minimal valid root written by hand (independent of the generator)."""
    rng = np.random.default_rng(seed)
    layout = DaconLayout(tmp_path / "root")
    for split, ids in (("train_dir", range(n_train)), ("test_dir", range(50000, 50000 + n_test))):
        layout.path(split).mkdir(parents=True)
        for i in ids:
            cv2.imwrite(
                str(layout.path(split) / f"{i:05d}.png"), rng.integers(0, 256, (256, 256), dtype=np.uint8)
            )
    labels = rng.integers(0, 2, (n_train, 26))
    pd.DataFrame(np.c_[np.arange(n_train), labels], columns=CSV_COLUMNS).to_csv(
        layout.path("train_csv"), index=False
    )
    test_ids = np.arange(50000, 50000 + n_test)
    zeros = np.zeros((n_test, 26), int)
    pd.DataFrame(np.c_[test_ids, zeros], columns=CSV_COLUMNS).to_csv(
        layout.path("sample_submission"), index=False
    )
    return layout


def edit_csv(path: Path, line: int, new: str) -> None:
    lines = path.read_text().splitlines()
    lines[line - 1] = new
    path.write_text("\n".join(lines) + "\n")


def test_valid_root_loads_in_csv_order(tmp_path):
    layout = make_root(tmp_path)
    train = load_split(layout, "train")
    assert list(train.indices) == [0, 1, 2, 3]
    assert train.labels.shape == (4, 26) and train.labels.dtype == np.uint8
    assert [p.name for p in train.paths] == ["00000.png", "00001.png", "00002.png", "00003.png"]
    test = load_split(layout, "test")
    assert list(test.indices) == [50000, 50001] and test.labels is None


def test_synthetic_root_validates_with_test_answers(synth_root):
    train = load_split(DaconLayout(synth_root), "train")
    test = load_split(DaconLayout(synth_root), "test")
    assert len(train) == 120 and len(test) == 40
    assert test.indices[0] == 120 and test.labels is not None
    assert set(train.labels.sum(1)) <= set(range(10, 15))


def test_missing_root_and_folder(tmp_path):
    with pytest.raises(DatasetError, match="dataset root not found"):
        load_split(DaconLayout(tmp_path / "nope"), "train")
    layout = make_root(tmp_path)
    for f in layout.path("test_dir").iterdir():
        f.unlink()
    layout.path("test_dir").rmdir()
    with pytest.raises(DatasetError, match=r"test_dirty_mnist_2nd: image folder not found"):
        load_split(layout, "test")


def test_bad_header_names_file(tmp_path):
    layout = make_root(tmp_path)
    edit_csv(layout.path("train_csv"), 1, "id," + ",".join("abcdefghijklmnopqrstuvwxyz"))
    with pytest.raises(DatasetError, match=r"dirty_mnist_2nd_answer\.csv: header must be 'index,a,b,...,z'"):
        load_split(layout, "train")


def test_label_not_binary_names_line_and_column(tmp_path):
    layout = make_root(tmp_path)
    edit_csv(layout.path("train_csv"), 3, "1," + ",".join(["0"] * 4 + ["2"] + ["0"] * 21))
    with pytest.raises(DatasetError, match=r"line 3, column 'e': label '2' is not 0 or 1"):
        load_split(layout, "train")


def test_duplicate_and_non_integer_index(tmp_path):
    layout = make_root(tmp_path)
    edit_csv(layout.path("train_csv"), 4, "1," + ",".join(["0"] * 26))
    with pytest.raises(DatasetError, match=r"line 4: duplicate index 1"):
        load_split(layout, "train")
    edit_csv(layout.path("train_csv"), 4, "x7," + ",".join(["0"] * 26))
    with pytest.raises(DatasetError, match=r"line 4: index 'x7' is not a non-negative integer"):
        load_split(layout, "train")


def test_index_without_image(tmp_path):
    layout = make_root(tmp_path)
    (layout.path("train_dir") / "00002.png").unlink()
    with pytest.raises(DatasetError, match=r"00002\.png: no image for index 2 listed in .*answer\.csv"):
        load_split(layout, "train")


def test_undecodable_image(tmp_path):
    layout = make_root(tmp_path)
    (layout.path("train_dir") / "00001.png").write_bytes(b"this is not a png")
    with pytest.raises(DatasetError, match=r"00001\.png: cannot be decoded"):
        load_split(layout, "train")


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((128, 256), np.uint8), r"image is 256x128, expected 256x256"),
        (np.zeros((256, 256), np.uint16), r"image is 16-bit gray, expected 8-bit single-channel gray"),
    ],
)
def test_wrong_size_or_depth(tmp_path, image, message):
    layout = make_root(tmp_path)
    cv2.imwrite(str(layout.path("train_dir") / "00003.png"), image)
    with pytest.raises(DatasetError, match=message):
        load_split(layout, "train")


def test_rgb_of_gray_content_is_accepted_with_one_warning(tmp_path, caplog):
    layout = make_root(tmp_path)
    path = layout.path("train_dir") / "00000.png"
    gray = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(path), np.dstack([gray] * 3))
    with caplog.at_level(logging.WARNING):
        split = load_split(layout, "train")
    assert "1 image(s) are not 8-bit gray" in caplog.text and "3-channel RGB" in caplog.text
    x, _, _ = DaconImages(split)[0]
    assert x.shape == (1, 256, 256)
    assert np.array_equal(x[0].numpy(), gray)


def test_test_answer_must_match_sample_submission(tmp_path):
    layout = make_root(tmp_path)
    frame = pd.read_csv(layout.path("sample_submission"))
    frame.iloc[::-1].to_csv(layout.path("test_answer"), index=False)
    with pytest.raises(DatasetError, match=r"test_answer\.csv: ids or their order differ"):
        load_split(layout, "test")


def test_configurable_part_names(tmp_path):
    layout = make_root(tmp_path)
    layout.path("train_csv").rename(layout.root / "labels.csv")
    renamed = DaconLayout(layout.root, train_csv="labels.csv")
    assert len(load_split(renamed, "train")) == 4


def test_real_label_csvs_load(shared_data):
    answers = read_label_csv(shared_data / "real" / "dirty_mnist_2nd_answer.csv")
    assert answers.shape == (50000, 26)
    assert answers.index[0] == 0 and answers.index[-1] == 49999
    counts = answers.to_numpy().sum(1)
    assert counts.min() == 10 and counts.max() == 14
    # row 1 is the label of the real image shipped beside it
    assert "".join(answers.columns[answers.loc[1].to_numpy() == 1]) == "adfhjlprtyz"
    sample = read_label_csv(shared_data / "real" / "sample_submission.csv")
    assert list(sample.index[[0, -1]]) == [50000, 54999] and sample.to_numpy().sum() == 0


def test_dataset_items(synth_root):
    split = load_split(DaconLayout(synth_root), "train")
    x, y, index = DaconImages(split)[5]
    assert x.dtype == torch.uint8 and x.shape == (1, 256, 256)  # floats only on the device (Batching)
    assert np.array_equal(x[0].numpy(), cv2.imread(str(split.paths[5]), cv2.IMREAD_GRAYSCALE))
    assert y.dtype == torch.float32 and torch.equal(y, torch.from_numpy(split.labels[5].astype(np.float32)))
    assert index == 5
    small, _, _ = DaconImages(split, img_size=64)[5]
    assert small.shape == (1, 64, 64)


def test_denoise_keeps_only_saturated_pixels(synth_root):
    split = load_split(DaconLayout(synth_root), "train")
    raw = cv2.imread(str(split.paths[0]), cv2.IMREAD_GRAYSCALE)
    x, _, _ = DaconImages(split, denoise=True)[0]
    clean = x[0].numpy()
    assert set(np.unique(clean)) <= {0, 255}
    assert np.array_equal(clean == 255, raw == 255)
    # the noise background is almost entirely removed: of the non-letter pixels only 1/256 survive
    assert (clean == 255).mean() < 0.15 and (raw > 0).mean() > 0.95


def test_transform_and_rows(synth_root):
    split = load_split(DaconLayout(synth_root), "train")
    flipped = DaconImages(split, transform=A.HorizontalFlip(p=1.0), rows=[7, 3])
    assert len(flipped) == 2
    x, _, index = flipped[0]
    plain, _, _ = DaconImages(split)[7]
    assert index == 7 and torch.equal(x, plain.flip(-1))


def test_test_split_without_answers_has_nan_labels(tmp_path):
    layout = make_root(tmp_path)
    _, y, index = DaconImages(load_split(layout, "test"))[1]
    assert index == 50001 and torch.isnan(y).all()


def test_data_config_group_is_a_layout(tmp_path):
    from hydra import compose, initialize_config_dir

    from .conftest import REPO

    layout = make_root(tmp_path)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="data/dacon", overrides=[f"data.root={layout.root}"]).data
    assert DaconLayout.from_mapping(cfg) == layout  # the defaults are Dacon's names
    assert len(load_split(DaconLayout.from_mapping(cfg), "train")) == 4
