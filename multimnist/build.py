"""Builders with plain arguments: device, datasets, loader, model, optimizer, scheduler, loss, and the
training setup (step + state) that fold training and glyph pretraining share.

Used by training, the ensemble's re-prediction, the benchmarks and the tests alike. Nothing here
knows Hydra: `multimnist.config`'s `*_args` adapters turn a composed config into these arguments.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader, Dataset, Sampler

from multimnist.data.augment import build_pipeline
from multimnist.data.cache import cached_images
from multimnist.data.dacon import DaconLayout, DatasetError, load_split, pseudo_labelled
from multimnist.data.dataset import ConcatImages, DaconImages
from multimnist.data.folds import folds_filename, load_or_make_folds
from multimnist.engine import Batching, TrainStep, resolve_device, resolve_precision
from multimnist.gpus import SlotLock, claim_slot
from multimnist.io import OutputError, ensure_writable
from multimnist.losses import build_loss
from multimnist.model import build_model, check_model, input_normalization
from multimnist.rundir import first_line
from multimnist.state import TrainState
from multimnist.synth.stream import SyntheticImages

__all__ = [
    "build_datasets",
    "build_device",
    "build_loss",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "build_training",
    "check_model",
    "make_loader",
    "place_model",
]

log = logging.getLogger(__name__)


def build_device(name: str) -> tuple[torch.device, SlotLock | None]:
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


def cache_place(root: Path, cache: bool, cache_dir: str | Path | None) -> Path | None:
    """Where the image cache and the folds file go, checked writable before any work: `cache_dir`,
    else `<root>/.cache` when caching. None with `cache=false` and no `cache_dir`: nothing is written
    (the folds are recomputed, deterministically, by each run)."""
    if cache_dir:
        return ensure_writable(cache_dir, "data.cache_dir")
    if not cache:
        return None
    try:
        return ensure_writable(root / ".cache", "data.cache_dir")
    except OutputError as err:
        raise OutputError(f"{err} (or data.cache=false to decode images on the fly)") from None


def build_datasets(
    layout: Mapping[str, Any],
    fold: int,
    folds: Mapping[str, Any],
    img_size: int,
    denoise: bool = False,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    augment: list | None = None,
    seed: int = 0,
    progress: bool = False,
    pseudo_labels: str | Path | None = None,
    synthetic: Mapping[str, Any] | None = None,
) -> tuple[DaconImages | ConcatImages, DaconImages, DaconImages]:
    """Train (augmented), validation and test datasets of one fold: validated splits, folds written
    once per dataset (`folds`: n_splits, seed, method), images decoded once into the cache.
    `pseudo_labels` (an `index,a..z` CSV over test ids): those test images, so labelled, join the
    training images (augmented alike), never the validation images. `synthetic` (per_epoch, glyphs,
    compositor: `data.synthetic`): images composed on the fly join the training images alike."""
    layout_ = DaconLayout.from_mapping(layout)
    train_split, test_split = load_split(layout_, "train"), load_split(layout_, "test")
    cache_path = cache_place(layout_.root, cache, cache_dir)
    n_splits, folds_seed, method = folds["n_splits"], folds["seed"], folds["method"]
    assignment = load_or_make_folds(
        cache_path and cache_path / folds_filename(n_splits, folds_seed, method),
        train_split.indices,
        train_split.labels,
        n_splits,
        folds_seed,
        method,
        layout_.path("meta"),
    ).fold.to_numpy()
    images = {
        s.name: cached_images(s, cache_path, img_size, denoise, progress=progress) if cache else None
        for s in (train_split, test_split)
    }
    common = {"img_size": img_size, "denoise": denoise}
    train_ds = DaconImages(
        train_split,
        images=images["train"],
        transform=build_pipeline(augment or []),
        rows=np.flatnonzero(assignment != fold),
        seed=seed,
        **common,
    )
    val_ds = DaconImages(
        train_split, images=images["train"], rows=np.flatnonzero(assignment == fold), **common
    )
    test_ds = DaconImages(test_split, images=images["test"], **common)
    if pseudo_labels is not None:
        pseudo, rows = pseudo_labelled(test_split, pseudo_labels)
        extra = DaconImages(
            pseudo,
            images=images["test"],
            transform=build_pipeline(augment or []),
            rows=rows,
            seed=seed,
            **common,
        )
        log.info(
            "%d training images + %d pseudo-labelled test images (%s)",
            len(train_ds),
            len(rows),
            pseudo_labels,
        )
        train_ds = ConcatImages([train_ds, extra])
    if synthetic is not None:
        stream = synthetic_stream(synthetic, fold, img_size, denoise, augment, seed)
        log.info("%d training images + %d composed each epoch (data.synthetic)", len(train_ds), len(stream))
        train_ds = ConcatImages([train_ds, stream])
    return train_ds, val_ds, test_ds


def synthetic_stream(
    synthetic: Mapping[str, Any],
    fold: int,
    img_size: int,
    denoise: bool,
    augment: list | None,
    seed: int,
) -> SyntheticImages:
    """The synthetic stream of one fold: its glyph bank and compositor, built once here and shared
    with the loader's forked workers, which compose the images."""
    from multimnist.synth.compositor import Compositor, CompositorConfig
    from multimnist.synth.distractors import distractor_bank
    from multimnist.synth.glyphs import load_glyphs

    g = synthetic["glyphs"]
    if g["source"] != "procedural" and g["path"] in (None, "???"):
        raise DatasetError(
            f"data.synthetic.glyphs.source={g['source']} needs data.synthetic.glyphs.path "
            "(for dacon7: mnist_data/, the folder of train.csv and test.csv, or one CSV)"
        )
    try:
        glyphs = load_glyphs(g["source"], g["path"], seed=seed, pool=g["pool"], **(g["options"] or {}))
        compositor_cfg = CompositorConfig(**synthetic["compositor"])
        compositor = Compositor(compositor_cfg, glyphs, distractor_bank(seed), seed=seed)
    except (DatasetError, ValueError) as err:
        raise type(err)(f"data.synthetic: {first_line(err)}") from None
    return SyntheticImages(
        compositor,
        synthetic["per_epoch"],
        img_size,
        denoise,
        transform=build_pipeline(augment or []),
        seed=seed,
        fold=fold,
    )


