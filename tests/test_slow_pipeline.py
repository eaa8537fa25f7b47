"""Slow end-to-end check of the data foundation at a larger scale (make test-slow)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml

from multimnist.data.cache import cached_images
from multimnist.data.dacon import DaconLayout, load_split
from multimnist.data.dataset import DaconImages
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


@pytest.mark.slow
def test_optuna_search_runs_trials_and_ranks_them(synth_root, tmp_path):
    # hparams_search=optuna (the `search` extra): 3 trials of a debug-sized fold, each its own
    # experiment; the sweeper's best value is the best trial's val_loss, which multimnist.rank lists first.
    exp = tmp_path / "exp"
    cmd = [sys.executable, "-m", "multimnist.train", f"data.root={synth_root}", f"paths.experiments={exp}"]
    cmd += [f"data.cache_dir={tmp_path / 'cache'}", "backbone=tiny", "trainer=debug", "hparams_search=optuna"]
    cmd += ["hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.n_startup_trials=2", "-m"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = sorted(d for d in exp.glob("search_*") if (d / "fold0" / "test_logits.npy").is_file())
    assert len(trials) == 3 and all("optimizer.lr=" in d.name for d in trials)
    (results,) = exp.glob("search/.sweeps/*/optimization_results.yaml")
    best = yaml.safe_load(results.read_text())["best_value"]
    rank = [
        sys.executable,
        "-m",
        "multimnist.rank",
        "--experiments",
        str(exp),
        "--prefix",
        "search_",
    ]
    table = subprocess.run(rank, capture_output=True, text=True, check=True, timeout=300).stdout.splitlines()
    assert len(table) == 4 and f"{best:.4f}" in table[1]  # header, then the best trial
