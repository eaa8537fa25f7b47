"""The synthetic stream (data.synthetic): images composed on the fly join a fold's training images,
never its validation or test images; item i of epoch e depends on (seed, fold, e, i) alone, so worker
counts and a resume change nothing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from multimnist.build import build_datasets, make_loader, synthetic_stream
from multimnist.config import dataset_args
from multimnist.data.dataset import ConcatImages
from multimnist.fold import run_fold
from multimnist.synth.stream import SyntheticImages

from .conftest import REPO, TIMING, fold_cfg

STREAM = ["synthetic=procedural", "data.synthetic.per_epoch=24", "+data.synthetic.glyphs.options.variants=1"]


def _stream(compositor, **kw) -> SyntheticImages:
    return SyntheticImages(compositor, kw.pop("length", 12), kw.pop("img_size", 64), **kw)


def _epoch(ds, workers: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    xs, ys, idx = zip(*make_loader(ds, batch_size=5, num_workers=workers), strict=True)
    return torch.cat(xs), torch.cat(ys), torch.cat(idx)


def test_items_are_the_same_whatever_the_worker_count(compositor):
    ds = _stream(compositor, seed=4, fold=1)
    ds.set_epoch(3)
    x0, y0, i0 = _epoch(ds, 0)
    x2, y2, i2 = _epoch(ds, 2)
    assert torch.equal(x0, x2) and torch.equal(y0, y2) and torch.equal(i0, i2)
    assert x0.dtype == torch.uint8 and x0.shape == (12, 1, 64, 64)
    assert (i0 < 0).all()  # never a dataset index
    assert ((y0.sum(1) >= 10) & (y0.sum(1) <= 14)).all()  # the realistic layout's 10-14 letters


def test_items_depend_on_seed_fold_and_epoch(compositor):
    def first(**kw):
        ds = _stream(compositor, length=2, **{k: v for k, v in kw.items() if k != "epoch"})
        ds.set_epoch(kw.get("epoch", 0))
        return ds[0][0]

    base = first(seed=0, fold=0, epoch=0)
    assert torch.equal(base, first(seed=0, fold=0, epoch=0))
    for other in ({"seed": 1}, {"fold": 1}, {"epoch": 1}):
        assert not torch.equal(base, first(**({"seed": 0, "fold": 0, "epoch": 0} | other)))


def test_labels_name_the_letters_drawn(compositor):
    ds = _stream(compositor, length=3)
    for i in range(3):
        image, labels = ds.render(i)
        rng = np.random.default_rng([ds.seed, ds.fold, ds.epoch, i, 7])
        drawn = compositor.compose(rng)
        assert np.array_equal(image, drawn.image)
        assert sorted(np.flatnonzero(labels).tolist()) == sorted(drawn.letters)


def test_the_stream_joins_training_never_validation_or_test(synth_root, tmp_path):
    plain = build_datasets(**dataset_args(fold_cfg(synth_root, tmp_path)))
    streamed = build_datasets(**dataset_args(fold_cfg(synth_root, tmp_path, *STREAM)))
    train, val, test = streamed
    assert isinstance(train, ConcatImages) and len(train) == len(plain[0]) + 24
    assert isinstance(train.datasets[-1], SyntheticImages) and train.datasets[-1].fold == 0
    for before, after in zip(plain[1:], (val, test), strict=True):
        assert type(after) is type(before) and np.array_equal(after.rows, before.rows)
    indices = [train[i][2] for i in range(len(train))]
    assert sum(i < 0 for i in indices) == 24  # the composed ones; the rest are the fold's images
    assert set(indices) - set(range(-24, 0)) == set(plain[0].split.indices[plain[0].rows].tolist())


def test_a_resumed_fold_sees_the_same_stream(synth_root, tmp_path):
    args = [*STREAM, "trainer.epochs=2", "trainer.num_workers=0"]
    straight = run_fold(fold_cfg(synth_root, tmp_path / "a", *args))
    paused = fold_cfg(synth_root, tmp_path / "b", *args, "trainer.stop_after=1")
    run_fold(paused)
    resumed = run_fold(fold_cfg(synth_root, tmp_path / "b", *args))
    a, b = (pd.read_csv(d / "metrics.csv").drop(columns=TIMING) for d in (straight, resumed))
    pd.testing.assert_frame_equal(a, b)
    assert (a.train_images == 97 + 24).all()  # the fold's 97 training images + 24 composed ones
    assert np.array_equal(np.load(straight / "test_logits.npy"), np.load(resumed / "test_logits.npy"))


def test_a_glyph_source_without_its_path_names_the_key(synth_root, tmp_path):
    cmd = [sys.executable, "-m", "multimnist.train", f"data.root={synth_root}", "synthetic=dacon7"]
    cmd += [f"paths.experiments={tmp_path}", f"data.cache_dir={tmp_path / 'c'}", "backbone=tiny"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2, out.stderr
    assert "data.synthetic.glyphs.path" in out.stderr and "Traceback" not in out.stderr


def test_bad_compositor_options_name_the_stream(compositor):
    synthetic = {"per_epoch": 4, "glyphs": {"source": "procedural", "path": None, "pool": None}}
    synthetic |= {"compositor": {"letters_min": 20}}
    synthetic["glyphs"]["options"] = {"variants": 1}
    with pytest.raises(ValueError, match=r"^data\.synthetic: compositor config: need 1 <= letters_min"):
        synthetic_stream(synthetic, 0, 64, False, None, 0)


def test_the_speed_benchmark_prints_workers_beside_consumption():
    cmd = [sys.executable, str(REPO / "scripts" / "bench_stream.py"), "--backbone", "tiny", "--n", "8"]
    cmd += ["--batch", "4", "--steps", "1", "--workers", "1", "--precision", "fp32"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for line in (
        "(a) generator, one worker:",
        "(c) trainer consumption:",
        "workers to keep the trainer fed:",
    ):
        assert line in out.stdout
