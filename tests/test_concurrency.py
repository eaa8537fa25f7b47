"""Several things at once: one writer per fold, pretraining or ensemble folder (a second real process
is refused in one line naming the holder; kill -9 frees the lock), a killed overwrite heals itself,
names are kept as typed, and empty paths name their key."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from multimnist.config import ConfigError, compose, validate
from multimnist.fold import run_fold
from multimnist.rundir import ASIDE, LOCK
from multimnist.runs import collect_runs

from .conftest import fold_cfg


def train_cmd(synth_root: Path, tmp_path: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "multimnist.train", f"data.root={synth_root}", "backbone=tiny", "exp=t"]
    cmd += [f"paths.experiments={tmp_path / 'exp'}", f"data.cache_dir={tmp_path / 'cache'}"]
    return cmd + ["trainer.num_workers=0", "trainer.progress=false", "trainer.tta_views=1", *extra]


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    """A background run whose output goes to `log` (a pipe nobody reads would fill and block it)."""
    with open(log, "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)


def wait_for(path: Path, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, f"the run ended early: {process.args}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def test_a_second_run_of_a_fold_is_refused_and_kill_9_frees_the_lock(synth_root, tmp_path):
    fold = tmp_path / "exp" / "t" / "fold0"
    first = start(train_cmd(synth_root, tmp_path, "trainer.epochs=500"), tmp_path / "first.log")
    try:
        wait_for(fold / "last.pt", first)  # training, and holding the folder
        second = subprocess.run(
            train_cmd(synth_root, tmp_path, "trainer.epochs=500"), capture_output=True, text=True, timeout=300
        )
        lines = second.stderr.strip().splitlines()
        assert second.returncode == 2 and len(lines) == 1, second.stderr[-2000:]
        assert f"pid {first.pid} on {socket.gethostname()}" in lines[0] and str(fold) in lines[0]
        assert "another training run is writing it" in lines[0]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # kill -9 left the lock file but not the lock: the same command resumes at once.
    assert (fold / LOCK).exists()
    third = subprocess.run(
        train_cmd(synth_root, tmp_path, "trainer.epochs=500", "trainer.stop_after=1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert third.returncode == 0, third.stderr[-2000:]
    assert "resuming" in third.stdout + third.stderr


def hold(folder: Path) -> subprocess.Popen:
    """A real process holding `folder`'s run lock until killed."""
    code = (
        "import sys, time; from pathlib import Path; from multimnist.rundir import run_lock\n"
        f"with run_lock(Path({str(folder)!r})):\n    print('held', flush=True); time.sleep(300)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.mark.parametrize("what", ["pretrain", "ensemble"])
def test_pretraining_and_ensemble_folders_have_one_writer(what, synth_root, tmp_path):
    exps = tmp_path / "exp"
    if what == "ensemble":
        for k in (0, 1):
            run_fold(fold_cfg(synth_root, tmp_path, "trainer.epochs=1", "data.folds.n_splits=2", f"fold={k}"))
        folder = exps / "t" / "ensemble"
        cmd = [
            sys.executable,
            "-m",
            "multimnist.ensemble",
            "exp=t",
            f"paths.experiments={exps}",
            "ensemble.plots=false",
        ]
    else:
        folder = exps / "g" / "pretrain"
        cmd = [
            sys.executable,
            "-m",
            "multimnist.pretrain",
            "backbone=tiny",
            "exp=g",
            f"paths.experiments={exps}",
        ]
        cmd += ["trainer.epochs=1", "crops.per_epoch=32", "crops.eval_crops=16", "trainer.num_workers=0"]
    holder = hold(folder)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    finally:
        holder.kill()
        holder.wait()
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
    assert f"pid {holder.pid}" in lines[0] and str(folder) in lines[0]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)  # the holder is gone
    assert again.returncode == 0, again.stderr[-2000:]


def test_a_killed_overwrite_heals_itself(synth_root, tmp_path, caplog):
    run_fold(fold_cfg(synth_root, tmp_path, "trainer.epochs=1", "data.folds.n_splits=2", "fold=0"))
    run_fold(fold_cfg(synth_root, tmp_path, "trainer.epochs=1", "data.folds.n_splits=2", "fold=1"))
    fold = tmp_path / "exp" / "t" / "fold0"
    finished = (fold / "test_logits.npy").read_bytes()
    replacing = start(
        train_cmd(synth_root, tmp_path, "data.folds.n_splits=2", "trainer.epochs=500", "optimizer.lr=0.01")
        + ["trainer.overwrite=true", "trainer.batch_size=16"],
        tmp_path / "replacing.log",
    )
    wait_for(fold / ASIDE / "test_logits.npy", replacing)  # the finished fold is set aside
    wait_for(fold / "last.pt", replacing)  # and the replacement has trained an epoch
    assert not (fold / "test_logits.npy").exists()
    replacing.send_signal(signal.SIGKILL)
    replacing.wait()
    with caplog.at_level("WARNING"):
        runs = collect_runs(tmp_path / "exp", ["t"])  # the ensemble sees fold 0 again
    assert len(runs) == 2 and "put back the run that an interrupted overwrite had set aside" in caplog.text
    assert (fold / "test_logits.npy").read_bytes() == finished and not (fold / ASIDE).exists()
    with caplog.at_level("INFO"):
        run_fold(fold_cfg(synth_root, tmp_path, "trainer.epochs=1", "data.folds.n_splits=2", "fold=0"))
    assert "is finished" in caplog.text  # the original command skips it


def test_a_number_like_experiment_name_is_refused_unless_quoted(tmp_path):
    base = [sys.executable, "-m", "multimnist.ensemble", f"paths.experiments={tmp_path}"]
    done = subprocess.run([*base, "exp=1e3"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "quote it to keep it as typed: exp=\"'1e3'\"" in done.stderr
    quoted = subprocess.run([*base, "exp='1e3'"], capture_output=True, text=True, timeout=120)
    assert quoted.returncode == 2 and f"{tmp_path / '1e3'}: no fold runs" in quoted.stderr


@pytest.mark.parametrize(
    ("config", "override", "key"),
    [
        ("train", "data.root=''", "data.root"),
        ("train", "paths.experiments=''", "paths.experiments"),
        ("ensemble", "paths.experiments=''", "paths.experiments"),
        ("synth", "out=''", "out"),
        ("predict", "images=''", "images"),
        ("predict", "out=''", "out"),
    ],
)
def test_an_empty_path_names_its_key(config, override, key):
    extra = {"predict": ["exp=x", "images=i", "out=o.csv"], "synth": ["out=d"]}.get(config, [])
    cfg = compose(config, [*extra, override])
    with pytest.raises(ConfigError, match=rf"^{key} is empty \(an unset shell variable\?\)"):
        validate(cfg)


def test_a_finished_run_leaves_its_lock_file_free_and_no_owner_behind(synth_root, tmp_path):
    run = run_fold(fold_cfg(synth_root, tmp_path, "trainer.epochs=1"))
    assert (run / LOCK).exists() and not (run / ".lock.owner").exists()
    with FileLock(run / LOCK, timeout=0):  # free: the next run takes it at once
        pass
