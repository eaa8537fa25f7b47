"""One fold on several processes (torchrun): who this process is, and the few collectives training needs.

`torchrun --standalone --nproc_per_node=N -m multimnist.train ...` sets RANK, WORLD_SIZE and
LOCAL_RANK; `Distributed.from_env` joins the process group (NCCL on GPUs, gloo on CPU). Without
torchrun the same object is a single process and every collective is the identity, so the training
code has one path. Nothing here knows Hydra.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler, Subset


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and logs."""
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device) -> Distributed:
        """Join the process group torchrun describes; a single process when WORLD_SIZE is unset or 1."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over processes (float64, on CPU through gloo or on the GPU through NCCL)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._device())
        dist.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        """True on every process when it is true on any: keeps collective decisions in step."""
        return bool(self.sum([float(flag)])[0]) if self.enabled else flag

    def gather_rows(self, array: np.ndarray) -> np.ndarray:
        """Concatenate each process's rows in rank order (the inverse of `shard`)."""
        if not self.enabled:
            return array
        parts: list[np.ndarray | None] = [None] * self.world_size
        dist.all_gather_object(parts, array)
        return np.concatenate(parts)

    def broadcast_buffers(self, model: nn.Module) -> None:
        """Give every process the main process's buffers (BatchNorm running statistics) before evaluation."""
        if self.enabled:
            for buf in model.buffers():
                dist.broadcast(buf, src=0)

    def shard(self, ds: Dataset) -> Dataset:
        """This process's contiguous slice of `ds` for prediction: no sample repeated, order kept."""
        if not self.enabled:
            return ds
        return Subset(ds, np.array_split(np.arange(len(ds)), self.world_size)[self.rank].tolist())

    def _device(self) -> torch.device:
        return (
            torch.device("cuda", torch.cuda.current_device())
            if dist.get_backend() == "nccl"
            else torch.device("cpu")
        )


class EpochSampler(DistributedSampler):
    """DistributedSampler whose epoch can start part-way, for a run resumed mid-epoch after Ctrl-C.

    Its order is a function of (seed, epoch) alone; `skip` leaves out this process's first indices;
    `limit` (trainer.limit_batches x batch size) keeps only the first indices of each epoch.
    """

    def __init__(self, dataset: Dataset, dist_: Distributed, seed: int, limit: int | None = None) -> None:
        super().__init__(dataset, num_replicas=dist_.world_size, rank=dist_.rank, shuffle=True, seed=seed)
        self.skip = 0
        self.limit = limit

    def _total(self) -> int:
        n = super().__len__()
        return n if self.limit is None else min(n, self.limit)

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.skip, self._total())

    def __len__(self) -> int:
        return max(self._total() - self.skip, 0)
