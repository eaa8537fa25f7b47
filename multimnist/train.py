"""Train one fold: `python -m multimnist.train data.root=DIR exp=NAME backbone=B fold=K` (Hydra).

Sweep folds with `fold=0,1,2,3,4 -m`. Each fold lands in `<paths.experiments>/<exp>/fold<k>/`:
.hydra/config.yaml (resolved), metrics.csv, last.pt, best.pt, oof_logits.npy, oof_index.npy,
test_logits.npy. Re-running the same command resumes from last.pt; a finished fold is skipped; a
folder holding another config's results is an error unless trainer.overwrite=true. Ctrl-C saves
last.pt at the next update and exits 130; the same command resumes from there.

Several GPUs for one fold: `torchrun --standalone --nproc_per_node=N -m multimnist.train ...`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import hydra
import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader, Dataset, Sampler

from multimnist.data.augment import build_pipeline
from multimnist.data.cache import cached_images
from multimnist.data.dacon import DaconImages, DaconLayout, DatasetError, load_split
from multimnist.data.folds import folds_filename, load_or_make_folds
from multimnist.distributed import Distributed, EpochSampler
from multimnist.engine import Batching, evaluate, predict, resolve_device, resolve_precision, train_one_epoch
from multimnist.gpus import claim_slot
from multimnist.interrupt import StopOnInterrupt
from multimnist.io import save_npy, save_text, save_torch
from multimnist.losses import build_loss
from multimnist.model import build_model
from multimnist.rundir import CONFIG, FINISHED_MARK, RESULTS, load_checkpoint
from multimnist.rundir import inspect as inspect_run
from multimnist.tracking import RunLog
from multimnist.tta import check_views

log = logging.getLogger("multimnist.train")


@dataclass
class PathsConfig:
    experiments: str = "experiments"


@dataclass
class TrainConfig:
    """Typed top-level keys: a wrong type (fold=abc) fails at compose time. Groups are checked in code."""

    exp: str = "default"
    fold: int = 0
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: Any = None
    backbone: Any = None
    optimizer: Any = None
    scheduler: Any = None
    augmentation: Any = None
    loss: Any = None
    logger: Any = None
    trainer: Any = None


ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def parallel_jobs() -> int:
    """How many fold jobs hydra/launcher=parallel runs at once: one per GPU, or 2 on a CPU machine."""
    return torch.cuda.device_count() or 2


OmegaConf.register_new_resolver("parallel_jobs", parallel_jobs, replace=True)


def run_dir_of(cfg: DictConfig) -> Path:
    return Path(cfg.paths.experiments) / cfg.exp / f"fold{cfg.fold}"


class PlateauScheduler:
    """torch's ReduceLROnPlateau on the val loss behind timm's scheduler interface.

    timm's own plateau wrapper is deprecated and drops its best-metric and patience state from
    checkpoints, which would make a resumed run diverge; torch's scheduler saves all of it.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, patience: int, decay_rate: float, min_lr: float):
        self.inner = ReduceLROnPlateau(
            optimizer, mode="min", factor=decay_rate, patience=patience, min_lr=min_lr
        )

    def step(self, epoch: int, metric: float) -> None:
        self.inner.step(metric)

    def step_update(self, num_updates: int) -> None:
        """The plateau schedule changes only at epoch ends."""

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)


