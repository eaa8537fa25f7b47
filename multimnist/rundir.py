"""What a fold's run folder already holds, and reading its files back with errors that name them.

A run folder holds the resolved config it was trained with (.hydra/config.yaml), last.pt (resume
point), best.pt, metrics.csv and the logits; test_logits.npy is written last, so its presence means
the fold finished. Before training, `inspect` compares the stored config with the new one: a
different config in a folder that holds results is a conflict, never silently resumed, skipped or
overwritten.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

CONFIG = Path(".hydra") / "config.yaml"
LAST = "last.pt"  # resume point: TrainState.state_dict()
BEST = "best.pt"  # {"model", "epoch", "val_loss"}: the weights predictions come from
METRICS = "metrics.csv"
OOF_LOGITS = "oof_logits.npy"
OOF_INDEX = "oof_index.npy"
TEST_LOGITS = "test_logits.npy"
FINISHED_MARK = TEST_LOGITS  # written last: its presence means the fold is complete
RESULTS = (LAST, BEST, METRICS, OOF_LOGITS, OOF_INDEX, FINISHED_MARK)

# Keys that change how a run is executed or reported, not what it computes: they may differ between
# the run that wrote a folder and the one that resumes or skips it.
EXECUTION_KEYS = (
    "trainer.progress",
    "trainer.num_workers",
    "trainer.resume",
    "trainer.stop_after",
    "trainer.overwrite",
    "trainer.device",
    "trainer.compile",
    "logger",
    "paths",
    "data.cache",
    "data.cache_dir",
)


class RunConflict(ValueError):
    """The run folder holds results of a different config."""


@dataclass(frozen=True)
class RunState:
    finished: bool  # test_logits.npy is there
    resumable: bool  # last.pt is there


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def computed_config(config: dict) -> dict[str, Any]:
    """The config flattened to `a.b.c: value`, without EXECUTION_KEYS: what decides the results."""
    return {
        k: v
        for k, v in _flatten(config).items()
        if not any(k == e or k.startswith(e + ".") for e in EXECUTION_KEYS)
    }


# Keys added to the config after runs were written, with the value that reproduces those runs: a
# stored config without the key means that value, so older finished folds still resume and skip.
ADDED_KEYS = {"backbone.global_pool": "avg", "backbone.head": "pooled"}


def config_differences(old: dict, new: dict, limit: int = 6) -> list[str]:
    """`key: old -> new` for the keys of `computed_config` that differ."""
    a, b = ADDED_KEYS | computed_config(old), computed_config(new)
    a = {k: v for k, v in a.items() if k in b or k not in ADDED_KEYS}
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k, "<absent>") != b.get(k, "<absent>"))
    out = [f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}" for k in keys[:limit]]
    return out + ([f"... and {len(keys) - limit} more"] if len(keys) > limit else [])


def inspect(
    run_dir: Path,
    config: dict,
    overwrite: bool,
    results: tuple[str, ...] = RESULTS,
    finished_mark: str = FINISHED_MARK,
) -> RunState:
    """The folder's state for a run of `config`; RunConflict when it holds results of another config.

    With `overwrite` a conflict is no error: the caller starts over (and deletes the old results).
    `results` / `finished_mark`: a fold's files by default (glyph pretraining passes its own).
    """
    present = [name for name in results if (run_dir / name).is_file()]
    state = RunState(finished=finished_mark in present, resumable=LAST in present)
    stored = run_dir / CONFIG
    if not present or overwrite or not stored.is_file():
        return state
    try:
        old = yaml.safe_load(stored.read_text())
    except yaml.YAMLError as err:
        raise RunConflict(
            f"{stored}: unreadable ({err.__class__.__name__}); trainer.overwrite=true replaces the run"
        ) from None
    diffs = config_differences(old or {}, config)
    if diffs:
        what = "a finished fold" if state.finished else "a started fold (last.pt)"
        raise RunConflict(
            f"{run_dir} already holds {what} trained with a different config ({'; '.join(diffs)}). "
            "Use another exp=, or trainer.overwrite=true to replace it"
        )
    return state


def load_checkpoint(path: Path) -> dict:
    """A checkpoint as plain tensors and numbers (weights_only: no pickled code runs).

    A cut-short or corrupt file is one ValueError naming the path, not a pickle/zip traceback.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise ValueError(
            f"{path}: unreadable checkpoint, cut short or corrupt ({err.__class__.__name__}: "
            f"{str(err).splitlines()[0][:160]}); delete it to start the fold over"
        ) from None


def load_logits(path: Path, mmap: bool = False) -> np.ndarray:
    """A .npy array; a cut-short or corrupt file is one ValueError naming the path."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, EOFError, OSError) as err:
        raise ValueError(
            f"{path}: unreadable array, cut short or corrupt ({err.__class__.__name__}: "
            f"{str(err).splitlines()[0][:160]}); re-run the fold with trainer.overwrite=true"
        ) from None
