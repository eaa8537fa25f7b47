"""Pseudo-labels (data.pseudo_labels): the listed test images join every fold's training images with
the CSV's labels, never the test answers and never the validation images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multimnist.build import build_datasets
from multimnist.config import dataset_args
from multimnist.data.dacon import DatasetError
from multimnist.fold import run_fold
from multimnist.labels import CSV_COLUMNS

from .conftest import fold_cfg


def write_pseudo(synth_root, path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n test ids labelled with the opposite of their answers (so neither can pass for the
    other); returns (ids, labels)."""
    answers = pd.read_csv(synth_root / "test_answer.csv").head(n)
    labels = 1 - answers.iloc[:, 1:].to_numpy()
    pd.DataFrame(np.column_stack([answers["index"], labels]), columns=CSV_COLUMNS).to_csv(path, index=False)
    return answers["index"].to_numpy(), labels


def test_pseudo_labelled_test_images_join_the_training_images_only(synth_root, tmp_path):
    ids, labels = write_pseudo(synth_root, tmp_path / "pseudo.csv", 10)
    plain = build_datasets(**dataset_args(fold_cfg(synth_root, tmp_path, "augmentation=none")))
    pseudo = f"data.pseudo_labels={tmp_path / 'pseudo.csv'}"
    train, val, test = build_datasets(
        **dataset_args(fold_cfg(synth_root, tmp_path, "augmentation=none", pseudo))
    )
    assert len(train) == len(plain[0]) + 10 and len(val) == len(plain[1]) and len(test) == len(plain[2])
    extra = [train[i] for i in range(len(plain[0]), len(train))]
    assert [item[2] for item in extra] == ids.tolist()
    assert np.array_equal(np.stack([item[1].numpy() for item in extra]), labels)  # the CSV's, not answers
    assert np.array_equal(extra[3][0].numpy(), test[3][0].numpy())  # the test image itself
    # a batch read across both parts equals item-by-item reads, in the asked order
    asked = [len(train) - 1, 0, len(plain[0]), 5]
    batch = train.__getitems__(asked)
    for got, i in zip(batch, asked, strict=True):
        want = train[i]
        assert got[2] == want[2] and np.array_equal(got[0].numpy(), want[0].numpy())
        assert np.array_equal(got[1].numpy(), want[1].numpy())


def test_a_fold_trains_on_its_images_plus_the_pseudo_labelled_ones(synth_root, tmp_path):
    write_pseudo(synth_root, tmp_path / "pseudo.csv", 12)
    run = run_fold(fold_cfg(synth_root, tmp_path, f"data.pseudo_labels={tmp_path / 'pseudo.csv'}"))
    plain = run_fold(fold_cfg(synth_root, tmp_path, "exp=plain"))
    with_pseudo, without = (pd.read_csv(r / "metrics.csv") for r in (run, plain))
    assert list(with_pseudo.train_images) == [n + 12 for n in without.train_images]
    assert np.array_equal(np.load(run / "oof_index.npy"), np.load(plain / "oof_index.npy"))  # same validation


def test_pseudo_labels_of_an_unknown_id_name_the_file_and_the_id(synth_root, tmp_path):
    ids, _ = write_pseudo(synth_root, tmp_path / "pseudo.csv", 3)
    frame = pd.read_csv(tmp_path / "pseudo.csv")
    frame.loc[1, "index"] = 99999
    frame.to_csv(tmp_path / "pseudo.csv", index=False)
    with pytest.raises(DatasetError, match=r"pseudo\.csv: index 99999 is not a test image"):
        build_datasets(
            **dataset_args(fold_cfg(synth_root, tmp_path, f"data.pseudo_labels={tmp_path / 'pseudo.csv'}"))
        )


def test_a_run_stored_before_pseudo_labels_reads_as_without_them(synth_root, tmp_path):
    """Runs written before the key existed (the ensemble re-predicts from their stored config)."""
    from omegaconf import OmegaConf

    from multimnist.rundir import CONFIG, read_config

    cfg = OmegaConf.to_container(fold_cfg(synth_root, tmp_path), resolve=True)
    del cfg["data"]["pseudo_labels"]
    (tmp_path / CONFIG).parent.mkdir(parents=True)
    (tmp_path / CONFIG).write_text(OmegaConf.to_yaml(cfg))
    stored = read_config(tmp_path)
    assert stored["data"]["pseudo_labels"] is None
    assert dataset_args(OmegaConf.create(stored))["pseudo_labels"] is None
