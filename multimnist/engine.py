"""The training loop, evaluation and TTA prediction. Plain arguments; nothing Hydra-specific.

The update follows timm's order: autocast forward -> backward (scaled for fp16) -> unscale + clip ->
optimizer step -> EMA update -> per-update schedule; the caller syncs Lookahead and steps the
per-epoch schedule at the end of the epoch.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from timm.utils import ModelEmaV3, dispatch_clip_grad
from torch import nn
from torch.utils.data import DataLoader

from multimnist.choices import PRECISIONS
from multimnist.decode import multilabel_metrics
from multimnist.progress import progress as progress_bar
from multimnist.tta import view, view_ids


@dataclass(frozen=True)
class Precision:
    """Autocast dtype (None = fp32) and whether fp16's gradient scaler is needed."""

    name: str
    dtype: torch.dtype | None

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16


def resolve_precision(name: str, device: torch.device) -> Precision:
    """auto: bf16 on a GPU that has it, else fp16 with a grad scaler; fp32 on CPU."""
    if name not in PRECISIONS:
        raise ValueError(f"trainer.precision must be one of {PRECISIONS}, got {name!r}")
    if name == "auto":
        if device.type != "cuda":
            return Precision("fp32", None)
        name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if name == "fp16" and device.type != "cuda":
        raise ValueError("trainer.precision=fp16 needs a GPU; use bf16 or fp32 on CPU")
    return Precision(name, {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name])


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"trainer.device={name}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"trainer.device={name} but no GPU is available")
    return device


