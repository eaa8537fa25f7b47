"""The package as users install it: a built wheel carries its configs, and installed without the
source tree it generates data, trains, ensembles and answers --help through its console scripts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO


def run(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-1500:]}\n{done.stderr[-2500:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """The wheel built from a copy of the checkout, installed into a folder of its own (the
    dependencies come from this environment); returns that folder and the environment to run in."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    listed = ["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard"]
    for name in subprocess.run(listed, capture_output=True, text=True, check=True).stdout.splitlines():
        if (REPO / name).is_file():  # the checkout's own files: no .venv, data or build leftovers
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    env = os.environ | {"PIP_NO_INDEX": "1", "PYTHONNOUSERSITE": "1"}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(source)], tmp, env)
    (wheel,) = (tmp / "dist").glob("multimnist-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "multimnist/conf/train.yaml" in names and "multimnist/conf/backbone/effnet_b5.yaml" in names
    run([*pip, "install", "--no-deps", "--target", str(tmp / "site"), str(wheel)], tmp, env)
    shutil.rmtree(source)  # nothing of the checkout is left to find
    return tmp / "site", env | {"PYTHONPATH": str(tmp / "site")}


def test_the_installed_wheel_runs_synth_train_and_ensemble_outside_the_checkout(installed, tmp_path):
    site, env = installed
    py = sys.executable
    where = run(
        [py, "-c", "import multimnist.config as c; print(c.__file__); print(c.CONF_DIR)"], tmp_path, env
    )
    assert all(line.startswith(str(site)) for line in where.stdout.split())  # not this checkout
    run(
        [py, "-m", "multimnist.synth", "out=d", "n_train=40", "n_test=10", "preset=easy", "workers=1"],
        tmp_path,
        env,
    )
    train = [py, "-m", "multimnist.train", "data.root=d", "exp=w", "backbone=tiny", "trainer.epochs=1"]
    train += ["trainer.num_workers=0", "trainer.tta_views=1", "data.folds.n_splits=2", "fold=0,1", "-m"]
    run(train, tmp_path, env)
    done = run([py, "-m", "multimnist.ensemble", "exp=w", "ensemble.plots=false"], tmp_path, env)
    assert "test accuracy" in done.stdout and (tmp_path / "experiments/w/ensemble/submission.csv").is_file()
    helped = run([str(site / "bin" / "multimnist-train"), "--help"], tmp_path, env)
    assert helped.stdout.startswith("multimnist.train") and "experiment: " in helped.stdout
