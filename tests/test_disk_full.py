"""A full disk mid-run, on a real small tmpfs: the write fails with one line naming the file and "no
space left", every earlier output is intact, and the same command resumes once space is freed.
Needs root to mount a tmpfs; skips where it cannot."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from multimnist.config import compose
from multimnist.ensemble import run_ensemble
from multimnist.fold import run_fold
from multimnist.io import DiskFull
from multimnist.pretraining import run_pretrain

from .conftest import small_run_args


@pytest.fixture
def tmpfs(tmp_path):
    """A 24 MB tmpfs, unmounted afterwards; skips where mounting is not allowed."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()[:80]})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path, leave: int) -> Path:
    """Fill the disk but `leave` bytes; delete the returned file to free it again."""
    filler = mount / "filler"
    free = shutil.disk_usage(mount).free
    with open(filler, "wb") as f:
        f.truncate(0)
        f.write(b"\0" * max(0, free - leave))
    return filler


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "filler" and not p.name.startswith(".")
    }


def test_synth_on_a_full_disk_is_one_line_and_keeps_the_old_dataset(tmpfs, tmp_path):
    base = [sys.executable, "-m", "multimnist.synth", f"out={tmpfs / 'd'}", "seed=0", "workers=1"]
    subprocess.run([*base, "n_train=8", "n_test=2", "progress=false"], check=True, capture_output=True)
    before = snapshot(tmpfs / "d")
    filler = fill(tmpfs, leave=200_000)
    done = subprocess.run(
        [*base, "n_train=60", "n_test=10", "overwrite=true"], capture_output=True, text=True
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
    assert "no space left on device" in lines[0] and str(tmpfs / "d") in lines[0]
    assert snapshot(tmpfs / "d") == before and sorted(p.name for p in tmpfs.iterdir()) == ["d", "filler"]
    filler.unlink()
    again = subprocess.run(
        [*base, "n_train=60", "n_test=10", "overwrite=true"], capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr[-2000:]


def test_training_on_a_full_disk_keeps_last_pt_and_resumes_after(synth_root, tmpfs, tmp_path):
    args = small_run_args(synth_root, tmp_path, "t", "trainer.epochs=3", "trainer.tta_views=1")
    args = [a for a in args if not a.startswith("paths.experiments")] + [f"paths.experiments={tmpfs}"]
    run_dir = run_fold(compose("train", [*args, "trainer.stop_after=1"]))  # epoch 0 saved
    before, first_epoch = snapshot(run_dir), pd.read_csv(run_dir / "metrics.csv")
    filler = fill(tmpfs, leave=8_000)  # metrics.csv may fit, last.pt (~100 kB) does not
    with pytest.raises(
        DiskFull, match=rf"{run_dir}/\S+: no space left on device; the previous file is intact"
    ):
        run_fold(compose("train", args))
    for name in ("last.pt", "best.pt", ".hydra/config.yaml", "dataset.json"):
        assert snapshot(run_dir)[name] == before[name], name
    filler.unlink()
    run_fold(compose("train", args))  # resumes from epoch 0's last.pt and finishes
    assert (run_dir / "test_logits.npy").is_file()
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert metrics.epoch.tolist() == [0, 1, 2]
    assert metrics.seconds.iloc[0] == first_epoch.seconds.iloc[0]  # epoch 0 kept: it resumed, not restarted


def test_pretraining_on_a_full_disk_keeps_last_pt_and_resumes_after(tmpfs):
    args = ["backbone=tiny", "exp=g", f"paths.experiments={tmpfs}", "trainer.epochs=2", "crops.per_epoch=64"]
    args += ["crops.eval_crops=32", "trainer.num_workers=0", "trainer.progress=false"]
    run_pretrain(compose("pretrain", [*args, "trainer.stop_after=1"]))
    run_dir = tmpfs / "g" / "pretrain"
    before = snapshot(run_dir)
    filler = fill(tmpfs, leave=4_000)
    with pytest.raises(DiskFull, match="no space left on device"):
        run_pretrain(compose("pretrain", args))
    assert snapshot(run_dir)["last.pt"] == before["last.pt"]
    filler.unlink()
    assert run_pretrain(compose("pretrain", args)) == run_dir / "weights.pt"


def test_the_ensemble_on_a_full_disk_keeps_the_previous_submission(synth_root, tmpfs, tmp_path):
    for fold in (0, 1):
        args = small_run_args(synth_root, tmp_path, "t", "trainer.epochs=1", "data.folds.n_splits=2")
        args = [a for a in args if not a.startswith("paths.experiments")] + [f"paths.experiments={tmpfs}"]
        run_fold(compose("train", [*args, f"fold={fold}", "trainer.tta_views=1"]))
    ensemble = compose("ensemble", ["exp=t", f"paths.experiments={tmpfs}"])
    out = run_ensemble(ensemble)
    before = snapshot(out)
    filler = fill(tmpfs, leave=1_000)
    with pytest.raises(DiskFull, match=rf"{out}/\S+: no space left on device"):
        run_ensemble(ensemble)
    assert snapshot(out)["submission.csv"] == before["submission.csv"]
    filler.unlink()
    assert run_ensemble(ensemble) == out
