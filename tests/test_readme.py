"""Every command the README and the docs/ pages show is exercised: `python -m multimnist.<entry>`
lines compose with their exact overrides (an unknown key, group option or bad value fails), `make`
lines name real targets and dry-run cleanly. Template lines with [optional] parts are covered through
their concrete examples."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import ListConfig, OmegaConf

from .conftest import REPO

CONFIG_OF = {
    "multimnist.train": "train",
    "multimnist.ensemble": "ensemble",
    "multimnist.synth": "synth",
    "multimnist.pretrain": "pretrain",
    "multimnist.predict": "predict",
    "multimnist.synth.show": "show",
    "multimnist.recipe": "recipe",
}


PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def readme_commands() -> list[str]:
    """The command lines in the code blocks of the README and every docs/ page."""
    lines = []
    for page in PAGES:
        inside = False
        for line in page.read_text().splitlines():
            if line.startswith("```"):
                inside = not inside
            elif inside:
                lines.append(line.split("  #")[0].strip())
    return [line for line in lines if line.startswith(("python -m multimnist", "torchrun ", "make "))]


COMMANDS = readme_commands()


def test_readme_shows_the_two_commands():
    assert "make demo" in COMMANDS and "make test" in COMMANDS


def test_readme_shows_scaling_out_commands():
    assert any(c.startswith("torchrun --standalone --nproc_per_node=") for c in COMMANDS)
    for launcher in ("parallel", "slurm", "local"):
        assert any(f"hydra/launcher={launcher} " in c for c in COMMANDS), launcher


@pytest.mark.parametrize("line", [c for c in COMMANDS if not c.startswith("make ")])
def test_python_commands_compose(line):
    words = shlex.split(line)
    at = words.index("-m")  # python -m ENTRY ... | torchrun [options] -m ENTRY ...
    entry, args = words[at + 1], [w for w in words[at + 2 :] if w != "-m"]
    if entry not in CONFIG_OF:
        pytest.skip(f"{entry} is not a Hydra entry point")
    if any(re.search(r"\[[^\]]*\|", a) or a.startswith("[") for a in args):
        pytest.skip("a syntax template; its concrete examples are tested")
    overrides = [a.split(",")[0] if a.startswith("fold=") else a for a in args]  # one job of a sweep
    if entry == "multimnist.recipe":  # its command line quotes the extra lists for Hydra
        from multimnist.recipe import quote_overrides

        overrides = [quote_overrides(a) for a in overrides]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            config_name=CONFIG_OF[entry],
            overrides=overrides,
            return_hydra_config=any(a.startswith("hydra") for a in overrides),
        )
    for a in overrides:
        key, value = a.split("=", 1)
        if (
            key
            in (
                "backbone",
                "experiment",
                "preset",
                "glyphs",
                "logger",
                "trainer",
                "hparams_search",
                "recipe",
                "synthetic",
            )
            or "/" in key
        ):
            continue  # group choices: composing them is the check
        node = cfg
        for part in key.split("."):
            node = node[part]
        if isinstance(node, ListConfig):  # typed lists hold their schema's type: [1,2] is [1.0, 2.0]
            assert OmegaConf.to_container(node) == yaml.safe_load(value.replace(",", ", "))
        elif isinstance(node, bool):
            assert node == yaml.safe_load(value)
        else:
            assert str(node).replace(" ", "").replace("'", "") == value.replace("'", "")


@pytest.mark.parametrize("line", [c for c in COMMANDS if c.startswith("make ")])
def test_make_commands_are_real_targets(line):
    done = subprocess.run(
        ["make", "-n", *shlex.split(line)[1:]], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_the_readme_stays_short_and_the_docs_stay_inside_the_repository():
    assert len((REPO / "README.md").read_text().splitlines()) < 200
    for page in PAGES:
        text = page.read_text()
        assert "../shared" not in text and "/work/" not in text, page.name
        for target in re.findall(r"\]\(([^)#]+)\)", text):  # relative links resolve
            if not target.startswith("http"):
                assert (page.parent / target).exists(), (page.name, target)
