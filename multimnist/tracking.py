"""Per-epoch metrics: always to <run>/metrics.csv, optionally to Weights & Biases.

wandb is imported only when asked for; offline and disabled modes need no network or key, and its
files go under the run folder (`dir=`). Folds of one experiment share a wandb group.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd

from multimnist.choices import WANDB_MODES
from multimnist.io import atomic_path
from multimnist.rundir import METRICS, first_line

log = logging.getLogger(__name__)


def epoch_row(
    epoch: int, lr: float, trained: dict[str, Any], scores: dict[str, Any], result: Any, started: float
) -> dict[str, Any]:
    """One metrics.csv row: epoch, lr, the training figures, the scores, then throughput (`result`:
    the epoch's `engine.EpochResult`) and wall seconds since `started` (perf_counter)."""
    img_per_s = result.images / max(result.seconds, 1e-9)
    return (
        {"epoch": epoch, "lr": lr}
        | trained
        | scores
        | {
            "img_per_s": img_per_s,
            "seconds": time.perf_counter() - started,
        }
    )


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of a metrics.csv, checked: a damaged file, a row cut short or a missing epoch column
    is one ValueError naming the file (and the line)."""
    remedy = "delete it (the run keeps its checkpoints) or re-run with trainer.overwrite=true"
    try:
        text = path.read_text()
        lines = text.splitlines()
        rows = pd.read_csv(io.StringIO(text)).to_dict("records") if lines else []
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: unreadable metrics ({first_line(err)}); {remedy}") from None
    width = lines[0].count(",") if lines else 0
    short = next((n for n, line in enumerate(lines[1:], start=2) if line.count(",") != width), None)
    if short is not None:
        raise ValueError(
            f"{path}: line {short} has a different number of fields than the header (cut short?); {remedy}"
        )
    if rows and "epoch" not in rows[0]:
        raise ValueError(f"{path}: no epoch column; not a metrics file written by multimnist.train")
    return rows


def install_hint(extra: str, package: str) -> str:
    """How to add an optional extra, for the way multimnist itself was installed: from a source
    checkout (editable) `pip install -e '<checkout>[extra]'`, otherwise `pip install package` (the
    package is on no index, so `multimnist[extra]` would not resolve)."""
    import json
    from importlib.metadata import distributions

    # Every copy of the metadata on sys.path: a checkout's own multimnist.egg-info (written by the
    # editable install) can come before the installed record that says how it was installed.
    records = [d.read_text("direct_url.json") for d in distributions(name="multimnist")]
    direct = next((r for r in records if r), None)
    info = json.loads(direct) if direct else {}
    if info.get("dir_info", {}).get("editable") and info.get("url", "").startswith("file://"):
        return f"pip install -e '{info['url'][len('file://') :]}[{extra}]'"
    return f"pip install {package}"


def require_wandb() -> None:
    """wandb is an optional extra: asking for it without it installed is one line saying how to get it."""
    if importlib.util.find_spec("wandb") is None:
        raise ValueError(
            f"logger=wandb needs the wandb package: {install_hint('wandb', 'wandb')} (or use logger=csv)"
        )


class RunLog:
    """Collects one row per epoch; rewrites metrics.csv atomically after each."""

    def __init__(self, run_dir: Path, rows: list[dict[str, Any]] | None = None) -> None:
        self.path = Path(run_dir) / METRICS
        self.rows = list(rows or [])
        self.active = True  # False in DDP processes other than the main one: they keep rows, write nothing
        self._wandb = None

    @classmethod
    def resume(cls, run_dir: Path, before_epoch: int) -> RunLog:
        """The rows of epochs < before_epoch (a row written after the last checkpoint is dropped)."""
        path = Path(run_dir) / METRICS
        rows = read_metrics(path) if path.is_file() else []
        return cls(run_dir, [r for r in rows if r["epoch"] < before_epoch])

    def start_wandb(
        self,
        mode: str,
        project: str,
        group: str,
        name: str,
        config: dict,
        entity: str | None = None,
        tags: list[str] | None = None,
    ) -> None:
        if mode not in WANDB_MODES:
            raise ValueError(f"logger.wandb.mode must be one of {WANDB_MODES}, got {mode!r}")
        require_wandb()
        import wandb

        self._wandb = wandb.init(
            mode=mode,
            project=project,
            entity=entity,
            group=group,
            name=name,
            config=config,
            tags=list(tags or []),
            dir=str(self.path.parent),
            reinit="finish_previous",
        )

    def log(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if not self.active:
            return
        with atomic_path(self.path) as tmp:
            pd.DataFrame(self.rows).to_csv(tmp, index=False)
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))

    def summary(self, values: dict[str, Any]) -> None:
        if self._wandb is not None:
            self._wandb.summary.update(values)

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


class LogFile:
    """Copy every log record to a run's log file (appending) while the block runs.

    Added by the run itself once it knows it will write (a finished fold skipped on a read-only
    disk writes nothing), instead of a file handler set up before the run looks at its folder.
    """

    def __init__(self, path: Path, active: bool = True) -> None:
        self.path, self.active = Path(path), active
        self._handler: logging.Handler | None = None

    def __enter__(self) -> LogFile:
        if self.active:
            self._handler = logging.FileHandler(self.path)
            self._handler.setFormatter(logging.Formatter(LOG_FORMAT))
            logging.getLogger().addHandler(self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler.close()
            self._handler = None
