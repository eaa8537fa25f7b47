"""Running a `@hydra.main` entry point: schemas registered first, a config error as one line.

Hydra reports a bad override (`optimizer.lr=abc`, an unknown group option) in several lines and
exits 1. Entry points run through `run_cli` instead: `error: optimizer.lr: Value 'abc' of type 'str'
could not be converted to Float (override optimizer.lr=abc)` and exit 2, like every other bad input.
HYDRA_FULL_ERROR=1 still gives Hydra's full traceback.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf.errors import OmegaConfBaseException

from multimnist.config import CONF_DIR, register_configs
from multimnist.data.dacon import DatasetError
from multimnist.io import DiskFull, OutputError, ensure_writable

# What bad input or a failed run raises: reported as one `error:` line, exit 2.
EXPECTED_ERRORS = (DatasetError, ValueError, FileNotFoundError, FileExistsError, FloatingPointError, DiskFull)


class Interrupted(Exception):
    """Stopped on request (Ctrl-C) after saving where to resume; the message says so. Exit 130."""


def names_as_typed(exp: Any) -> None:
    """`exp=1e3` on the command line: Hydra reads a number (1000.0) and the folder would be named
    `1000.0`. Refused, with how to keep the name as typed (quote it)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        overrides = HydraConfig.get().overrides.task
    except ValueError:  # not under @hydra.main
        return
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+~") == "exp" and value and str(exp) != value.strip("'\""):
            raise ValueError(
                f"exp={value} would name the folder {str(exp)!r} (Hydra reads {value} as a number); "
                f"quote it to keep it as typed: exp=\"'{value}'\""
            )


def report(job: Callable[[], Any], resume_hint: str | None = None, exp: Any = None) -> Any:
    """Run an entry point's job and return its value: expected errors become one `error:` line (exit 2),
    an interruption its message (exit 130). Inside `@hydra.main`, so the config is already composed;
    `exp`: the composed experiment name, checked to be what was typed."""
    try:
        if exp is not None:
            names_as_typed(exp)
        return job()
    except Interrupted as stopped:
        print(str(stopped), file=sys.stderr)
        sys.exit(130)
    except EXPECTED_ERRORS as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        if resume_hint is None:
            raise
        print(f"interrupted; {resume_hint}", file=sys.stderr)
        sys.exit(130)


def one_line(err: BaseException) -> str:
    """An error's message on one line. A DataLoader worker's error arrives as "Caught X in DataLoader
    worker process 0" plus the worker's traceback: its own message is the traceback's last line."""
    text = str(err)
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        text = re.sub(r"^[\w.]+(Error|Exception): ", "", last)
    return " ".join(text.split())


class CheckOutputPlace(Callback):
    """Hydra callback: a sweep checks `paths.experiments` is writable before Hydra writes its
    multirun.yaml there, so a read-only or odd place is one line, not Hydra's traceback. (Hydra turns
    a callback's exceptions into warnings, hence the exit here.)"""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        try:
            ensure_writable(config.paths.experiments, "paths.experiments")
        except OutputError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        require_slurm(str(config.hydra.launcher.get("_target_", "")))


def require_slurm(launcher: str) -> None:
    """hydra/launcher=slurm off a Slurm cluster: submitit raises a bare RuntimeError ("Could not
    detect srun") with its traceback; one line with the alternatives instead, before anything runs."""
    import shutil

    if launcher.endswith("SlurmLauncher") and shutil.which("srun") is None:
        print(
            "error: hydra/launcher=slurm submits to a Slurm cluster, and srun is not on this machine's "
            "PATH; on one machine use hydra/launcher=local or hydra/launcher=parallel",
            file=sys.stderr,
        )
        sys.exit(2)


def describe(err: BaseException) -> str:
    """One line for a Hydra/OmegaConf config error: the key it concerns and what is wrong."""
    chain, cause = [], err
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    keyed = next((e for e in reversed(chain) if getattr(e, "full_key", None)), None)
    first = " ".join(str(err).split())
    if keyed is None:
        return describe_missing_option(first)
    detail = " ".join(str(getattr(keyed, "msg", keyed)).split())
    # the key is named already
    detail = re.sub(r"\s*full_key: \S+( reference_type=.*?)? object_type=\S+", "", detail)
    override = re.match(r"Error merging override (\S+)", str(err))
    return f"{keyed.full_key}: {detail}" + (f" (override {override.group(1)})" if override else "")


