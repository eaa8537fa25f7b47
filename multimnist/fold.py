"""Train one fold: the steps behind `python -m multimnist.train` (multimnist/train.py is the CLI).

Each fold lands in `<paths.experiments>/<exp>/fold<k>/`: .hydra/config.yaml (resolved),
dataset.json, metrics.csv, last.pt, best.pt, oof_logits.npy, oof_index.npy, test_logits.npy.
Re-running the same command resumes from last.pt; a finished fold is skipped; a folder holding
another config's results is an error unless trainer.overwrite=true. Ctrl-C saves last.pt at the
next update and exits 130; the same command resumes from there.

`run_fold` reads top to bottom as named steps: prepare the run folder, build the fold, restore its
state, run the epochs (each ends in one `Decision`), predict and save. It takes the composed config
(a DictConfig) and runs under `@hydra.main` or from a test alike.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from multimnist.build import (
    build_datasets,
    build_device,
    build_loss,
    build_model,
    build_training,
    check_model,
    make_loader,
)
from multimnist.cli import Interrupted
from multimnist.config import (
    dataset_args,
    loader_args,
    model_args,
    optimizer_args,
    placement_args,
    run_dir_of,
    scheduler_args,
    validate,
)
from multimnist.data.augment import DEVICE_STEPS, BatchFlips, batch_flips
from multimnist.data.dacon import DaconLayout
from multimnist.data.dataset import ConcatImages, DaconImages
from multimnist.data.fingerprint import dataset_fingerprint
from multimnist.distributed import Distributed, EpochSampler
from multimnist.engine import EpochResult, TrainStep, end_of_epoch, evaluate, predict, train_one_epoch
from multimnist.interrupt import StopOnInterrupt
from multimnist.io import ensure_writable, save_npy, save_text, save_torch
from multimnist.pretrained import require_pretrained
from multimnist.rundir import (
    BEST,
    CONFIG,
    DATASET,
    FINISHED_MARK,
    LAST,
    METRICS,
    OOF_INDEX,
    OOF_LOGITS,
    REPLACED,
    RESULTS,
    Replacement,
    heal_replaced,
    load_checkpoint,
    run_lock,
)
from multimnist.rundir import inspect as inspect_run
from multimnist.state import TrainState, fresh_progress
from multimnist.tracking import LogFile, RunLog, epoch_row, read_metrics, require_wandb

log = logging.getLogger("multimnist.train")  # the command's name in logs


class TrainingInterrupted(Interrupted):
    """Ctrl-C stopped the fold after saving last.pt; the message says where to resume from."""


class Start(enum.Enum):
    FINISHED = "finished"  # the fold is done: skip it
    FRESH = "fresh"
    RESUME = "resume"  # last.pt holds this config's state


class Next(enum.Enum):
    CONTINUE = "continue"
    FINISH = "finish"  # all epochs ran, or early stopping: predict and save
    PAUSE = "pause"  # trainer.stop_after reached: return, the same command resumes
    INTERRUPT = "interrupt"  # Ctrl-C: last.pt is saved, exit 130


@dataclass(frozen=True)
class Decision:
    next: Next
    message: str = ""


@dataclass
class Fold:
    """The built parts of one fold."""

    cfg: DictConfig
    run_dir: Path
    dist: Distributed
    train_ds: DaconImages | ConcatImages
    sampler: EpochSampler
    train_loader: DataLoader
    val_loader: DataLoader
    test_loader: DataLoader
    step: TrainStep
    state: TrainState


def run_fold(cfg: DictConfig) -> Path:
    """Train, validate and predict one fold; returns its run folder.

    Single process, or one of torchrun's processes (DistributedDataParallel): then every process
    trains on its share of each epoch, validation and prediction are split and gathered back in
    dataset order, and only the main process writes files and logs.
    """
    validate(cfg)
    if cfg.logger.wandb is not None:
        require_wandb()  # before any work, not after the data is built
    b = cfg.backbone
    source = require_pretrained(b.name, b.pretrained, b.pretrained_file)  # seconds, not a hub timeout
    if source is not None:
        log.info("backbone.pretrained: %s's weights from %s", b.name, source)
    check_model(**model_args(cfg))  # before the run folder: a wrong network key leaves nothing behind
    device, gpu_lock = build_device(cfg.trainer.device)
    dist_ = Distributed.from_env(device)
    if not dist_.is_main:  # one voice: the other processes report only warnings and errors
        logging.getLogger("multimnist").setLevel(logging.WARNING)
    try:
        run_dir = run_dir_of(cfg)
        if cfg.trainer.limit_batches is not None:
            log.info(
                "a debug run (trainer.limit_batches): it lands in %s, apart from %s's folds", run_dir, cfg.exp
            )
        start, fingerprint = prepare_run_dir(cfg, run_dir, dist_)
        if start is Start.FINISHED:
            return run_dir
        t = cfg.trainer
        with (
            run_lock(run_dir, "training run") if dist_.is_main else nullcontext(),
            LogFile(run_dir / "train.log", active=dist_.is_main),
            Replacement(run_dir, REPLACED, t.overwrite or not t.resume, dist_.is_main, RESULTS) as replacing,
        ):
            write_run_files(cfg, run_dir, fingerprint, dist_)
            try:
                if train_fold(cfg, run_dir, device, dist_, start):
                    replacing.finished()
            except TrainingInterrupted:
                if replacing.replacing:  # its last.pt goes with it: the replaced run comes back
                    raise TrainingInterrupted(
                        f"interrupted: {run_dir} holds the run it was replacing again; "
                        "re-run with trainer.overwrite=true to replace it"
                    ) from None
                raise
        return run_dir
    finally:
        dist_.close()
        if gpu_lock is not None:
            gpu_lock.close()


def train_fold(
    cfg: DictConfig, run_dir: Path, device: torch.device, dist_: Distributed, start: Start
) -> bool:
    """Build, restore, run the epochs, predict; True when the fold finished (not paused)."""
    fold = build_fold(cfg, run_dir, device, dist_)
    if start is Start.RESUME:
        restore(fold)
    runlog = open_runlog(fold)
    try:
        decision = run_epochs(fold, runlog)
        if decision.next is Next.INTERRUPT:
            raise TrainingInterrupted(decision.message)
        if decision.next is Next.PAUSE:
            log.info(decision.message)
            return False
        predict_and_save(fold)
        runlog.summary({"best_val_loss": fold.state.best})
    finally:
        runlog.close()
    return True


def prepare_run_dir(cfg: DictConfig, run_dir: Path, dist_: Distributed) -> tuple[Start, dict]:
    """Decide fresh / resume / skip from what the folder holds (a different config's results are a
    RunConflict) and create the folder; returns the start and the data's fingerprint. A finished fold
    is skipped before anything is written, so a read-only disk still skips it. A run a killed
    overwrite had set aside is put back first, so the same command skips it again."""
    t = cfg.trainer
    if dist_.is_main:
        heal_replaced(run_dir, REPLACED)
    fingerprint = dataset_fingerprint(DaconLayout.from_mapping(cfg.data))
    config = OmegaConf.to_container(cfg, resolve=True)
    state = inspect_run(run_dir, config, t.overwrite, fingerprint=fingerprint)  # or RunConflict
    start_over = t.overwrite or not t.resume
    if state.finished and not start_over:
        log.info(
            "%s is finished (it has %s); skipping. trainer.resume=false trains it again.",
            run_dir,
            FINISHED_MARK,
        )
        return Start.FINISHED, fingerprint
    if dist_.is_main:
        ensure_writable(cfg.paths.experiments, "paths.experiments")
        run_dir.mkdir(parents=True, exist_ok=True)
    return (Start.RESUME if state.resumable and not start_over else Start.FRESH), fingerprint


def write_run_files(cfg: DictConfig, run_dir: Path, fingerprint: dict, dist_: Distributed) -> None:
    """This run's resolved config and its data's fingerprint, beside the results they explain."""
    if dist_.is_main:
        save_text(OmegaConf.to_yaml(cfg, resolve=True), run_dir / CONFIG)
        save_text(json.dumps(fingerprint, indent=2) + "\n", run_dir / DATASET)
    dist_.barrier()


def build_fold(cfg: DictConfig, run_dir: Path, device: torch.device, dist_: Distributed) -> Fold:
    """Datasets, loaders, model and optimisation (timm's factories), in a fixed order: the model's
    initial weights are drawn from `trainer.seed`."""
    t = cfg.trainer
    torch.manual_seed(t.seed)
    flips = device_augmentation(cfg, device)
    train_ds, val_ds, test_ds = build_datasets(**(dataset_args(cfg) | ({"augment": []} if flips else {})))
    # The shuffle order is a function of (seed, epoch) alone (set_epoch); each process gets its share.
    limit = None if t.limit_batches is None else t.limit_batches * t.batch_size
    sampler = EpochSampler(train_ds, dist_, t.seed, limit)
    loading = loader_args(cfg)
    train_loader = make_loader(train_ds, sampler=sampler, **loading)
    val_loader, test_loader = (make_loader(dist_.shard(ds), **loading) for ds in (val_ds, test_ds))

    def wrap(model: torch.nn.Module) -> torch.nn.Module:
        forward = model
        if dist_.enabled:
            ids = [device.index] if device.type == "cuda" else None
            forward = DistributedDataParallel(model, device_ids=ids)
        return torch.compile(forward) if t.compile else forward

    step, state = build_training(
        build_model(**model_args(cfg)),
        device,
        **placement_args(cfg),
        precision=t.precision,
        optimizer=optimizer_args(cfg),
        scheduler=scheduler_args(cfg),
        epochs=t.epochs,
        updates_per_epoch=-(-len(train_loader) // t.accum_steps),
        loss_fn=build_loss(**cfg.loss),
        clip_grad=t.clip_grad,
        accum_steps=t.accum_steps,
        ema_decay=t.ema_decay if t.ema else None,
        progress=t.progress,
        wrap=wrap,
        agree=dist_.any,
        augment=flips,
        augment_seed=t.seed,
    )
    where = f", process {dist_.rank} of {dist_.world_size}" if dist_.enabled else ""
    threads = torch.get_num_threads()
    log.info("fold %d on %s (%s, %d CPU threads%s)", cfg.fold, device, step.precision.name, threads, where)
    return Fold(cfg, run_dir, dist_, train_ds, sampler, train_loader, val_loader, test_loader, step, state)


def device_augmentation(cfg: DictConfig, device: torch.device) -> BatchFlips | None:
    """Batched rot90/flips on the device instead of albumentations in the workers: with
    trainer.device_augment=on, or auto on a GPU, when the augmentation is only rot90/flips."""
    mode, steps = cfg.trainer.device_augment, cfg.augmentation.steps
    if mode == "off" or (mode == "auto" and device.type != "cuda") or not steps:
        return None
    flips = batch_flips(OmegaConf.to_container(steps, resolve=True))
    if flips is None and mode == "on":
        raise ValueError(
            f"trainer.device_augment=on runs only {', '.join(DEVICE_STEPS)} on the device; "
            "this augmentation has other steps (use auto or off)"
        )
    log.info("augmentation: %s", f"batched on {device}" if flips else "albumentations in the loader")
    return flips


def restore(fold: Fold) -> None:
    """Continue from last.pt: weights, optimiser, schedule, scaler, EMA, counters, partial epoch."""
    fold.state.load_state_dict(load_checkpoint(fold.run_dir / LAST))
    part = fold.state.partial
    log.info(
        "resuming %s from epoch %d%s",
        fold.run_dir,
        fold.state.epoch,
        f", batch {part['batches']}" if part else "",
    )


def open_runlog(fold: Fold) -> RunLog:
    """metrics.csv (rows of epochs before the resume point kept) and wandb when configured."""
    cfg, dist_ = fold.cfg, fold.dist
    runlog = RunLog.resume(fold.run_dir, fold.state.epoch) if fold.state.epoch else RunLog(fold.run_dir)
    runlog.active = dist_.is_main
    w = cfg.logger.wandb
    if w is not None and dist_.is_main:
        config = OmegaConf.to_container(cfg, resolve=True)
        runlog.start_wandb(w.mode, w.project, cfg.exp, fold.run_dir.name, config, w.entity, w.tags)
    return runlog


def save_last(fold: Fold) -> None:
    if fold.dist.is_main:
        save_torch(fold.state.state_dict(), fold.run_dir / LAST)


def run_epochs(fold: Fold, runlog: RunLog) -> Decision:
    """Train, validate and checkpoint epoch after epoch until a decision other than CONTINUE."""
    t, state = fold.cfg.trainer, fold.state
    decision, ran = Decision(Next.FINISH), 0
    with StopOnInterrupt() as stop:
        while state.epoch < t.epochs:
            epoch, started = state.epoch, time.perf_counter()
            progress, result = train_epoch(fold, stop)
            if result.stopped:  # Ctrl-C mid-epoch: save where it stopped, with the random streams
                state.partial = progress
                save_last(fold)
                where = f"at epoch {epoch}, batch {progress['batches']}"
                return Decision(
                    Next.INTERRUPT, f"interrupted: saved {fold.run_dir / LAST} {where}; {_RESUME}"
                )
            val_loss = validate_epoch(fold, runlog, progress, result, started)
            if state.record(val_loss) and fold.dist.is_main:
                save_torch(
                    {"model": state.eval_model.state_dict(), "epoch": epoch, "val_loss": val_loss},
                    fold.run_dir / BEST,
                )
            state.epoch = epoch + 1
            save_last(fold)
            ran += 1
            decision = decide(fold, ran, fold.dist.any(stop.requested))  # collective: every process asks
            if decision.next is not Next.CONTINUE:
                break
    return decision


_RESUME = "re-run the same command to resume"


def train_epoch(fold: Fold, stop: StopOnInterrupt) -> tuple[dict, EpochResult]:
    """One epoch's training, continuing a partial epoch after Ctrl-C. Returns the epoch's running
    totals (summed over processes) and this pass's result."""
    t, state = fold.cfg.trainer, fold.state
    carried, state.partial = state.partial or fresh_progress(), None
    if carried["batches"]:  # resumed mid-epoch: the random streams go on where they stopped
        torch.set_rng_state(carried["rng"])
        if carried.get("cuda_rng") is not None and fold.step.batching.device.type == "cuda":
            torch.cuda.set_rng_state(carried["cuda_rng"], fold.step.batching.device)
    else:  # every random draw of an epoch is a function of (seed, epoch): a re-run repeats it
        torch.manual_seed(t.seed * 1000 + state.epoch)
    fold.sampler.skip = carried["batches"] * t.batch_size
    fold.sampler.set_epoch(state.epoch)
    fold.train_ds.set_epoch(state.epoch)
    result = train_one_epoch(
        fold.step,
        fold.train_loader,
        epoch=state.epoch,
        num_updates=state.num_updates,
        start_step=carried["batches"],
        should_stop=stop,
    )
    state.num_updates = result.num_updates
    loss_sum, images = fold.dist.sum([result.loss_sum, result.images])
    result.loss_sum, result.images = loss_sum, int(images)  # over every process from here on
    progress = {
        "batches": carried["batches"] + result.batches,
        "loss_sum": carried["loss_sum"] + loss_sum,
        "images": carried["images"] + int(images),
        "skipped": carried["skipped"] + result.skipped_steps,
    }
    if result.stopped:
        device = fold.step.batching.device
        progress["rng"] = torch.get_rng_state()
        progress["cuda_rng"] = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return progress, result


def validate_epoch(fold: Fold, runlog: RunLog, progress: dict, result: EpochResult, started: float) -> float:
    """End-of-epoch work: Lookahead sync, validation, per-epoch schedule, metrics row. Returns val loss."""
    cfg, state, step = fold.cfg, fold.state, fold.step
    epoch = state.epoch
    if result.skipped_steps:
        log.warning(
            "epoch %d: the fp16 grad scaler skipped %d update(s) with inf/NaN gradients",
            epoch,
            result.skipped_steps,
        )

    def score() -> dict[str, float]:
        fold.dist.broadcast_buffers(state.eval_model)
        return evaluate(
            state.eval_model,
            fold.val_loader,
            step.loss_fn,
            step.batching,
            step.precision,
            cfg.trainer.progress,
            epoch,
            fold.dist.gather_rows,
        )

    lr, metrics = end_of_epoch(step, epoch, score, "val_loss")
    trained = {
        "train_loss": progress["loss_sum"] / max(progress["images"], 1),
        "train_images": progress["images"],
        "skipped_steps": progress["skipped"],
    }
    row = epoch_row(epoch, lr, trained, metrics, result, started)
    runlog.log(row)
    log.info(
        "fold %d epoch %d: train_loss %.4f val_loss %.4f val_acc %.4f val_auc %.4f (%.0f img/s)",
        *(
            cfg.fold,
            epoch,
            row["train_loss"],
            row["val_loss"],
            row["val_acc"],
            row["val_auc"],
            row["img_per_s"],
        ),
    )
    return metrics["val_loss"]


def decide(fold: Fold, ran: int, stop_requested: bool) -> Decision:
    """What follows a finished (and checkpointed) epoch."""
    t, state = fold.cfg.trainer, fold.state
    more = state.epoch < t.epochs
    if stop_requested and more:
        where = f"at the end of epoch {state.epoch - 1}"
        return Decision(Next.INTERRUPT, f"interrupted: saved {fold.run_dir / LAST} {where}; {_RESUME}")
    if t.patience is not None and state.stale >= t.patience:
        log.info("early stop: no val_loss improvement for %d epochs", state.stale)
        return Decision(Next.FINISH)
    if t.stop_after is not None and ran >= t.stop_after and more:
        return Decision(Next.PAUSE, f"stopping after {ran} epoch(s) as trainer.stop_after says; {_RESUME}")
    return Decision(Next.CONTINUE if more else Next.FINISH)


def predict_and_save(fold: Fold) -> None:
    """Predict the validation fold and the test set with the best (or EMA) weights, every TTA view;
    test_logits.npy is written last: it marks the fold finished."""
    cfg, dist_, step, run_dir = fold.cfg, fold.dist, fold.step, fold.run_dir
    dist_.barrier()  # best.pt is written by the main process
    model = fold.state.eval_model
    model.load_state_dict(load_checkpoint(run_dir / BEST)["model"])
    views, progress = cfg.trainer.tta_views, cfg.trainer.progress
    oof, oof_index, _ = predict(model, fold.val_loader, step.batching, step.precision, views, progress, "oof")
    test, _, _ = predict(model, fold.test_loader, step.batching, step.precision, views, progress, "test")
    oof, oof_index, test = (dist_.gather_rows(a) for a in (oof, oof_index, test))
    if dist_.is_main:
        save_npy(oof.astype(np.float32), run_dir / OOF_LOGITS)
        save_npy(oof_index, run_dir / OOF_INDEX)
        save_npy(test.astype(np.float32), run_dir / FINISHED_MARK)
    log.info(
        "fold %d done: best val_loss %.4f; logits for %d view%s in %s",
        cfg.fold,
        fold.state.best,
        views,
        "" if views == 1 else "s",
        run_dir,
    )


def best_val_loss(run_dir: Path) -> float | None:
    """The fold's lowest validation loss so far (what best.pt holds): a sweeper's objective."""
    rows = read_metrics(run_dir / METRICS) if (run_dir / METRICS).is_file() else []
    return min((float(r["val_loss"]) for r in rows), default=None)
