"""The package as users install it: a built wheel carries its configs, and installed without the
source tree it generates data, trains, ensembles and answers --help through its console scripts."""

from __future__ import annotations

import json
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
    assert "multimnist/conf/recipe/self_training.yaml" in names and "multimnist/docs/recipes.md" in names
    run([*pip, "install", "--no-deps", "--target", str(tmp / "site"), str(wheel)], tmp, env)
    shutil.rmtree(source)  # nothing of the checkout is left to find
    return tmp / "site", env | {"PYTHONPATH": str(tmp / "site")}


def test_the_installed_wheel_runs_the_self_training_recipe_with_one_command(installed, tmp_path):
    """multimnist-recipe recipe=self_training at tiny sizes, outside the checkout: data, pretraining,
    2 folds, the ensemble, the harvest-and-pretrain round, 2 folds again, the ensemble again."""
    site, env = installed
    py = sys.executable
    where = run(
        [py, "-c", "import multimnist.config as c; print(c.__file__); print(c.CONF_DIR)"], tmp_path, env
    )
    assert all(line.startswith(str(site)) for line in where.stdout.split())  # not this checkout
    tiny = ["backbone=tiny", "trainer.precision=auto", "trainer.channels_last=false"]
    recipe = [str(site / "bin" / "multimnist-recipe"), "recipe=self_training", "data.root=d", "folds=[0,1]"]
    recipe += ["bar=null", "extra.synth=[n_train=40,n_test=10,preset=easy,workers=1]"]
    recipe += [f"extra.pretrain=[{','.join(tiny)},trainer.epochs=1,crops.per_epoch=64]"]
    train = [
        *tiny,
        "trainer.epochs=1",
        "trainer.num_workers=0",
        "trainer.tta_views=1",
        "data.folds.n_splits=2",
    ]
    recipe += [f"extra.train=[{','.join(train)}]", "extra.ensemble=[ensemble.plots=false]"]
    done = run(recipe, tmp_path, env)
    assert "| refolds | multimnist.train |" in done.stdout and "test accuracy" in done.stdout
    record = json.loads((tmp_path / "experiments/demo_full_self/recipe.json").read_text())
    assert [r["status"] for r in record["stages"]] == ["ran"] * 7
    assert (tmp_path / "experiments/self_demo_full/pretrain/harvest.npz").is_file()  # the round harvested
    assert (tmp_path / "experiments/demo_full_self/ensemble/submission.csv").is_file()
    again = run(recipe, tmp_path, env)  # finished: every stage skipped
    assert again.stdout.count("(earlier)") == 7
    helped = run([str(site / "bin" / "multimnist-train"), "--help"], tmp_path, env)
    assert helped.stdout.startswith("multimnist.train") and "experiment: " in helped.stdout
    assert f"Docs: {site / 'multimnist' / 'docs'}/ (" in helped.stdout  # where the pages are, installed