@dataclass
class Batching:
    """How a batch of gray images [B,1,H,W] becomes model input: uint8 batches (what the datasets
    give) are copied to the device as bytes and converted to floats in [0, 1] there."""

    device: torch.device
    in_chans: int = 1
    channels_last: bool = False
    mean: tuple[float, ...] | None = None  # per-channel normalisation (backbone.normalize), else [0, 1]
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        # Made once, on the device: a tensor built per batch would be a host-to-device copy per step.
        self._shift, self._scale = (
            (None, None)
            if self.mean is None
            else (torch.tensor(v, device=self.device).view(1, -1, 1, 1) for v in (self.mean, self.std))
        )

    def __call__(
        self, x: torch.Tensor, augment: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:  # the same float32 division on any device: the same values
            x = x.float().div_(255.0)
        if augment is not None:  # on the device, before the channel copies and the memory layout
            x = augment(x)
        if self.in_chans != 1:
            x = x.expand(-1, self.in_chans, -1, -1)  # replicate gray for weights that expect RGB
        if self._shift is not None:
            x = (x - self._shift) / self._scale
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def autocast(device: torch.device, precision: Precision):
    """The forward pass's autocast context for a resolved precision (off for fp32)."""
    return torch.autocast(device.type, dtype=precision.dtype, enabled=precision.dtype is not None)


@dataclass
class TrainStep:
    """Everything one optimisation step needs, built once per fold (keywords, not 17 positions).

    `scaler` is always a GradScaler: enabled for fp16, a pass-through otherwise. `agree` (any-of
    over processes) keeps per-step decisions in step under DistributedDataParallel.
    """

    model: nn.Module
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    batching: Batching
    precision: Precision
    scaler: torch.amp.GradScaler
    scheduler: Any = None
    ema: ModelEmaV3 | None = None
    clip_grad: float | None = None
    accum_steps: int = 1
    progress: bool = True
    agree: Callable[[bool], bool] = field(default=lambda flag: flag)
    # Batched rot90/flip augmentation on the device (data.augment.BatchFlips), seeded per batch from
    # (augment_seed, epoch, step); None: the datasets' own (albumentations) transform is all there is.
    augment: Callable[[torch.Tensor, int], torch.Tensor] | None = None
    augment_seed: int = 0


@dataclass
class EpochResult:
    """What one pass over the loader did (this process's share under DDP)."""

    loss_sum: float
    images: int
    batches: int
    seconds: float
    num_updates: int  # running count, for the per-update schedule
    skipped_steps: int  # updates fp16's grad scaler skipped (inf/NaN gradients)
    stopped: bool  # ended early at an update boundary because `should_stop` said so

    @property
    def train_loss(self) -> float:
        return self.loss_sum / max(self.images, 1)


def _update(step: TrainStep, num_updates: int) -> tuple[int, bool]:
    """unscale + clip -> step -> EMA -> per-update schedule. Returns the update count and whether
    the scaler skipped this step (it backs off its scale only after an inf/NaN step)."""
    scaler, optimizer = step.scaler, step.optimizer
    scaler.unscale_(optimizer)
    if step.clip_grad:
        dispatch_clip_grad(step.model.parameters(), step.clip_grad)
    scale = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    skipped = scaler.get_scale() < scale
    optimizer.zero_grad(set_to_none=True)
    num_updates += 1
    if step.ema is not None:
        step.ema.update(step.model, step=num_updates)
    if step.scheduler is not None:
        step.scheduler.step_update(num_updates=num_updates)
    return num_updates, skipped


def _batch_augment(step: TrainStep, epoch: int, i: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The step's device augmentation for batch `i` of `epoch`: its seed is a function of (seed,
    epoch, i) alone, so a resumed epoch draws what the uninterrupted one drew."""
    if step.augment is None:
        return None
    seed = int(np.random.SeedSequence([step.augment_seed, epoch, i]).generate_state(1)[0])
    return lambda x: step.augment(x, seed)


SYNC_EVERY = 25  # batches between host reads of the device-side loss sum and non-finite flag


def _raise_if_non_finite(
    step: TrainStep, first_bad: torch.Tensor, bad_loss: torch.Tensor, epoch: int
) -> None:
    """Read the non-finite flag (a host sync: every SYNC_EVERY batches and at the epoch's end) and
    stop naming the first bad step. Every process reads it at the same step (DDP: `agree`)."""
    bad = int(first_bad)
    if step.agree(bad >= 0):
        where = f"non-finite loss ({float(bad_loss)}) at epoch {epoch}, step {bad}"
        if bad < 0:
            where = f"non-finite loss in another process at epoch {epoch}"
        raise FloatingPointError(
            f"{where}: training diverged (lower optimizer.lr, or set trainer.clip_grad); "
            "last.pt holds the epoch before"
        )


def train_one_epoch(
    step: TrainStep,
    loader: DataLoader,
    *,
    epoch: int,
    num_updates: int,
    start_step: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> EpochResult:
    """One pass over `loader` (the batches of the epoch from `start_step` on).

    `should_stop` is asked after each update; when it says yes the epoch ends there, at an update
    boundary, so the state can be saved and resumed exactly. A non-finite loss raises
    FloatingPointError naming the epoch and the first bad step.

    No host sync in the steady state: the loss sum (float64, so it equals a Python sum of the
    per-batch losses) and the first non-finite step stay on the device and are read every
    SYNC_EVERY batches, before a stop and at the end. The fp16 grad scaler's skip count still reads
    its scale per update (fp16 only; bf16 and fp32 have no scaler).
    """
    model, device, accum = step.model, step.batching.device, step.accum_steps
    model.train()
    seen, skipped, done, stopped = 0, 0, 0, False
    total = torch.zeros((), dtype=torch.float64, device=device)
    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    bad_loss = torch.zeros((), device=device)
    steps = start_step + len(loader)
    start = time.perf_counter()
    step.optimizer.zero_grad(set_to_none=True)
    bar = progress_bar(loader, enabled=step.progress, desc=f"epoch {epoch} train", unit="batch")
    for i, (x, y, _) in enumerate(bar, start=start_step):
        x, y = step.batching(x, _batch_augment(step, epoch, i)), y.to(device, non_blocking=True)
        boundary = (i + 1) % accum == 0 or i + 1 == steps
        # Under DDP, gradients of accumulated micro-batches are synchronised only at the update.
        sync = contextlib.nullcontext() if boundary or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with autocast(device, step.precision):
                logits = model(x)
            loss = step.loss_fn(logits.float(), y)
            step.scaler.scale(loss / accum).backward()  # a pass-through unless fp16
        value = loss.detach()
        new_bad = (first_bad < 0) & ~torch.isfinite(value)
        first_bad.masked_fill_(new_bad, i)
        bad_loss = torch.where(new_bad, value, bad_loss)
        total += value.double() * len(y)
        if boundary:
            num_updates, skip = _update(step, num_updates)
            skipped += skip
        seen += len(y)
        done += 1
        if (done % SYNC_EVERY == 0) or i + 1 == steps:
            _raise_if_non_finite(step, first_bad, bad_loss, epoch)
            bar.set_postfix(loss=f"{float(total) / seen:.4f}")
        if boundary and i + 1 < steps and step.agree(bool(should_stop and should_stop())):
            _raise_if_non_finite(step, first_bad, bad_loss, epoch)  # never save a broken state
            stopped = True
            break
    seconds = time.perf_counter() - start
    return EpochResult(float(total), seen, done, seconds, num_updates, int(skipped), stopped)


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: DataLoader,
    batching: Batching,
    precision: Precision,
    n_views: int = 1,
    progress: bool = True,
    desc: str = "predict",
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Logits for every TTA view: ([N, n_views, 26] float32, dataset indices [N], labels [N, 26] or None)."""
    model.eval()
    ids = view_ids(n_views)
    logits, indices, labels = [], [], []
    for x, y, index in progress_bar(loader, enabled=progress, desc=desc, unit="batch"):
        x = batching(x)
        with autocast(batching.device, precision):
            out = torch.stack([model(view(x, k)).float() for k in ids], dim=1)
        logits.append(out.cpu().numpy())
        indices.append(np.asarray(index))
        labels.append(y.numpy())
    y_all = np.concatenate(labels)
    return (
        np.concatenate(logits),
        np.concatenate(indices).astype(np.int64),
        None if np.isnan(y_all).any() else y_all,
    )


# A validation loss this high means training diverged: 1000x the loss of predicting 0.5 for every
# cell (ln 2, for bce and soft_margin alike); a model that learns anything sits far below 1.
DIVERGED_LOSS = 1000 * math.log(2)


def evaluate(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    batching: Batching,
    precision: Precision,
    progress: bool = True,
    epoch: int = 0,
    gather: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, float]:
    """Validation loss, accuracy at 0.5 and macro ROC-AUC on the identity view.

    `gather` joins the processes' shards of the validation set (DDP) before scoring.
    """
    logits, _, labels = predict(model, loader, batching, precision, 1, progress, f"epoch {epoch} val")
    if gather is not None:
        logits, labels = gather(logits), None if labels is None else gather(labels)
    if labels is None:
        raise ValueError("validation data has no labels")
    flat = logits[:, 0]
    loss = float(loss_fn(torch.from_numpy(flat), torch.from_numpy(labels)).item())
    if not np.isfinite(flat).all() or loss > DIVERGED_LOSS:
        what = "NaN or inf logits" if not np.isfinite(flat).all() else f"val_loss {loss:.3g}"
        raise FloatingPointError(
            f"epoch {epoch}: validation gave {what}: training diverged "
            "(lower optimizer.lr, or set trainer.clip_grad); last.pt holds the epoch before"
        )
    return {"val_loss": loss, **multilabel_metrics(flat, labels)}


def end_of_epoch(
    step: TrainStep, epoch: int, score: Callable[[], dict[str, float]], monitor: str
) -> tuple[float, dict[str, float]]:
    """timm's order at an epoch's end: Lookahead's slow weights synced, the model scored (`score`),
    the per-epoch schedule stepped on `scores[monitor]`. Returns the lr after that step and the scores.
    Fold training and glyph pretraining both end their epochs here."""
    if hasattr(step.optimizer, "sync_lookahead"):
        step.optimizer.sync_lookahead()
    scores = score()
    if step.scheduler is not None:
        step.scheduler.step(epoch + 1, scores[monitor])
    return step.optimizer.param_groups[0]["lr"], scores