def build_scheduler(optimizer: torch.optim.Optimizer, sched: DictConfig, epochs: int, updates_per_epoch: int):
    """A timm scheduler from the `scheduler` group, or None for a constant lr."""
    name = sched.name
    if name == "none":
        return None
    common = {
        "warmup_epochs": sched.get("warmup_epochs", 0),
        "warmup_lr": sched.get("warmup_lr", 1e-5),
        "min_lr": sched.get("min_lr", 0.0),
        "updates_per_epoch": updates_per_epoch,
    }
    if name == "cosine":
        scheduler, _ = create_scheduler_v2(
            optimizer,
            sched="cosine",
            num_epochs=sched.num_epochs or epochs,
            cycle_limit=sched.cycle_limit,
            step_on_epochs=False,
            **common,
        )
    elif name == "plateau":
        scheduler = PlateauScheduler(optimizer, sched.patience_epochs, sched.decay_rate, sched.min_lr)
    elif name == "step":
        scheduler, _ = create_scheduler_v2(
            optimizer,
            sched="step",
            num_epochs=epochs,
            decay_epochs=sched.decay_epochs,
            decay_rate=sched.decay_rate,
            **common,
        )
    else:
        raise ValueError(f"scheduler.name must be none, cosine, plateau or step, got {name!r}")
    return scheduler


def _check(cfg: DictConfig) -> None:
    t, folds = cfg.trainer, cfg.data.folds
    problems = []
    if not 0 <= cfg.fold < folds.n_splits:
        problems.append(
            f"fold={cfg.fold} is outside 0..{folds.n_splits - 1} (data.folds.n_splits={folds.n_splits})"
        )
    for key in ("epochs", "batch_size", "accum_steps"):
        if not isinstance(t[key], int) or t[key] < 1:
            problems.append(f"trainer.{key} must be a positive integer, got {t[key]!r}")
    if t.num_workers < 0:
        problems.append(f"trainer.num_workers must be >= 0, got {t.num_workers}")
    if cfg.backbone.in_chans not in (1, 3):
        problems.append(f"backbone.in_chans must be 1 or 3, got {cfg.backbone.in_chans}")
    if problems:
        raise ValueError("; ".join(problems))
    check_views(t.tta_views)


def make_loader(ds: Dataset, t: DictConfig, sampler: Sampler | None = None) -> DataLoader:
    """A DataLoader with the trainer's batch size and workers (forked, so the memmap cache is shared)."""
    return DataLoader(
        ds,
        batch_size=t.batch_size,
        sampler=sampler,
        num_workers=t.num_workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=False,
        multiprocessing_context="fork" if t.num_workers > 0 else None,
    )


def build_datasets(cfg: DictConfig) -> tuple[DaconImages, DaconImages, DaconImages]:
    """Train (augmented), validation and test datasets of one fold: validated splits, folds written
    once per dataset, images decoded once into the cache."""
    t = cfg.trainer
    layout = DaconLayout.from_mapping(cfg.data)
    train_split, test_split = load_split(layout, "train"), load_split(layout, "test")
    cache_dir = Path(cfg.data.cache_dir) if cfg.data.cache_dir else layout.root / ".cache"
    fcfg = cfg.data.folds
    folds = load_or_make_folds(
        cache_dir / folds_filename(fcfg.n_splits, fcfg.seed, fcfg.method),
        train_split.indices,
        train_split.labels,
        fcfg.n_splits,
        fcfg.seed,
        fcfg.method,
        layout.path("meta"),
    ).fold.to_numpy()
    img_size, denoise = cfg.backbone.img_size, cfg.data.denoise
    images = {
        s.name: cached_images(s, cache_dir, img_size, denoise, progress=t.progress)
        if cfg.data.cache
        else None
        for s in (train_split, test_split)
    }
    common = {"img_size": img_size, "denoise": denoise}
    augment = build_pipeline(OmegaConf.to_container(cfg.augmentation.steps, resolve=True))
    train_ds = DaconImages(
        train_split,
        images=images["train"],
        transform=augment,
        rows=np.flatnonzero(folds != cfg.fold),
        seed=t.seed,
        **common,
    )
    val_ds = DaconImages(
        train_split, images=images["train"], rows=np.flatnonzero(folds == cfg.fold), **common
    )
    test_ds = DaconImages(test_split, images=images["test"], **common)
    return train_ds, val_ds, test_ds


