"""Shared fixtures and helpers: a small synthetic dataset root, the real reference files (skipped when
absent), composing configs, and the overrides of a seconds-long CPU fold."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from multimnist.config import compose, register_configs
from multimnist.synth.compositor import Compositor, CompositorConfig
from multimnist.synth.distractors import distractor_bank
from multimnist.synth.generate import generate
from multimnist.synth.glyphs import procedural_bank

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SHARED = Path(os.environ.get("MULTIMNIST_SHARED", REPO.parent / "shared"))
TIMING = ["img_per_s", "seconds"]  # metrics.csv columns that measure time, not results

register_configs()  # what every entry point does first; tests compose configs directly


def compose_train(overrides: list[str]):
    return compose("train", overrides)


def small_run_args(root: Path, tmp_path: Path, exp: str, *extra: str, backbone: str = "tiny") -> list[str]:
    """The overrides of a seconds-long CPU run on `root`, results under tmp_path; `extra` last."""
    return [
        f"data.root={root}",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"paths.experiments={tmp_path / 'exp'}",
        f"exp={exp}",
        f"backbone={backbone}",
        "trainer.epochs=2",
        "trainer.batch_size=16",
        "trainer.num_workers=0",
        "trainer.progress=false",
        *extra,
    ]


def fold_cfg(root: Path, tmp_path: Path, *extra: str):
    return compose_train(small_run_args(root, tmp_path, "t", *extra))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real reference files); tests that need it skip when it is absent."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"reference data not found at {path} (set MULTIMNIST_SHARED)")
    return path


@pytest.fixture(scope="session")
def bank():
    return procedural_bank(seed=0, variants=1)


@pytest.fixture(scope="session")
def compositor(bank) -> Compositor:
    return Compositor(CompositorConfig(), bank, distractor_bank(0), seed=0)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory, compositor) -> Path:
    """A realistic 120 + 40 image dataset root (read-only by convention: copy before changing it)."""
    root = tmp_path_factory.mktemp("synth") / "root"
    generate(root, compositor, n_train=120, n_test=40, seed=3, workers=2, progress=False)
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
