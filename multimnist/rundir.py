"""What a fold's run folder already holds, and reading its files back with errors that name them.

A run folder holds the resolved config it was trained with (.hydra/config.yaml), last.pt (resume
point), best.pt, metrics.csv and the logits; test_logits.npy is written last, so its presence means
the fold finished. Before training, `inspect` compares the stored config with the new one: a
different config in a folder that holds results is a conflict, never silently resumed, skipped or
overwritten.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import pickle
import shutil
import socket
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from multimnist.data.fingerprint import fingerprint_difference

log = logging.getLogger(__name__)

# --- an experiment's folders: <paths.experiments>/<exp>/{fold<k>, pretrain, ensemble} -------------
PRETRAIN_WEIGHTS = "weights.pt"  # glyph pretraining's output, written last (the run is finished)
ENSEMBLE_RECORD = "ensemble.json"  # what the ensemble chose (predict applies it again)
SUBMISSION = "submission.csv"


DEBUG_SUFFIX = "-debug"  # trainer.limit_batches runs (trainer=debug) land in <exp>-debug/


def experiment_name(exp: str, debug: bool = False) -> str:
    """The folder name of an experiment: `<exp>-debug` for a debug run, which the ensemble never
    picks by default and which never mixes with the real run's folds."""
    return f"{exp}{DEBUG_SUFFIX}" if debug and not exp.endswith(DEBUG_SUFFIX) else exp


def is_debug(folder_name: str) -> bool:
    return folder_name.endswith(DEBUG_SUFFIX)


def fold_dir(experiments: Path | str, exp: str, fold: int) -> Path:
    """One fold's run folder."""
    return Path(experiments) / exp / f"fold{fold}"


def fold_dirs(experiments: Path | str, exp: str) -> list[Path]:
    """Every fold folder of an experiment, in name order."""
    return sorted((Path(experiments) / exp).glob("fold*"))


def pretrain_dir(experiments: Path | str, exp: str) -> Path:
    """A glyph-pretraining run's folder (its weights file: `pretrain_dir(...) / PRETRAIN_WEIGHTS`)."""
    return Path(experiments) / exp / "pretrain"


def ensemble_dir(experiments: Path | str, exp: str) -> Path:
    """Where the ensemble writes the submission, ensemble.json and the report."""
    return Path(experiments) / exp / "ensemble"


# --- one fold's files -----------------------------------------------------------------------------
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
REPLACED = (*RESULTS, str(CONFIG), DATASET)  # what of a fold is set aside while another run replaces it

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
    "backbone.pretrained_file": None,
    "backbone.normalize": False,
    "data.pseudo_labels": None,
    "backbone.truncate_stride": None,
}


def with_added_keys(config: dict) -> dict:
    """A stored config with ADDED_KEYS filled in where their section lacks them (a copy)."""
    out = copy.deepcopy(config)
    for key, value in ADDED_KEYS.items():
        *sections, leaf = key.split(".")
        node = out
        for name in sections:
            node = node.get(name) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.setdefault(leaf, value)
    return out


def read_config(run_dir: Path, remedy: str = "re-run the fold with trainer.overwrite=true") -> dict:
    """The config a run folder was written with, as a plain dict, with the defaults of keys added since
    (ADDED_KEYS): the one reader of stored configs (resume checks, the ensemble, predict)."""
    return with_added_keys(read_yaml(run_dir / CONFIG, remedy))


def config_differences(old: dict, new: dict, limit: int = 6, ignore: tuple[str, ...] = ()) -> list[str]:
    """`key: old -> new` for the keys of `computed_config` that differ (other than `ignore`); `old` is
    a stored config read by `read_config`."""
    a, b = computed_config(old), computed_config(new)
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
    old = read_config(run_dir, "trainer.overwrite=true replaces the run")
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


