"""The training loop, evaluation and TTA prediction. Plain arguments; nothing Hydra-specific.

The update follows timm's order: autocast forward -> backward (scaled for fp16) -> unscale + clip ->
optimizer step -> EMA update -> per-update schedule; the caller syncs Lookahead and steps the
per-epoch schedule at the end of the epoch.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from timm.utils import ModelEmaV3, dispatch_clip_grad
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from multimnist.tta import view, view_ids

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


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
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"trainer.device={name} but no GPU is available")
    return device


@dataclass
class Batching:
    """How a batch of gray images [B,1,H,W] becomes model input."""

    device: torch.device
    in_chans: int = 1
    channels_last: bool = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.in_chans != 1:
            x = x.expand(-1, self.in_chans, -1, -1)  # replicate gray for weights that expect RGB
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def _autocast(device: torch.device, precision: Precision):
    return torch.autocast(device.type, dtype=precision.dtype, enabled=precision.dtype is not None)


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    batching: Batching,
    precision: Precision,
    scaler: torch.amp.GradScaler | None = None,
    scheduler=None,
    ema: ModelEmaV3 | None = None,
    clip_grad: float | None = None,
    accum_steps: int = 1,
    num_updates: int = 0,
    epoch: int = 0,
    progress: bool = True,
    start_step: int = 0,
    should_stop: Callable[[], bool] | None = None,
    agree: Callable[[bool], bool] | None = None,
) -> dict[str, float]:
    """One pass over `loader` (the batches of the epoch from `start_step` on).

    Returns the loss sum and mean, images, batches, seconds, img/s, the running update count, the
    updates fp16's grad scaler skipped (inf/NaN gradients: the scale drops and the step is not taken)
    and whether it stopped early. `should_stop` is asked after each update; when it says yes the
    epoch ends there, at an update boundary, so the state can be saved and resumed exactly.
    `agree` (any-of over processes) keeps those decisions in step under DistributedDataParallel.
    A non-finite loss raises FloatingPointError naming the epoch and step.
    """
    model.train()
    device = batching.device
    agree = agree or (lambda flag: flag)
    total_loss, seen, skipped, done = 0.0, 0, 0, 0
    steps = start_step + len(loader)
    stopped = False
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    bar = tqdm(loader, disable=not progress, desc=f"epoch {epoch} train", leave=False, unit="batch")
    for step, (x, y, _) in enumerate(bar, start=start_step):
        x, y = batching(x), y.to(device, non_blocking=True)
        boundary = (step + 1) % accum_steps == 0 or step + 1 == steps
        # Under DDP, gradients of accumulated micro-batches are synchronised only at the update.
        sync = contextlib.nullcontext() if boundary or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with _autocast(device, precision):
                logits = model(x)
            loss = loss_fn(logits.float(), y)
            finite = bool(torch.isfinite(loss))
            if agree(not finite):
                where = (
                    f"non-finite loss ({loss.item()})" if not finite else "non-finite loss in another process"
                )
                raise FloatingPointError(f"{where} at epoch {epoch}, step {step}")
            scaled = loss / accum_steps
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        if boundary:
            if scaler is not None:
                scaler.unscale_(optimizer)
            if clip_grad:
                dispatch_clip_grad(model.parameters(), clip_grad)
            if scaler is not None:
                scale = scaler.get_scale()
                scaler.step(optimizer)
                scaler.update()
                skipped += scaler.get_scale() < scale  # the scaler backs off only after an inf/NaN step
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            num_updates += 1
            if ema is not None:
                ema.update(model, step=num_updates)
            if scheduler is not None:
                scheduler.step_update(num_updates=num_updates)
        total_loss += loss.item() * len(y)
        seen += len(y)
        done += 1
        bar.set_postfix(loss=f"{total_loss / seen:.4f}")
        if boundary and step + 1 < steps and agree(bool(should_stop and should_stop())):
            stopped = True
            break
    seconds = time.perf_counter() - start
    return {
        "train_loss": total_loss / max(seen, 1),
        "loss_sum": total_loss,
        "images": seen,
        "batches": done,
        "train_seconds": seconds,
        "img_per_s": seen / max(seconds, 1e-9),
        "num_updates": num_updates,
        "skipped_steps": int(skipped),
        "stopped": stopped,
    }


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
    for x, y, index in tqdm(loader, disable=not progress, desc=desc, leave=False, unit="batch"):
        x = batching(x)
        with _autocast(batching.device, precision):
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


def multilabel_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Cell accuracy at probability 0.5 (logit 0) and macro ROC-AUC over letters that vary in `labels`.

    Macro AUC moves long before accuracy leaves the all-zeros floor, so it shows early learning.
    """
    acc = float(((logits > 0) == (labels > 0.5)).mean())
    varied = [c for c in range(labels.shape[1]) if 0 < labels[:, c].sum() < len(labels)]
    auc = (
        float(roc_auc_score(labels[:, varied], logits[:, varied], average="macro"))
        if varied
        else float("nan")
    )
    return {"val_acc": acc, "val_auc": auc}


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
    return {"val_loss": loss, **multilabel_metrics(flat, labels)}
