"""Config schemas: types at compose time, ranges and unknown keys in `validate`, one-line CLI errors,
registration without importing any entry point, and the package's import structure."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException

from multimnist.config import ConfigError, compose, validate

from .conftest import REPO


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.batch_size=0", "trainer.batch_size must be >= 1, got 0"),
        ("backbone.img_size=-32", "backbone.img_size must be > 0, got -32"),
        ("trainer.ema_decay=5", r"trainer.ema_decay must be in \[0, 1\), got 5"),
        ("optimizer.lr=0", "optimizer.lr must be > 0"),
        ("trainer.patience=-1", "trainer.patience must be >= 1"),
        ("trainer.accum_steps=0", "trainer.accum_steps must be >= 1"),
        ("+trainer.epochz=3", "trainer.epochz: unknown key"),
        ("data.folds.method=random", "data.folds.method must be one of"),
    ],
)
def test_out_of_range_values_and_unknown_keys_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose("train", [override]))


def test_every_shipped_preset_is_valid():
    for preset in sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")):
        validate(compose("train", [f"experiment={preset}"]))
    validate(compose("ensemble"))
    validate(compose("synth", ["out=x"]))


@pytest.mark.parametrize(
    "override",
    ["optimizer.lr=abc", "trainer.epochs=many", "scheduler.decay_epochs=3", "optimizer.momentum=0.9"],
)
def test_wrong_types_and_keys_of_another_option_fail_at_compose_time(override):
    # decay_epochs belongs to scheduler=step, momentum to optimizer=sgd: a key that would do nothing
    with pytest.raises(ConfigCompositionException):
        compose("train", [override])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("optimizer.lr=abc", "optimizer.lr"),
        ("trainer.batch_size=0", "trainer.batch_size"),
        ("backbone.img_size=-32", "backbone.img_size"),
        ("trainer.ema_decay=5", "trainer.ema_decay"),
        ("+trainer.epochz=3", "trainer.epochz"),
    ],
)
def test_cli_config_error_is_one_line_naming_the_key_exit_2(tmp_path, override, key):
    cmd = [
        sys.executable,
        "-m",
        "multimnist.train",
        f"paths.experiments={tmp_path}",
        "backbone=tiny",
        override,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and key in lines[0]
    assert not [
        p for p in tmp_path.rglob("*") if p.suffix in (".pt", ".npy", ".csv", ".yaml")
    ]  # no run files


def test_unknown_group_option_is_one_line_listing_the_options(tmp_path):
    cmd = [sys.executable, "-m", "multimnist.ensemble", "exp=x", "data=nope"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "data=nope: no such option" in lines[0]
    assert "options for data: dacon" in lines[0] and "Config search path" not in lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["multimnist.train", "backbone=effnet_b55"],
            "backbone=effnet_b55: no such option; did you mean effnet_b5",
        ),
        (["multimnist.train", "--cfg", "job", "fold=0,1", "-m"], "--cfg shows one job's config"),
        (["multimnist.predict"], "exp, images, out: required; python -m multimnist.predict exp=NAME"),
    ],
)
def test_raw_hydra_text_becomes_one_line_with_the_fix(tmp_path, args, message):
    done = subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {message}")


def test_a_missing_plugin_says_which_extra_installs_it():
    from multimnist.cli import describe_missing_option

    hydra_text = (
        "In 'hparams_search/optuna': Could not find 'hydra/sweeper/optuna' Available options in "
        "'hydra/sweeper': basic Config search path: provider=hydra, path=pkg://hydra.conf"
    )
    assert describe_missing_option(hydra_text) == (
        "the optuna sweeper plugin is not installed: pip install 'multimnist[search]' "
        "(make setup installs it)"
    )
    launcher = "In 'hydra/launcher/parallel': Could not load 'hydra/launcher/joblib'."
    assert "pip install 'multimnist[launchers]'" in describe_missing_option(launcher)


def test_register_configs_composes_without_importing_an_entry_point():
    code = (
        "import sys\n"
        "from multimnist.config import compose\n"
        "cfg = compose('train', ['backbone=effnet_b5'])\n"
        "assert cfg.backbone.name == 'efficientnet_b5' and cfg.backbone.img_size == 256\n"
        "entries = ('multimnist.train', 'multimnist.ensemble', 'multimnist.synth.__main__')\n"
        "entry = [m for m in entries if m in sys.modules]\n"
        "assert not entry, entry\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def _imports(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_nothing_in_the_package_or_scripts_imports_the_train_cli():
    files = [*(REPO / "multimnist").rglob("*.py"), *(REPO / "scripts").glob("*.py")]
    offenders = [str(p.relative_to(REPO)) for p in files if "multimnist.train" in _imports(p)]
    assert offenders == []


def test_library_modules_know_nothing_of_hydra():
    entry_points = {
        "train.py",
        "fold.py",  # the train command's steps (they take the composed config)
        "pretrain.py",
        "pretraining.py",  # the pretrain command's steps
        "ensemble.py",
        "predict.py",
        "recipe.py",
        "show.py",
        "config.py",
        "cli.py",
        "__main__.py",
    }
    files = [p for p in (REPO / "multimnist").rglob("*.py") if p.name not in entry_points]
    offenders = [
        str(p.relative_to(REPO))
        for p in files
        if any(m.split(".")[0] in ("hydra", "omegaconf") for m in _imports(p))
    ]
    assert offenders == []


ENTRY_POINTS = (
    "multimnist.train",
    "multimnist.pretrain",
    "multimnist.ensemble",
    "multimnist.predict",
    "multimnist.synth",
    "multimnist.synth.show",
    "multimnist.recipe",
)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_help_of_every_entry_point_is_its_own_and_starts_without_torch(entry):
    """`--help` shows the command's own text and imports neither torch nor timm (seconds of start-up)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", entry, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "torch" not in imported and "timm" not in imported
    # The project's own help first (what it does, main keys, examples), no internal schema entries.
    assert done.stdout.startswith(entry) and "Examples:" in done.stdout and "Main keys:" in done.stdout
    assert "_schema" not in done.stdout and "powered by Hydra" not in done.stdout


def test_the_generator_runs_without_timm(tmp_path):
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['synth', 'out={tmp_path / 'd'}', 'n_train=4', 'n_test=2', 'progress=false', "
        "'workers=1', 'preset=easy']\n"
        "try:\n"
        "    runpy.run_module('multimnist.synth', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as stop:\n"
        "    assert not stop.code, stop.code\n"
        "assert 'timm' not in sys.modules, 'the generator imported timm'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "d" / "dirty_mnist_2nd_answer.csv").is_file()


def test_users_own_configs_join_through_hydra_searchpath(tmp_path):
    """Presets and backbones kept outside the package: a folder of config groups on the search path."""
    (tmp_path / "backbone").mkdir()
    (tmp_path / "backbone" / "mine.yaml").write_text(
        "defaults:\n  - backbone_schema\n  - _self_\nname: multimnist_tiny\nimg_size: 48\n"
    )
    cfg = compose("train", [f"hydra.searchpath=[file://{tmp_path}]", "backbone=mine"])
    assert cfg.backbone.name == "multimnist_tiny" and cfg.backbone.img_size == 48


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("fold=7", "fold=7 is outside 0..4"),
        ("data.root=/no/such/dacon", "/no/such/dacon: dataset root not found"),
    ],
)
def test_quick_mistakes_fail_before_torch_loads(override, message):
    """The checks that need no torch run first: with torch made unimportable, the line still comes."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "multimnist.train", override],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert done.returncode == 2 and f"error: {message}" in done.stderr
    assert "torch" not in imported and "timm" not in imported
