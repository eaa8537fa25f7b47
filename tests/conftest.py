"""Shared fixtures: a small synthetic dataset root and the real reference files (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from multimnist.synth.compositor import Compositor, CompositorConfig
from multimnist.synth.distractors import distractor_bank
from multimnist.synth.generate import generate
from multimnist.synth.glyphs import procedural_bank

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MULTIMNIST_SHARED", REPO.parent / "shared"))


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