def build_model_for(cfg: DictConfig, device: torch.device) -> tuple[torch.nn.Module, Batching]:
    """The fold's model on `device` and how batches become its input."""
    b, t = cfg.backbone, cfg.trainer
    model = build_model(b.name, b.pretrained, b.weights, b.in_chans, b.drop_rate, b.drop_path_rate).to(device)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, Batching(device, b.in_chans, t.channels_last)


class TrainingInterrupted(Exception):
    """Ctrl-C stopped the fold after saving last.pt; the message says where to resume from."""


def choose_device(name: str) -> tuple[torch.device, IO | None]:
    """The device of this process, and the GPU lock it holds (or None).

    Under torchrun each process takes the GPU of its LOCAL_RANK. With `auto` and several GPUs, a
    job takes the first GPU no other job holds (so parallel fold jobs never share one); a single GPU
    or an explicit `cuda:N` is used as is.
    """
    if "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if name == "cpu" or not torch.cuda.is_available():
            return torch.device("cpu"), None
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        return device, None
    if name == "auto" and torch.cuda.device_count() > 1:
        slot, lock = claim_slot(torch.cuda.device_count())
        log.info("using GPU %d (held by this job until it ends)", slot)
        device = torch.device("cuda", slot)
        torch.cuda.set_device(device)
        return device, lock
    device = resolve_device(name)
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
        torch.cuda.set_device(device)
    return device, None


def run_fold(cfg: DictConfig) -> Path:
    """Train, validate and predict one fold; returns its run folder.

    Single process, or one of torchrun's processes (DistributedDataParallel): then every process
    trains on its share of each epoch, validation and prediction are split and gathered back in
    dataset order, and only the main process writes files and logs.
    """
    _check(cfg)
    device, gpu_lock = choose_device(cfg.trainer.device)
    dist_ = Distributed.from_env(device)
    if not dist_.is_main:  # one voice: the other processes report only warnings and errors
        logging.getLogger("multimnist").setLevel(logging.WARNING)
    try:
        return _run_fold(cfg, device, dist_)
    finally:
        dist_.close()
        if gpu_lock is not None:
            gpu_lock.close()


def _zero_progress() -> dict:
    return {"batches": 0, "loss_sum": 0.0, "images": 0, "skipped": 0}