def refuse_schemas(args: list[str]) -> None:
    """`backbone=backbone_schema`: the typed schema every option builds on is stored in the group
    (Hydra needs it there), but it is no option; say so with the options, before Hydra composes."""
    for arg in args:
        found = re.fullmatch(r"\+{0,2}([\w/]+)=(\w+_schema)", arg)
        if found and (CONF_DIR / found.group(1)).is_dir():
            group = found.group(1)
            options = ", ".join(sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")))
            print(
                f"error: {arg}: {found.group(2)} is the schema of {group}'s options, not one of them; "
                f"options for {group}: {options}",
                file=sys.stderr,
            )
            sys.exit(2)


# Hydra plugins the project's configs use -> the extra that installs each
PLUGIN_EXTRAS = {
    "joblib": "launchers",
    "submitit_local": "launchers",
    "submitit_slurm": "launchers",
    "optuna": "search",
}


def describe_missing_option(text: str) -> str:
    """Hydra's "Could not find 'group/option'" as one line: the plugin's install line for a missing
    sweeper or launcher, else the group's options (no schemas) with the nearest names first."""
    text = re.sub(r"\s*Config search path:.*$", "", text)  # Hydra's search path: noise to a user
    plugin = re.search(r"Could not (?:find|load) 'hydra/(sweeper|launcher)/(\w+)'", text)
    if plugin and plugin.group(2) in PLUGIN_EXTRAS:
        kind, name = plugin.groups()
        return (
            f"the {name} {kind} plugin is not installed: pip install 'multimnist[{PLUGIN_EXTRAS[name]}]' "
            "(make setup installs it)"
        )
    text = re.sub(r"\s*\b\w+_schema\b", "", text)  # the typed schemas are not options
    wanted = re.search(r"Could not find '([\w/]+)/(\w+)'", text)
    options = re.search(r"Available options in '[\w/]+':\s*(.*)$", text)
    if wanted and options:
        import difflib

        group, name = wanted.groups()
        names = options.group(1).split()
        near = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        return f"{group}={name}: no such option; {hint}options for {group}: {' '.join(names)}"
    return re.sub(r"\s*Available options in '(\w+)':\s*", r"; options for \1: ", text)


def refuse_cfg_with_multirun(args: list[str]) -> None:
    """`--cfg job ... -m`: Hydra allows one mode at a time and raises a bare ValueError; say so."""
    shows = any(a in ("--cfg", "-c") or a.startswith("--cfg=") for a in args)
    if shows and any(a in ("-m", "--multirun") for a in args):
        print(
            "error: --cfg shows one job's config, -m runs a sweep: drop -m (and give one value per key)",
            file=sys.stderr,
        )
        sys.exit(2)


def remove_empty_job_dir() -> None:
    """A sweep job's folder (`.sweeps/<time>/fold<k>/`) that Hydra made and nothing filled: gone, so
    a sweep leaves its multirun.yaml and no empty folders (each fold writes its own run folder)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        out = Path(HydraConfig.get().runtime.output_dir)
    except ValueError:  # not under @hydra.main (a test calling the job directly)
        return
    if HydraConfig.get().mode.name == "MULTIRUN" and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def require_keys(cfg: Any, usage: str) -> None:
    """The config's mandatory keys (`???`) are all given; else one line naming them and the usage."""
    from omegaconf import OmegaConf

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        print(f"error: {', '.join(missing)}: required; {usage}", file=sys.stderr)
        sys.exit(2)


def run_cli(hydra_main: Callable[[], Any]) -> None:
    """Call `hydra_main` (a function decorated with @hydra.main) the way `python -m` does."""
    register_configs()
    refuse_schemas(sys.argv[1:])
    refuse_cfg_with_multirun(sys.argv[1:])
    wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises its errors instead of printing them
    try:
        hydra_main()
    except BrokenPipeError:  # `--help | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except (HydraException, OmegaConfBaseException) as err:
        if wants_traceback:
            raise
        print(f"error: {describe(err)}", file=sys.stderr)
        sys.exit(2)
    finally:
        if not wants_traceback:
            os.environ.pop("HYDRA_FULL_ERROR", None)
