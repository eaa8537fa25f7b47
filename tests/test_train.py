"""Training: every config option composes and builds; a fold writes the run layout; resume and
determinism hold; checkpoints are weights_only-loadable; wandb offline stays inside the run folder."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from multimnist.build import build_loss, build_model, build_optimizer, build_scheduler
from multimnist.config import optimizer_args, scheduler_args
from multimnist.data.augment import BatchFlips, batch_flips, build_pipeline
from multimnist.engine import Batching
from multimnist.fold import run_fold
from multimnist.rundir import RunConflict

from .conftest import CONF, REPO, TIMING, compose_train, fold_cfg


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("backbone", options("backbone"))
def test_every_backbone_composes_and_builds_a_26_way_gray_model(backbone):
    cfg = compose_train([f"backbone={backbone}"]).backbone
    with torch.device("meta"):  # shapes only: B8 without allocating its weights
        model = build_model(
            cfg.name, cfg.pretrained, cfg.weights, cfg.in_chans, cfg.drop_rate, cfg.drop_path_rate
        )
    assert model.get_classifier().out_features == 26
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == 1 and cfg.pretrained is False and cfg.img_size in (32, 64, 128, 256)


def test_effnet_b5_is_timms_b5():
    cfg = compose_train(["backbone=effnet_b5"]).backbone
    with torch.device("meta"):
        model = build_model(cfg.name, in_chans=cfg.in_chans)
    assert cfg.name == "efficientnet_b5" and model.default_cfg["architecture"] == "efficientnet_b5"
    assert 28e6 < sum(p.numel() for p in model.parameters()) < 29e6  # B5 with a 26-way head


@pytest.mark.parametrize("optimizer", options("optimizer"))
@pytest.mark.parametrize("scheduler", options("scheduler"))
def test_every_optimizer_and_scheduler_builds(optimizer, scheduler):
    cfg = compose_train([f"optimizer={optimizer}", f"scheduler={scheduler}"])
    model = build_model("multimnist_tiny")
    opt = build_optimizer(model, **optimizer_args(cfg))
    assert ("lookahead" in optimizer) == hasattr(opt, "sync_lookahead")
    assert opt.defaults["lr"] == cfg.optimizer.lr and ("momentum" in cfg.optimizer) == (optimizer == "sgd")
    if optimizer == "sgd":
        assert opt.defaults["momentum"] == cfg.optimizer.momentum
    sched = build_scheduler(opt, epochs=4, updates_per_epoch=3, **scheduler_args(cfg))
    assert (sched is None) == (scheduler == "none")
    if sched is not None:
        sched.step(1, 0.5)


@pytest.mark.parametrize("augmentation", options("augmentation"))
def test_every_augmentation_keeps_shape_and_labels_meaning(augmentation):
    steps = OmegaConf.to_container(compose_train([f"augmentation={augmentation}"]).augmentation.steps)
    pipeline = build_pipeline(steps, seed=0)
    assert (pipeline is None) == (augmentation == "none")
    if pipeline is not None:
        img = np.zeros((64, 64), np.uint8)
        img[5:20, 10:12] = 255
        outs = [pipeline(image=img)["image"] for _ in range(8)]
        assert all(o.shape == (64, 64) and o.dtype == np.uint8 for o in outs)
        assert any(not np.array_equal(o, img) for o in outs)  # it does something


def test_bad_augmentation_step_is_named():
    with pytest.raises(ValueError, match="'RandomRotate91' is not an albumentations transform"):
        build_pipeline([{"RandomRotate91": {"p": 1.0}}])


@pytest.mark.parametrize("loss", options("loss"))
def test_every_loss_is_lower_for_right_answers(loss):
    fn = build_loss(**compose_train([f"loss={loss}"]).loss)
    target = torch.randint(0, 2, (8, 26)).float()
    assert fn(target * 8 - 4, target) < fn(4 - target * 8, target)


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiment_presets_compose(experiment):
    cfg = compose_train([f"experiment={experiment}"])
    assert cfg.exp == experiment
    if experiment == "seed_b5":
        assert cfg.backbone.name == "efficientnet_b5" and cfg.optimizer.opt == "lookahead_radam"
        assert cfg.trainer.batch_size == 20 and cfg.trainer.epochs == 40 and cfg.scheduler.num_epochs == 10
        assert cfg.loss.name == "soft_margin" and cfg.augmentation.steps[0] == {"RandomRotate90": {"p": 1.0}}


@pytest.mark.parametrize(
    ("override", "error"),
    [("fold=abc", ConfigCompositionException), ("backbone=effnet_b99", ConfigCompositionException)],
)
def test_bad_values_fail_at_compose_time(override, error):
    with pytest.raises(error):
        compose_train([override])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("fold=5", r"fold=5 is outside 0\.\.4"),
        ("trainer.precision=fp8", "trainer.precision must be one of"),
        ("trainer.tta_views=3", "trainer.tta_views must be one of"),
    ],
)
def test_bad_values_fail_with_a_clear_message(synth_root, tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        run_fold(fold_cfg(synth_root, tmp_path, override))


def test_one_fold_writes_the_run_layout(synth_root, tmp_path):
    run = run_fold(fold_cfg(synth_root, tmp_path, "fold=1", "augmentation=rot90"))
    assert run == tmp_path / "exp" / "t" / "fold1"
    for name in (
        ".hydra/config.yaml",
        "metrics.csv",
        "last.pt",
        "best.pt",
        "oof_logits.npy",
        "oof_index.npy",
        "test_logits.npy",
    ):
        assert (run / name).is_file(), name
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics.columns) == [
        "epoch",
        "lr",
        "train_loss",
        "train_images",
        "skipped_steps",
        "val_loss",
        "val_acc",
        "val_auc",
        *TIMING,
    ]
    assert list(metrics.epoch) == [0, 1] and metrics.notna().all().all()
    folds = pd.read_csv(tmp_path / "cache" / "folds_stratified_k5_s42.csv")
    val_ids = folds.loc[folds.fold == 1, "index"].to_numpy()
    assert list(metrics.train_images) == [120 - len(val_ids)] * 2 and list(metrics.skipped_steps) == [0, 0]
    oof, oof_index, test = (np.load(run / n) for n in ("oof_logits.npy", "oof_index.npy", "test_logits.npy"))
    assert oof.shape == (len(val_ids), 4, 26) and sorted(oof_index) == sorted(val_ids)
    assert test.shape == (40, 4, 26)
    assert not np.allclose(oof[:, 0], oof[:, 1])  # the views differ: rot90 really ran
    resolved = OmegaConf.load(run / ".hydra" / "config.yaml")
    assert resolved.fold == 1 and resolved.data.root == str(synth_root)
    for ckpt in ("last.pt", "best.pt"):
        state = torch.load(run / ckpt, map_location="cpu", weights_only=True)
        model = build_model("multimnist_tiny")
        model.load_state_dict(state["model"])


def test_finished_fold_is_skipped(synth_root, tmp_path, caplog):
    cfg = fold_cfg(synth_root, tmp_path, "trainer.epochs=1")
    run = run_fold(cfg)
    stamp = (run / "test_logits.npy").stat().st_mtime_ns
    with caplog.at_level("INFO"):
        run_fold(cfg)
    assert "is finished" in caplog.text and (run / "test_logits.npy").stat().st_mtime_ns == stamp


def _strip(metrics: pd.DataFrame) -> pd.DataFrame:
    return metrics.drop(columns=TIMING)


@pytest.mark.parametrize("aug", ["rot90", "geometric"])
def test_resumed_run_ends_like_an_uninterrupted_one(synth_root, tmp_path, aug):
    common = ("trainer.epochs=3", f"augmentation={aug}", "optimizer=lookahead_radam", "trainer.ema=true")
    whole = run_fold(fold_cfg(synth_root, tmp_path, "exp=whole", *common))
    parted = fold_cfg(synth_root, tmp_path, "exp=parted", *common, "trainer.stop_after=1")
    run = run_fold(parted)
    assert len(pd.read_csv(run / "metrics.csv")) == 1 and not (run / "test_logits.npy").exists()
    run_fold(parted)  # the same command again: resumes at epoch 1, stops after epoch 2
    run_fold(parted)
    pd.testing.assert_frame_equal(
        _strip(pd.read_csv(run / "metrics.csv")), _strip(pd.read_csv(whole / "metrics.csv"))
    )
    assert np.array_equal(np.load(run / "test_logits.npy"), np.load(whole / "test_logits.npy"))


def test_same_seed_same_metrics_other_seed_differs(synth_root, tmp_path):
    a = run_fold(fold_cfg(synth_root, tmp_path, "exp=a", "trainer.num_workers=2"))
    b = run_fold(fold_cfg(synth_root, tmp_path, "exp=b"))
    c = run_fold(fold_cfg(synth_root, tmp_path, "exp=c", "trainer.seed=1"))
    ma, mb, mc = (_strip(pd.read_csv(r / "metrics.csv")) for r in (a, b, c))
    pd.testing.assert_frame_equal(ma, mb)  # worker processes do not change the result
    for name in ("oof_logits.npy", "test_logits.npy"):  # bit-identical predictions too
        assert np.array_equal(np.load(a / name), np.load(b / name)), name
    assert not ma.equals(mc)


def test_wandb_offline_writes_inside_the_run_folder(synth_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = run_fold(fold_cfg(synth_root, tmp_path, "logger=wandb", "trainer.epochs=1"))
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and any(offline[0].rglob("*.wandb"))
    assert not (tmp_path / "wandb").exists()


def test_wandb_missing_is_one_line_saying_how_to_install_it(synth_root, tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "wandb" else real_find_spec(n, *a)
    )
    # This checkout is installed editable (make setup): the hint installs the extra from it; the
    # package is on no index, so `pip install 'multimnist[wandb]'` would not resolve.
    with pytest.raises(
        ValueError, match=rf"logger=wandb needs the wandb package: pip install -e '{REPO}\[wandb\]'"
    ):
        run_fold(fold_cfg(synth_root, tmp_path, "logger=wandb", "trainer.epochs=1"))
    assert not (tmp_path / "exp").exists()  # stopped before any work


def test_multirun_sweeps_folds_into_the_run_layout(synth_root, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "multimnist.train",
        f"data.root={synth_root}",
        f"data.cache_dir={tmp_path / 'c'}",
        f"paths.experiments={tmp_path / 'exp'}",
        "exp=sweep",
        "backbone=tiny",
        "trainer.epochs=1",
        "trainer.progress=false",
        "trainer.num_workers=0",
        "fold=0,1",
        "-m",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for k in (0, 1):
        assert (tmp_path / "exp" / "sweep" / f"fold{k}" / "test_logits.npy").is_file()
        assert OmegaConf.load(tmp_path / "exp" / "sweep" / f"fold{k}" / ".hydra" / "config.yaml").fold == k
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "outputs").exists()


def test_cli_error_is_one_line(synth_root, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "multimnist.train",
        f"data.root={tmp_path / 'missing'}",
        f"paths.experiments={tmp_path / 'exp'}",
        "backbone=tiny",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (
        done.stderr.strip().splitlines()[-1].startswith("error: ") and "dataset root not found" in done.stderr
    )


def test_early_stopping_ends_the_fold_and_still_predicts(synth_root, tmp_path):
    # lr 0: the val loss never improves after the first epoch, so patience 1 stops after epoch 1
    run = run_fold(
        fold_cfg(
            synth_root,
            tmp_path,
            "trainer.epochs=6",
            "trainer.patience=1",
            "optimizer.lr=1e-12",  # lr > 0 is required; this small the weights do not move
            "scheduler=none",
        )
    )
    assert list(pd.read_csv(run / "metrics.csv").epoch) == [0, 1]
    assert (run / "test_logits.npy").is_file()


def test_resume_false_starts_over(synth_root, tmp_path):
    run = run_fold(fold_cfg(synth_root, tmp_path, "trainer.epochs=2"))
    again = fold_cfg(synth_root, tmp_path, "trainer.epochs=2", "trainer.resume=false", "trainer.stop_after=1")
    run_fold(again)  # retrains from scratch and stops after one epoch: the old results are gone
    assert len(pd.read_csv(run / "metrics.csv")) == 1 and not (run / "test_logits.npy").exists()


@pytest.mark.parametrize("finished", [True, False])
def test_another_configs_run_folder_is_not_reused_unless_overwrite(synth_root, tmp_path, finished):
    first = fold_cfg(
        synth_root, tmp_path, "trainer.epochs=2", *([] if finished else ["trainer.stop_after=1"])
    )
    run = run_fold(first)
    before = (run / "last.pt").read_bytes()
    other = ("trainer.epochs=2", "optimizer.lr=0.5", "trainer.progress=true")  # progress: not a conflict
    what = "a finished fold" if finished else "a started fold"
    for extra in ([], ["trainer.resume=false"]):
        with pytest.raises(RunConflict, match=rf"fold0 already holds {what} .*optimizer.lr: 0.001 -> 0.5"):
            run_fold(fold_cfg(synth_root, tmp_path, *other, *extra))
    assert (run / "last.pt").read_bytes() == before  # nothing was touched
    run_fold(fold_cfg(synth_root, tmp_path, *other, "trainer.overwrite=true"))
    assert OmegaConf.load(run / ".hydra" / "config.yaml").optimizer.lr == 0.5
    assert len(pd.read_csv(run / "metrics.csv")) == 2 and (run / "test_logits.npy").is_file()


def test_a_run_written_before_a_key_was_added_still_counts_as_the_same_config(synth_root, tmp_path, caplog):
    cfg = fold_cfg(synth_root, tmp_path, "trainer.epochs=1")
    run = run_fold(cfg)
    stored = OmegaConf.load(run / ".hydra" / "config.yaml")
    del stored.backbone["global_pool"], stored.backbone["head"]  # as written by an older version
    OmegaConf.save(stored, run / ".hydra" / "config.yaml")
    with caplog.at_level("INFO"):
        run_fold(cfg)
    assert "is finished" in caplog.text
    with pytest.raises(RunConflict, match="backbone.global_pool: 'avg' -> 'max'"):
        run_fold(fold_cfg(synth_root, tmp_path, "trainer.epochs=1", "backbone.global_pool=max"))


def test_trainer_debug_trains_a_few_batches_of_one_epoch(synth_root, tmp_path):
    run = run_fold(fold_cfg(synth_root, tmp_path, "trainer=debug", "trainer.epochs=1"))
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) == 1 and metrics.train_images.iloc[0] == 3 * 16  # limit_batches=3 of batch 16
    full = run_fold(fold_cfg(synth_root, tmp_path / "full", "trainer.epochs=1"))
    assert pd.read_csv(full / "metrics.csv").train_images.iloc[0] > 90  # the whole train fold (~4/5 of 120)
    assert np.load(run / "test_logits.npy").shape[1] == 1  # one TTA view


def test_batching_turns_uint8_batches_into_the_floats_the_model_always_saw():
    x = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    out = Batching(torch.device("cpu"), in_chans=3)(x)
    assert out.dtype == torch.float32 and out.shape == (4, 3, 8, 8)
    assert torch.equal(out[:, :1], x.float().div(255.0))  # exactly the old host-side conversion


def test_batch_flips_gives_each_image_one_element_of_its_rot90_group_seeded_per_batch():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    out = BatchFlips(rot90_p=1.0)(x, seed=3)
    rotations = [torch.rot90(x[0], r, dims=(1, 2)) for r in range(4)]
    which = [next(r for r, rot in enumerate(rotations) if torch.equal(o, rot)) for o in out]
    assert set(which) == {0, 1, 2, 3}  # every image is a rotation of its input, all four drawn
    assert torch.equal(BatchFlips(rot90_p=1.0)(x, seed=3), out)  # a seed is a batch's draw
    assert not torch.equal(BatchFlips(rot90_p=1.0)(x, seed=4), out)
    flipped = BatchFlips(hflip_p=1.0)(x, seed=0)
    assert torch.equal(flipped, x.flip(3)) and torch.equal(BatchFlips()(x, seed=0), x)


def test_only_rot90_and_flip_steps_run_batched_on_the_device(synth_root, tmp_path):
    assert batch_flips([{"RandomRotate90": {"p": 1.0}}, {"HorizontalFlip": {}}]) == BatchFlips(1.0, 0.5, 0.0)
    assert batch_flips([{"RandomRotate90": {}}, {"GridDistortion": {}}]) is None  # stays in albumentations
    # trainer.device_augment=on takes the GPU path on a CPU: same seed, same run; refused for others
    a, b = (
        run_fold(fold_cfg(synth_root, tmp_path / n, "augmentation=rot90_flip", "trainer.device_augment=on"))
        for n in "ab"
    )
    pd.testing.assert_frame_equal(*(pd.read_csv(r / "metrics.csv").drop(columns=TIMING) for r in (a, b)))
    workers = run_fold(
        fold_cfg(synth_root, tmp_path / "w", "augmentation=rot90_flip", "trainer.device_augment=off")
    )
    assert not pd.read_csv(workers / "metrics.csv").train_loss.equals(
        pd.read_csv(a / "metrics.csv").train_loss
    )
    with pytest.raises(ValueError, match="trainer.device_augment=on runs only RandomRotate90"):
        run_fold(fold_cfg(synth_root, tmp_path / "c", "augmentation=geometric", "trainer.device_augment=on"))


def test_progress_piped_into_a_log_is_plain_lines_without_carriage_returns(synth_root, tmp_path):
    """stdout/stderr not a terminal (CI, | tee, Slurm): progress is one log line per loop, no \\r frames."""
    cmd = [
        sys.executable,
        "-m",
        "multimnist.train",
        f"data.root={synth_root}",
        f"paths.experiments={tmp_path}",
    ]
    cmd += [
        f"data.cache_dir={tmp_path / 'cache'}",
        "backbone=tiny",
        "trainer.epochs=1",
        "trainer.progress=true",
    ]
    cmd += ["trainer.num_workers=0", "trainer.tta_views=1"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout + done.stderr
    assert "\r" not in out
    assert re.search(r"\] - epoch 0 train: (\d+)/\1 batch, [\d.]+ batch/s, done in \d+ s", out)
    assert re.search(r"\] - test: \d+/\d+ batch", out)
    assert "logits for 1 view in" in out  # the plural fits the count
