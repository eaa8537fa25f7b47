"""Everything a fold's training carries from one update to the next, and its checkpoint layout.

`TrainState.state_dict()` is what last.pt holds; `load_state_dict()` reads it back. The layout lives
here and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from timm.utils import ModelEmaV3
from torch import nn


def fresh_progress() -> dict:
    """The running totals of an epoch not yet started: batches done, loss sum, images, skipped steps."""
    return {"batches": 0, "loss_sum": 0.0, "images": 0, "skipped": 0}


@dataclass
class TrainState:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any  # timm-style scheduler or None (constant lr)
    scaler: torch.amp.GradScaler
    ema: ModelEmaV3 | None = None
    epoch: int = 0  # the next epoch to run
    num_updates: int = 0
    best: float = math.inf  # best validation loss so far
    stale: int = 0  # epochs since `best` improved (early stopping)
    partial: dict | None = None  # progress inside `epoch` when Ctrl-C stopped it mid-way (with RNG states)

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are evaluated, saved as best.pt and predicted with: EMA's when on."""
        return self.ema.module if self.ema is not None else self.model

    def record(self, val_loss: float) -> bool:
        """Count one finished epoch's validation loss; True when it is the best so far."""
        if val_loss < self.best:
            self.best, self.stale = val_loss, 0
            return True
        self.stale += 1
        return False

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "epoch": self.epoch,
            "num_updates": self.num_updates,
            "best": self.best,
            "stale": self.stale,
            "partial_epoch": self.partial,
        }

    def load_state_dict(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        for part, key in ((self.scheduler, "scheduler"), (self.ema, "ema")):
            if part is not None and ckpt[key] is not None:
                part.load_state_dict(ckpt[key])
        if self.scaler.is_enabled() and ckpt["scaler"] is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.num_updates, self.best = ckpt["epoch"], ckpt["num_updates"], ckpt["best"]
        self.stale, self.partial = ckpt["stale"], ckpt["partial_epoch"]
