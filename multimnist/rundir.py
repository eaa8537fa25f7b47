"""What a fold's run folder already holds, and reading its files back with errors that name them.

A run folder holds the resolved config it was trained with (.hydra/config.yaml), last.pt (resume
point), best.pt, metrics.csv and the logits; test_logits.npy is written last, so its presence means
the fold finished. Before training, `inspect` compares the stored config with the new one: a
different config in a folder that holds results is a conflict, never silently resumed, skipped or
overwritten.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from multimnist.data.fingerprint import fingerprint_difference

CONFIG = Path(".hydra") / "config.yaml"
LAST = "last.pt"  # resume point: TrainState.state_dict()
BEST = "best.pt"  # {"model", "epoch", "val_loss"}: the weights predictions come from
METRICS = "metrics.csv"
OOF_LOGITS = "oof_logits.npy"
OOF_INDEX = "oof_index.npy"
TEST_LOGITS = "test_logits.npy"
FINISHED_MARK = TEST_LOGITS  # written last: its presence means the fold is complete
RESULTS = (LAST, BEST, METRICS, OOF_LOGITS, OOF_INDEX, FINISHED_MARK)
DATASET = "dataset.json"  # the fingerprint of the data the fold trained on (multimnist.data.fingerprint)
ASIDE = ".replaced"  # a replaced run's files, kept until the run replacing it (trainer.overwrite) finishes

# Keys that change how a run is executed or reported, not what it computes: they may differ between
# the run that wrote a folder and the one that resumes or skips it.
EXECUTION_KEYS = (
    "exp",  # the experiment folder's name: a renamed experiment is the same run
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
ADDED_KEYS = {
    "backbone.global_pool": "avg",
    "backbone.head": "pooled",
    "trainer.limit_batches": None,
    "trainer.device_augment": "auto",
}


def config_differences(old: dict, new: dict, limit: int = 6, ignore: tuple[str, ...] = ()) -> list[str]:
    """`key: old -> new` for the keys of `computed_config` that differ (other than `ignore`)."""
    a, b = ADDED_KEYS | computed_config(old), computed_config(new)
    a, b = ({k: v for k, v in d.items() if k not in ignore} for d in (a, b))
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
    fingerprint: dict | None = None,
) -> RunState:
    """The folder's state for a run of `config`; RunConflict when it holds results of another config
    or, given the dataset's `fingerprint`, of other data.

    With `overwrite` a conflict is no error: the caller starts over (and sets the old results aside).
    `results` / `finished_mark`: a fold's files by default (glyph pretraining passes its own). Where
    the folder stores a fingerprint, the data is compared by it, not by `data.root`: moved data is the
    same data.
    """
    present = [name for name in results if (run_dir / name).is_file()]
    state = RunState(finished=finished_mark in present, resumable=LAST in present)
    stored = run_dir / CONFIG
    if not present or overwrite or not stored.is_file():
        return state
    what = "a finished fold" if state.finished else "a started fold (last.pt)"
    replace = "Use another exp=, or trainer.overwrite=true to replace it"
    old = read_yaml(stored, "trainer.overwrite=true replaces the run")
    ignore: tuple[str, ...] = ()
    if fingerprint is not None and (run_dir / DATASET).is_file():
        ignore = ("data.root",)
        change = fingerprint_difference(read_json(run_dir / DATASET), fingerprint)
        if change:
            raise RunConflict(f"{run_dir} already holds {what} trained on other data: {change}. {replace}")
    diffs = config_differences(old, config, ignore=ignore)
    if diffs:
        raise RunConflict(
            f"{run_dir} already holds {what} trained with a different config ({'; '.join(diffs)}). {replace}"
        )
    return state


def first_line(err: BaseException, limit: int = 160) -> str:
    """The first line of an error's message (its class name when the message is empty)."""
    lines = str(err).strip().splitlines()
    return lines[0][:limit] if lines else err.__class__.__name__


def read_yaml(path: Path, remedy: str) -> dict:
    """A run file holding a YAML mapping; a damaged one is one ValueError naming it and `remedy`."""
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid YAML ({first_line(err)}); {remedy}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a YAML mapping (empty or damaged); {remedy}")
    return data


def read_json(path: Path) -> dict:
    """A run's JSON file (a mapping); a damaged one is one ValueError naming it."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path}: not valid JSON ({first_line(err)}); delete it or re-run the fold"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object; delete it or re-run the fold")
    return data


def set_aside(run_dir: Path, names: tuple[str, ...]) -> None:
    """Move a run's `names` into `<run_dir>/.replaced/` before a run that replaces it starts.

    If `.replaced` already holds a run (an earlier replacement never finished), that one is kept and
    the unfinished replacement's files are dropped.
    """
    aside = run_dir / ASIDE
    keep = not aside.is_dir()
    aside.mkdir(exist_ok=True)
    for name in names:
        src = run_dir / name
        if not src.is_file():
            continue
        if keep:
            (aside / name).parent.mkdir(parents=True, exist_ok=True)
            src.replace(aside / name)
        else:
            src.unlink()


def restore_aside(run_dir: Path, names: tuple[str, ...]) -> None:
    """Undo `set_aside` after the replacing run failed: its files go, the replaced run's come back."""
    aside = run_dir / ASIDE
    if not aside.is_dir():
        return
    for name in names:
        (run_dir / name).unlink(missing_ok=True)
        if (aside / name).is_file():
            (aside / name).replace(run_dir / name)
    shutil.rmtree(aside)


def drop_aside(run_dir: Path) -> None:
    """The replacing run finished: the replaced run's files are no longer needed."""
    shutil.rmtree(run_dir / ASIDE, ignore_errors=True)


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
            f"{first_line(err)}); delete it to start the fold over"
        ) from None


def load_logits(path: Path, mmap: bool = False, finite: bool = False) -> np.ndarray:
    """A .npy array; a cut-short or corrupt file (or, with `finite`, one holding NaN or inf) is one
    ValueError naming the path."""
    remedy = "re-run the fold with trainer.overwrite=true"
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, EOFError, OSError) as err:
        raise ValueError(
            f"{path}: unreadable array, cut short or corrupt ({err.__class__.__name__}: "
            f"{first_line(err)}); {remedy}"
        ) from None
    if finite and np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ValueError(f"{path}: {bad} of {array.size} values are NaN or inf; {remedy}")
    return array