def _run_fold(cfg: DictConfig, device: torch.device, dist_: Distributed) -> Path:
    t = cfg.trainer
    run_dir = run_dir_of(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    state = inspect_run(run_dir, config, t.overwrite)  # a different config's results: RunConflict
    start_over = t.overwrite or not t.resume
    if state.finished and not start_over:
        log.info(
            "%s is finished (it has %s); skipping. trainer.resume=false trains it again.",
            run_dir,
            FINISHED_MARK,
        )
        return run_dir
    if dist_.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if start_over:  # the old results must not pass for this run's if it is cut short
            for name in RESULTS:
                (run_dir / name).unlink(missing_ok=True)
        save_text(OmegaConf.to_yaml(cfg, resolve=True), run_dir / CONFIG)
    dist_.barrier()
    precision = resolve_precision(t.precision, device)
    log.info(
        "fold %d on %s (%s, %d CPU threads%s)",
        cfg.fold,
        device,
        precision.name,
        torch.get_num_threads(),
        f", process {dist_.rank} of {dist_.world_size}" if dist_.enabled else "",
    )
    torch.manual_seed(t.seed)

    train_ds, val_ds, test_ds = build_datasets(cfg)
    # The shuffle order is a function of (seed, epoch) alone (set_epoch); each process gets its share.
    sampler = EpochSampler(train_ds, dist_, t.seed)
    train_loader = make_loader(train_ds, t, sampler)
    val_loader, test_loader = make_loader(dist_.shard(val_ds), t), make_loader(dist_.shard(test_ds), t)

    # Model and optimisation, from timm's factories.
    model, batching = build_model_for(cfg, device)
    o = cfg.optimizer
    optimizer = create_optimizer_v2(
        model,
        opt=o.opt,
        lr=o.lr,
        weight_decay=o.weight_decay,
        **({"momentum": o.momentum} if "momentum" in o else {}),
    )
    updates_per_epoch = -(-len(train_loader) // t.accum_steps)
    scheduler = build_scheduler(optimizer, cfg.scheduler, t.epochs, updates_per_epoch)
    scaler = torch.amp.GradScaler(device.type) if precision.needs_scaler else None
    ema = ModelEmaV3(model, decay=t.ema_decay) if t.ema else None
    loss_fn = build_loss(**cfg.loss)

    start_epoch, num_updates, best, stale, part = 0, 0, float("inf"), 0, None
    last = run_dir / "last.pt"
    if not start_over and state.resumable:
        ckpt = load_checkpoint(last)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler") is not None:
            scaler.load_state_dict(ckpt["scaler"])
        if ema is not None and ckpt.get("ema") is not None:
            ema.load_state_dict(ckpt["ema"])
        start_epoch, num_updates, best = ckpt["epoch"], ckpt["num_updates"], ckpt["best"]
        stale, part = ckpt.get("stale", 0), ckpt.get("partial_epoch")
        log.info(
            "resuming %s from epoch %d%s", run_dir, start_epoch, f", batch {part['batches']}" if part else ""
        )
    runlog = RunLog.resume(run_dir, start_epoch) if start_epoch else RunLog(run_dir)
    runlog.active = dist_.is_main
    if cfg.logger.get("wandb") and dist_.is_main:
        w = cfg.logger.wandb
        runlog.start_wandb(w.mode, w.project, cfg.exp, f"fold{cfg.fold}", config, w.entity, w.tags)

    train_model = model
    if dist_.enabled:
        ids = [device.index] if device.type == "cuda" else None
        train_model = DistributedDataParallel(model, device_ids=ids)
    forward_model = torch.compile(train_model) if t.compile else train_model
    eval_model = ema.module if ema is not None else model

    def checkpoint(epoch: int, partial: dict | None = None) -> None:
        if dist_.is_main:
            save_torch(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "ema": ema.state_dict() if ema is not None else None,
                    "epoch": epoch,
                    "num_updates": num_updates,
                    "best": best,
                    "stale": stale,
                    "partial_epoch": partial,
                },
                last,
            )

    ran = 0
    stop = StopOnInterrupt()
    try:
        with stop:
            for epoch in range(start_epoch, t.epochs):
                started = time.perf_counter()
                carried = part if epoch == start_epoch and part else _zero_progress()
                if carried["batches"]:  # resumed mid-epoch: the random streams go on where they stopped
                    torch.set_rng_state(carried["rng"])
                    if carried.get("cuda_rng") is not None and device.type == "cuda":
                        torch.cuda.set_rng_state(carried["cuda_rng"], device)
                else:  # every random draw of an epoch is a function of (seed, epoch): a re-run repeats it
                    torch.manual_seed(t.seed * 1000 + epoch)
                sampler.skip = carried["batches"] * t.batch_size
                sampler.set_epoch(epoch)
                train_ds.set_epoch(epoch)
                stats = train_one_epoch(
                    forward_model,
                    train_loader,
                    loss_fn,
                    optimizer,
                    batching,
                    precision,
                    scaler,
                    scheduler,
                    ema,
                    t.clip_grad,
                    t.accum_steps,
                    num_updates,
                    epoch,
                    t.progress,
                    start_step=carried["batches"],
                    should_stop=stop,
                    agree=dist_.any,
                )
                num_updates = stats["num_updates"]
                loss_sum, images = dist_.sum([stats["loss_sum"], stats["images"]])
                done = {
                    "batches": carried["batches"] + stats["batches"],
                    "loss_sum": carried["loss_sum"] + loss_sum,
                    "images": carried["images"] + int(images),
                    "skipped": carried["skipped"] + stats["skipped_steps"],
                }
                if stats["stopped"]:
                    done["rng"] = torch.get_rng_state()
                    done["cuda_rng"] = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
                    checkpoint(epoch, done)
                    raise TrainingInterrupted(
                        f"interrupted: saved {last} at epoch {epoch}, batch {done['batches']}; "
                        "re-run the same command to resume"
                    )
                if stats["skipped_steps"]:
                    log.warning(
                        "epoch %d: the fp16 grad scaler skipped %d update(s) with inf/NaN gradients",
                        epoch,
                        stats["skipped_steps"],
                    )
                if hasattr(optimizer, "sync_lookahead"):
                    optimizer.sync_lookahead()
                dist_.broadcast_buffers(eval_model)
                metrics = evaluate(
                    eval_model, val_loader, loss_fn, batching, precision, t.progress, epoch, dist_.gather_rows
                )
                if scheduler is not None:
                    scheduler.step(epoch + 1, metrics["val_loss"])
                row = {
                    "epoch": epoch,
                    "lr": optimizer.param_groups[0]["lr"],
                    "train_loss": done["loss_sum"] / max(done["images"], 1),
                    "train_images": done["images"],
                    "skipped_steps": done["skipped"],
                    **metrics,
                    "img_per_s": images / max(stats["train_seconds"], 1e-9),
                    "seconds": time.perf_counter() - started,
                }
                runlog.log(row)
                log.info(
                    "fold %d epoch %d: train_loss %.4f val_loss %.4f val_acc %.4f val_auc %.4f (%.0f img/s)",
                    cfg.fold,
                    epoch,
                    row["train_loss"],
                    row["val_loss"],
                    row["val_acc"],
                    row["val_auc"],
                    row["img_per_s"],
                )
                if metrics["val_loss"] < best:
                    best, stale = metrics["val_loss"], 0
                    if dist_.is_main:
                        save_torch(
                            {"model": eval_model.state_dict(), "epoch": epoch, "val_loss": best},
                            run_dir / "best.pt",
                        )
                else:
                    stale += 1
                checkpoint(epoch + 1)
                ran += 1
                if dist_.any(stop.requested) and epoch + 1 < t.epochs:
                    raise TrainingInterrupted(
                        f"interrupted: saved {last} at the end of epoch {epoch}; "
                        "re-run the same command to resume"
                    )
                if t.patience is not None and stale >= t.patience:
                    log.info("early stop: no val_loss improvement for %d epochs", stale)
                    break
                if t.stop_after is not None and ran >= t.stop_after and epoch + 1 < t.epochs:
                    log.info("stopping after %d epoch(s) as trainer.stop_after says; re-run to resume", ran)
                    return run_dir

        # Predict the validation fold and the test set with the best (or EMA) weights, every TTA view.
        dist_.barrier()  # best.pt is written by the main process
        eval_model.load_state_dict(load_checkpoint(run_dir / "best.pt")["model"])
        views = t.tta_views
        oof, oof_index, _ = predict(eval_model, val_loader, batching, precision, views, t.progress, "oof")
        test, _, _ = predict(eval_model, test_loader, batching, precision, views, t.progress, "test")
        oof, oof_index, test = (dist_.gather_rows(a) for a in (oof, oof_index, test))
        if dist_.is_main:
            save_npy(oof.astype(np.float32), run_dir / "oof_logits.npy")
            save_npy(oof_index, run_dir / "oof_index.npy")
            save_npy(test.astype(np.float32), run_dir / FINISHED_MARK)
        runlog.summary({"best_val_loss": best})
        log.info(
            "fold %d done: best val_loss %.4f; logits for %d views in %s", cfg.fold, best, views, run_dir
        )
    finally:
        runlog.close()
    return run_dir


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        run_fold(cfg)
    except (DatasetError, ValueError, FileNotFoundError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except TrainingInterrupted as stopped:
        print(str(stopped), file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print(
            "interrupted; last.pt holds the last finished epoch: re-run the same command to resume",
            file=sys.stderr,
        )
        sys.exit(130)


if __name__ == "__main__":
    main()