def make_loader(
    ds: Dataset, batch_size: int, num_workers: int = 0, sampler: Sampler | None = None
) -> DataLoader:
    """A DataLoader in dataset order (or `sampler`'s), workers forked so the memmap cache is shared."""
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=False,
        multiprocessing_context="fork" if num_workers > 0 else None,
    )


def place_model(
    model: nn.Module,
    device: torch.device,
    in_chans: int = 1,
    channels_last: bool = False,
    normalize: bool = False,
) -> tuple[nn.Module, Batching]:
    """`model` on `device` (channels_last if asked) and how gray batches become its input: [0, 1]
    pixels, or with `normalize` the mean/std its pretrained weights expect (`input_normalization`)."""
    mean, std = input_normalization(model, in_chans) if normalize else (None, None)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, Batching(device, in_chans, channels_last, mean, std)


def build_optimizer(
    model: nn.Module, opt: str, lr: float, weight_decay: float = 0.0, momentum: float | None = None
) -> torch.optim.Optimizer:
    """timm's `create_optimizer_v2` (adam, radam, sgd, lookahead_*, ...); momentum only where given."""
    extra = {} if momentum is None else {"momentum": momentum}
    try:
        return create_optimizer_v2(model, opt=opt, lr=lr, weight_decay=weight_decay, **extra)
    except (ValueError, AssertionError) as err:  # timm's registry: an unknown name
        raise ValueError(f"optimizer.opt={opt}: {first_line(err)} (timm.optim.list_optimizers())") from None


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


def build_scheduler(
    optimizer: torch.optim.Optimizer, epochs: int, updates_per_epoch: int, name: str = "none", **options: Any
):
    """A timm-style scheduler (stepped per update and per epoch), or None for a constant lr.

    name: none | cosine (num_epochs, cycle_limit, warmup_*, min_lr) | plateau (patience_epochs,
    decay_rate, min_lr) | step (decay_epochs, decay_rate, warmup_*, min_lr).
    """
    if name == "none":
        return None
    if name == "plateau":
        return PlateauScheduler(
            optimizer, options["patience_epochs"], options["decay_rate"], options["min_lr"]
        )
    common = {
        "warmup_epochs": options.get("warmup_epochs", 0),
        "warmup_lr": options.get("warmup_lr", 1e-5),
        "min_lr": options.get("min_lr", 0.0),
        "updates_per_epoch": updates_per_epoch,
    }
    if name == "cosine":
        num_epochs, cycles = options.get("num_epochs") or epochs, options.get("cycle_limit", 1)
        scheduler, _ = create_scheduler_v2(
            optimizer,
            sched="cosine",
            num_epochs=num_epochs,
            cycle_limit=cycles,
            step_on_epochs=False,
            **common,
        )
        return scheduler
    if name == "step":
        scheduler, _ = create_scheduler_v2(
            optimizer,
            sched="step",
            num_epochs=epochs,
            decay_epochs=options["decay_epochs"],
            decay_rate=options["decay_rate"],
            **common,
        )
        return scheduler
    raise ValueError(f"scheduler.name must be none, cosine, plateau or step, got {name!r}")


def build_training(
    model: nn.Module,
    device: torch.device,
    *,
    in_chans: int,
    channels_last: bool,
    precision: str,
    optimizer: Mapping[str, Any],
    normalize: bool = False,
    scheduler: Mapping[str, Any],
    epochs: int,
    updates_per_epoch: int,
    loss_fn: nn.Module,
    clip_grad: float | None = None,
    accum_steps: int = 1,
    ema_decay: float | None = None,
    progress: bool = True,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
    **step_options: Any,
) -> tuple[TrainStep, TrainState]:
    """What fold training and glyph pretraining both set up around a built `model`: placement on
    `device` (channels_last), autocast precision, timm's optimizer and schedule, fp16's grad scaler,
    EMA (`ema_decay`), the resumable state, and the update step.

    `wrap` puts the forward pass in something (DistributedDataParallel, torch.compile); the state
    keeps the bare model. `step_options`: TrainStep's other fields (agree, augment, augment_seed).
    """
    model, batching = place_model(model, device, in_chans, channels_last, normalize)
    autocast = resolve_precision(precision, device)
    opt = build_optimizer(model, **optimizer)
    schedule = build_scheduler(opt, epochs, updates_per_epoch, **scheduler)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast.needs_scaler)
    ema = ModelEmaV3(model, decay=ema_decay) if ema_decay is not None else None
    state = TrainState(model, opt, schedule, scaler, ema)
    step = TrainStep(
        model=wrap(model) if wrap is not None else model,
        loss_fn=loss_fn,
        optimizer=opt,
        batching=batching,
        precision=autocast,
        scaler=scaler,
        scheduler=schedule,
        ema=ema,
        clip_grad=clip_grad,
        accum_steps=accum_steps,
        progress=progress,
        **step_options,
    )
    return step, state
