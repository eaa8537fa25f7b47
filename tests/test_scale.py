"""Scaling out: torchrun DDP (gloo, 2 CPU processes) trains one fold like a single process does; fold
sweeps through the joblib and submitit launcher presets land in the standard run layout and the
ensemble reads them; the Slurm preset's values reach the sbatch script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from multimnist.build import build_datasets, build_model, make_loader
from multimnist.config import dataset_args, loader_args
from multimnist.engine import Batching, Precision, predict

from .conftest import REPO, TIMING, fold_cfg, small_run_args

TORCHRUN = Path(sys.executable).with_name("torchrun")


def run_cli(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600, env=env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


def test_torchrun_ddp_two_processes_train_one_fold_like_a_single_process(synth_root, tmp_path):
    # A fold whose training rows split evenly over 2 processes: DistributedSampler then repeats none.
    fold = next(
        k
        for k in range(5)
        if len(build_datasets(**dataset_args(fold_cfg(synth_root, tmp_path, f"fold={k}")))[0]) % 2 == 0
    )
    args = small_run_args(synth_root, tmp_path, "{}", f"fold={fold}", "trainer.device=cpu")  # gloo
    single = [sys.executable, "-m", "multimnist.train", *(a.format("single") for a in args)]
    ddp = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "multimnist.train"]
    ddp += [a.format("ddp") for a in args]
    run_cli(single, tmp_path)
    done = run_cli(ddp, tmp_path)
    assert "process 0 of 2" in done.stdout and "process 1 of 2" not in done.stdout  # one voice

    one, two = (tmp_path / "exp" / e / f"fold{fold}" for e in ("single", "ddp"))
    m1, m2 = (pd.read_csv(r / "metrics.csv") for r in (one, two))
    assert list(m1.columns) == list(m2.columns) and list(m1.epoch) == list(m2.epoch) == [0, 1]
    assert list(m2.train_images) == list(m1.train_images)  # every training image once per epoch
    assert m2.drop(columns=TIMING).notna().all().all()
    # Validation and test predictions are gathered back in dataset order.
    assert np.array_equal(np.load(one / "oof_index.npy"), np.load(two / "oof_index.npy"))
    test = np.load(two / "test_logits.npy")
    assert test.shape == np.load(one / "test_logits.npy").shape
    cfg = OmegaConf.load(two / ".hydra" / "config.yaml")
    model = build_model("multimnist_tiny")
    model.load_state_dict(torch.load(two / "best.pt", weights_only=True)["model"])
    _, _, test_ds = build_datasets(**dataset_args(cfg))
    again, _, _ = predict(
        model,
        make_loader(test_ds, **loader_args(cfg)),
        Batching(torch.device("cpu")),
        Precision("fp32", None),
        4,
        False,
    )
    np.testing.assert_allclose(test, again, rtol=1e-5, atol=1e-6)


def _ensemble(tmp_path: Path, exp: str) -> pd.DataFrame:
    run_cli(
        [
            sys.executable,
            "-m",
            "multimnist.ensemble",
            f"exp={exp}",
            f"paths.experiments={tmp_path / 'exp'}",
            "ensemble.plots=false",
        ],
        tmp_path,
    )
    return pd.read_csv(tmp_path / "exp" / exp / "ensemble" / "submission.csv")


def _sweep_then_ensemble(synth_root: Path, tmp_path: Path, launcher: str, *extra: str) -> None:
    args = small_run_args(
        synth_root,
        tmp_path,
        launcher,
        "data.folds.n_splits=2",
        "fold=0,1",
        f"hydra/launcher={launcher}",
        *extra,
    )
    run_cli([sys.executable, "-m", "multimnist.train", *args, "-m"], tmp_path)
    for k in (0, 1):
        run = tmp_path / "exp" / launcher / f"fold{k}"
        assert (run / "test_logits.npy").is_file() and (run / "metrics.csv").is_file()
        assert OmegaConf.load(run / ".hydra" / "config.yaml").fold == k
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "outputs").exists()
    submission = _ensemble(tmp_path, launcher)
    assert len(submission) == 40 and set(submission.columns[1:]) == set("abcdefghijklmnopqrstuvwxyz")


def test_joblib_launcher_sweep_lands_in_the_run_layout_and_ensembles(synth_root, tmp_path):
    # DataLoader workers inside joblib's worker processes: the fork context makes them work.
    _sweep_then_ensemble(synth_root, tmp_path, "parallel", "trainer.num_workers=1")


@pytest.mark.slow
def test_submitit_local_sweep_lands_in_the_run_layout_and_ensembles(synth_root, tmp_path):
    _sweep_then_ensemble(synth_root, tmp_path, "local")
    assert list((tmp_path / "exp" / "local" / ".submitit").iterdir())  # submitit's job folders and logs


def test_the_slurm_launcher_off_a_cluster_is_one_line_before_anything_runs(tmp_path):
    """submitit's own failure is a RuntimeError traceback ("Could not detect srun")."""
    env = os.environ | {"PATH": os.path.dirname(sys.executable)}  # no srun on it
    done = subprocess.run(
        [sys.executable, "-m", "multimnist.train", f"data.root={tmp_path}", f"paths.experiments={tmp_path}"]
        + ["hydra/launcher=slurm", "fold=0,1", "-m"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 2 and done.stderr.startswith("error: hydra/launcher=slurm submits to a Slurm")
    assert len(done.stderr.strip().splitlines()) == 1 and not list(tmp_path.glob("*/fold*"))


def test_launcher_presets_compose_with_their_values():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from multimnist.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        par = hydra_compose("train", overrides=["hydra/launcher=parallel"], return_hydra_config=True)
        slurm = hydra_compose(
            "train",
            overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    assert par.hydra.launcher._target_.endswith("JoblibLauncher")
    assert par.hydra.launcher.n_jobs == (torch.cuda.device_count() or 2)
    assert slurm.hydra.launcher._target_.endswith("SlurmLauncher") and slurm.hydra.launcher.partition == "gpu"


# Runs the real Hydra multirun and the submitit plugin up to submission; sbatch itself is not called.
SBATCH_DRIVER = """
import json, sys
import submitit
from submitit.slurm.slurm import _make_sbatch_string
from hydra.core.utils import JobReturn, JobStatus

class Done:
    def results(self):
        r = JobReturn(); r.status = JobStatus.COMPLETED; r._return_value = None
        return [r]

def map_array(self, fn, *columns):
    ex = self._executor
    jobs = list(zip(*columns))
    text = _make_sbatch_string(command="python -u -m submitit.core._submit", folder=ex.folder,
                               map_count=len(jobs), **ex.parameters)
    print("SBATCH-JSON" + json.dumps({"text": text, "overrides": [j[0] for j in jobs],
                                      "max_num_timeout": ex.max_num_timeout}))
    return [Done() for _ in jobs]

submitit.AutoExecutor.map_array = map_array
sys.argv = ["multimnist.train"] + sys.argv[1:]
import runpy
runpy.run_module("multimnist.train", run_name="__main__", alter_sys=True)
"""


def test_slurm_preset_values_reach_the_sbatch_script(tmp_path):
    args = [
        f"paths.experiments={tmp_path / 'exp'}",
        "exp=b5",
        "fold=0,1,2,3,4",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=240",
        "hydra.launcher.array_parallelism=2",
        "-m",
    ]
    # submitit looks for srun before it builds a Slurm executor; this one is never called.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = run_cli([sys.executable, "-c", SBATCH_DRIVER, *args], tmp_path, env)
    sent = json.loads(done.stdout.split("SBATCH-JSON", 1)[1].splitlines()[0])
    text = sent["text"]
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --time=240",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=64GB",
        "#SBATCH --array=0-4%2",
        "#SBATCH --signal=USR2@120",
    ):
        assert line in text, line
    assert str(tmp_path / "exp" / "b5" / ".submitit") in text  # logs beside the fold folders
    assert [o for job in sent["overrides"] for o in job if o.startswith("fold=")] == [
        f"fold={k}" for k in range(5)
    ]
    assert sent["max_num_timeout"] == 3


def _bench_scale(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "scripts" / "bench_scale.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stages", "nope"], "--stages: unknown stage 'nope'"),
        (["--n-train", "-5"], "--n-train must be >= 1, got -5"),
    ],
)
def test_bench_scale_refuses_bad_arguments_in_one_line(tmp_path, args, message):
    done = _bench_scale("--out", str(tmp_path / "scale"), *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "scale").exists()


def test_bench_scale_never_writes_over_a_folder_it_did_not_create(tmp_path):
    out = tmp_path / "mine"
    (out / "data").mkdir(parents=True)
    (out / "data" / "notes.txt").write_text("my notes")
    done = _bench_scale("--out", str(out), "--stages", "generate", "--n-train", "4", "--n-test", "2")
    assert done.returncode == 2 and "holds files bench_scale did not write" in done.stderr
    assert [p.name for p in out.rglob("*")] == ["data", "notes.txt"]
    fresh = tmp_path / "fresh"
    for _ in range(2):  # its own folder: made, then reused
        done = _bench_scale("--out", str(fresh), "--stages", "generate", "--n-train", "4", "--n-test", "2")
        assert done.returncode == 0, done.stderr[-2000:]
    assert (fresh / "data" / "synth.json").is_file()
