"""Slow end-to-end check of the data foundation at a larger scale (make test-slow)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from multimnist.data.cache import cached_images
from multimnist.data.dacon import DaconImages, DaconLayout, load_split
from multimnist.data.folds import folds_filename, load_or_make_folds
from multimnist.synth.stats import dataset_stats


@pytest.mark.slow
def test_cli_dataset_to_cached_denoised_folds(tmp_path, shared_data):
    out = tmp_path / "ds"
    cmd = [
        sys.executable,
        "-m",
        "multimnist.synth",
        f"out={out}",
        "n_train=3000",
        "n_test=300",
        "seed=11",
        "progress=false",
    ]
    subprocess.run(cmd, check=True, cwd=tmp_path, timeout=600)
    layout = DaconLayout(out)
    train, test = load_split(layout, "train"), load_split(layout, "test")
    assert len(train) == 3000 and len(test) == 300

    images = cached_images(train, out / ".cache", img_size=64, denoise=True, progress=False)
    ds = DaconImages(train, img_size=64, denoise=True, images=images)
    x, y, index = ds[2999]
    assert x.shape == (1, 64, 64) and index == 2999 and y.sum() >= 10

    folds = load_or_make_folds(
        out / ".cache" / folds_filename(5, 0, "stratified"), train.indices, train.labels, 5, 0
    )
    sizes = np.bincount(folds["fold"])
    assert sizes.min() >= 590 and sizes.max() <= 610

    synth, real = dataset_stats(out, max_images=300), dataset_stats(shared_data / "real")
    for key in (
        "bg_mean",
        "bg_sd",
        "frac255",
        "inside255",
        "blob_area",
        "letters/image mean",
        "prevalence mean",
    ):
        assert abs(synth[key] - real[key]) <= 0.10 * real[key], (
            f"{key}: {synth[key]:.4f} vs real {real[key]:.4f}"
        )