class Replacement:
    """The lifecycle of a run folder whose run may replace an earlier one (trainer.overwrite=true, or
    trainer.resume=false over results), shared by fold training and glyph pretraining.

    On entry the earlier run's `names` move into `.replaced/` (when `replace` and any of its `results`,
    by default `names`, is there: a config alone is no run to keep); any
    failure inside, Ctrl-C included, brings them back; a clean exit after `finished()` drops them. A
    clean exit without `finished()` (a paused run) keeps them until the replacing run finishes.
    `active=False` (a non-main DDP process) touches nothing.
    """

    def __init__(
        self,
        run_dir: Path,
        names: tuple[str, ...],
        replace: bool,
        active: bool = True,
        results: tuple[str, ...] | None = None,
    ):
        self.run_dir, self.names, self.active = run_dir, names, active
        self.replacing = replace and any((run_dir / name).is_file() for name in results or names)
        self.done = False

    def __enter__(self) -> Replacement:
        if self.replacing and self.active:
            set_aside(self.run_dir, self.names)
        return self

    def finished(self) -> None:
        """The replacing run is complete: the earlier run is no longer needed."""
        self.done = True

    def __exit__(self, kind: type | None, err: BaseException | None, tb: Any) -> bool:
        if self.replacing and self.active:
            if kind is not None:
                restore_aside(self.run_dir, self.names)
                log.warning("%s: restored the run this one was replacing", self.run_dir)
            elif self.done:
                drop_aside(self.run_dir)
            elif (self.run_dir / ASIDE).is_dir():  # paused: kept for this replacement, not a dead one's
                (self.run_dir / ASIDE / PAUSED).touch()
        return False


LOCK = ".lock"  # held for a whole run (filelock: the OS drops it when the process dies, kill -9 too)
OWNER = ".lock.owner"  # who holds it: pid, host, since when (for the refusal's message)
PAUSED = ".paused"  # in .replaced/: a paused replacing run kept it on purpose (not a dead one's)


class RunLocked(ValueError):
    """Another live process is writing this run folder."""


@contextmanager
def run_lock(run_dir: Path, what: str = "run") -> Iterator[None]:
    """Hold `run_dir`'s lock for the block; a folder another process holds is RunLocked at once,
    naming that process. The lock is the OS's (fcntl through filelock), so a killed holder frees it."""
    from filelock import FileLock, Timeout

    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir / LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        owner = run_dir / OWNER
        holder = owner.read_text().strip() if owner.is_file() else "another process"
        raise RunLocked(
            f"{run_dir}: another {what} is writing it ({holder}); wait for it to finish or stop it, "
            "then re-run (it resumes)"
        ) from None
    try:
        try:  # who holds it, for a second run's message; a full disk must not stop the run here
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            (run_dir / OWNER).write_text(f"pid {os.getpid()} on {socket.gethostname()}, since {stamp}\n")
        except OSError:
            pass
        yield
    finally:
        (run_dir / OWNER).unlink(missing_ok=True)
        lock.release()


def heal_replaced(run_dir: Path, names: tuple[str, ...]) -> bool:
    """Put back a run that a killed `trainer.overwrite=true` run had set aside in `.replaced/` (one
    warning line). Only when no live process holds the folder and no paused replacement kept it on
    purpose. Returns whether it healed."""
    aside = run_dir / ASIDE
    if not aside.is_dir() or (aside / PAUSED).is_file():
        return False
    from filelock import FileLock, Timeout

    try:
        with FileLock(run_dir / LOCK, timeout=0):
            if not aside.is_dir():
                return False
            restore_aside(run_dir, names)
    except Timeout:  # a live run is replacing it right now
        return False
    log.warning("%s: put back the run that an interrupted overwrite had set aside in %s", run_dir, ASIDE)
    return True


def load_checkpoint(path: Path, remedy: str = "delete it to start the fold over") -> dict:
    """A checkpoint or weights file as plain tensors and numbers (weights_only: no pickled code runs):
    the one reader of .pt files.

    A cut-short or corrupt file is one ValueError naming the path and `remedy`, not a pickle/zip
    traceback.
    """
    import torch  # here: reading run folders (the ensemble, `--help`) needs no torch otherwise
    from safetensors import SafetensorError  # torch.load reads .safetensors files through it

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except (
        RuntimeError,
        EOFError,
        OSError,
        zipfile.BadZipFile,
        ValueError,
        pickle.UnpicklingError,
        SafetensorError,
    ) as err:
        raise ValueError(
            f"{path}: unreadable checkpoint, cut short or corrupt ({err.__class__.__name__}: "
            f"{first_line(err)}); {remedy}"
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
