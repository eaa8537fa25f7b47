"""The recipe runner (multimnist.stages, multimnist.recipe): the shipped recipes compose and link up,
the plumbing a stage gets, finished stages skipped with their recorded time, a failing stage as one
line naming it, and the command line's own checks. Real stages run in test_package.py (the
self-training recipe, from the installed wheel) and test_slow_pipeline.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from multimnist import stages as st
from multimnist.config import CONF_DIR, compose
from multimnist.recipe import quote_overrides
from multimnist.rundir import ENSEMBLE_RECORD, FINISHED_MARK, PRETRAIN_WEIGHTS

from .conftest import REPO

RECIPES = sorted(p.stem for p in (CONF_DIR / "recipe").glob("*.yaml"))


def recipe_of(name: str, *overrides: str) -> st.Recipe:
    given = [f"recipe={name}", "data.root=dacon", "mnist_data=mnist_data/", *overrides]
    cfg = compose("recipe", [quote_overrides(o) for o in given])  # as the command line passes them
    return st.Recipe.from_mapping(name, OmegaConf.to_container(cfg, resolve=True))


@pytest.mark.parametrize("name", RECIPES)
def test_every_shipped_recipe_composes_links_up_and_each_stage_composes(name):
    recipe = recipe_of(name)
    st.check(recipe)
    assert recipe.stages[-1].command == "ensemble"
    for s in recipe.stages:  # each stage's command line composes in its own entry point's config
        args = [a for a in st.argv(recipe, s) if a != "-m"]
        args = [a.split(",")[0] if a.startswith("fold=") else a for a in args]  # one job of the sweep
        cfg = compose(s.command, args)
        if s.command in ("pretrain", "train"):
            assert cfg.exp == s.exp
        if s.weights:
            assert cfg.backbone.weights.endswith(f"{recipe.stage(s.weights).exp}/pretrain/{PRETRAIN_WEIGHTS}")


def test_the_gpu_recipe_is_imagenet_weights_and_the_stream_without_glyph_pretraining():
    recipe = recipe_of("gpu_full")
    assert [s.command for s in recipe.stages] == ["train", "ensemble"]
    cfg = compose("train", [a for a in st.argv(recipe, recipe.stages[0]) if a != "-m" and "fold=" not in a])
    assert cfg.backbone.pretrained and cfg.data.synthetic.per_epoch > 0
    assert cfg.data.synthetic.glyphs.path == "mnist_data/" and cfg.trainer.tta_views == 4


def test_self_training_harvests_the_first_folds_and_starts_from_the_first_weights():
    recipe = recipe_of("self_training", "paths.experiments=exps")
    line = st.argv(recipe, recipe.stage("repretrain"))
    assert "harvest.exp=demo_full" in line
    assert f"backbone.weights=exps/glyphs_fcn_e60/pretrain/{PRETRAIN_WEIGHTS}" in line
    refolds = st.argv(recipe, recipe.stage("refolds"))
    assert f"backbone.weights=exps/self_demo_full/pretrain/{PRETRAIN_WEIGHTS}" in refolds
    assert refolds[-2:] == ["fold=0,1,2,3,4", "-m"]


def test_user_extras_come_last_so_they_win(tmp_path):
    recipe = recipe_of("demo", "extra.train=[trainer.epochs=1]", "stages.folds.extra=[trainer.seed=3]")
    line = st.argv(recipe, recipe.stage("folds"))
    assert line[-4:] == ["trainer.epochs=1", "trainer.seed=3", "fold=0,1,2,3,4", "-m"]
    assert "trainer.epochs=1" not in st.argv(recipe, recipe.stage("pretrain"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weights": "ensemble"}, "stages.folds.weights=ensemble: want an earlier pretrain stage"),
        ({"weights": "later"}, "stages.folds.weights=later: want an earlier pretrain stage"),
        ({"harvest": "pretrain"}, "stages.folds.harvest: a train stage takes no harvest"),
        ({"exp": None}, "stages.folds.exp: required for a train stage"),
    ],
)
def test_a_recipe_that_cannot_run_is_refused_naming_the_stage_key(change, message):
    recipe = recipe_of("demo")
    for key, value in change.items():
        setattr(recipe.stage("folds"), key, value)
    with pytest.raises(ValueError, match=message):
        st.check(recipe)


class FakeCommands:
    """Stands in for run_command: makes each stage's outputs and counts what ran."""

    def __init__(self, recipe: st.Recipe) -> None:
        self.recipe, self.ran = recipe, []

    def __call__(self, module: str, args: list[str]) -> float:
        stage = next(s for s in self.recipe.stages if st.argv(self.recipe, s) == args)
        self.ran.append(stage.name)
        exps = Path(self.recipe.experiments)
        if stage.command == "synth":
            out = Path(self.recipe.data_root)
            out.mkdir(parents=True, exist_ok=True)
            (out / "synth.json").write_text(json.dumps({"config": {"n_train": 4, "n_test": 2}}))
        elif stage.command == "pretrain":
            (exps / stage.exp / "pretrain").mkdir(parents=True)
            (exps / stage.exp / "pretrain" / PRETRAIN_WEIGHTS).write_text("w")
        elif stage.command == "train":
            for k in self.recipe.folds:
                (exps / stage.exp / f"fold{k}").mkdir(parents=True)
                (exps / stage.exp / f"fold{k}" / FINISHED_MARK).write_text("")
        else:
            report = {"test_accuracy": 0.8, "floor": 0.6, "gap_closed": 0.5, "oof_accuracy": 0.7, "folds": {}}
            (exps / stage.exp / "ensemble").mkdir(parents=True, exist_ok=True)
            (exps / stage.exp / "ensemble" / ENSEMBLE_RECORD).write_text(json.dumps(report))
        return 60.0


def test_finished_stages_are_skipped_with_their_recorded_minutes_and_a_changed_stage_runs_again(
    tmp_path, monkeypatch
):
    recipe = recipe_of("demo", f"data.root={tmp_path / 'data'}", f"paths.experiments={tmp_path / 'exps'}")
    fake = FakeCommands(recipe)
    monkeypatch.setattr(st, "run_command", fake)
    first = st.run_recipe(recipe)
    assert fake.ran == ["data", "pretrain", "folds", "ensemble"] and first["minutes"] == 4.0
    written = json.loads((tmp_path / "exps" / "demo" / st.RECIPE_RECORD).read_text())
    assert written["gap_closed"] == 0.5 and [r["status"] for r in written["stages"]] == ["ran"] * 4

    again = st.run_recipe(recipe)  # a second invocation: nothing runs, the times are the recorded ones
    assert fake.ran == ["data", "pretrain", "folds", "ensemble"] and again["minutes"] == 4.0
    assert [r["status"] for r in again["stages"]] == ["skipped"] * 4

    recipe.stage("ensemble").extra = ["ensemble.decoding=global"]  # another command for the same output
    st.run_recipe(recipe)
    assert fake.ran[4:] == ["ensemble"]


def test_the_same_stage_through_another_spelling_of_its_paths_is_still_finished(tmp_path, monkeypatch):
    recipe = recipe_of("demo", f"data.root={tmp_path / 'data'}", f"paths.experiments={tmp_path / 'exps'}")
    fake = FakeCommands(recipe)
    monkeypatch.setattr(st, "run_command", fake)
    st.run_recipe(recipe)
    monkeypatch.chdir(tmp_path)
    relative = recipe_of("demo", "data.root=data", "paths.experiments=exps")
    st.run_recipe(relative)
    assert fake.ran == ["data", "pretrain", "folds", "ensemble"]


def test_a_failing_stage_stops_the_recipe_with_its_error_line_naming_the_stage(tmp_path, monkeypatch):
    recipe = recipe_of("demo", f"data.root={tmp_path / 'data'}", f"paths.experiments={tmp_path / 'exps'}")
    fake = FakeCommands(recipe)

    def fails_on_train(module, args):
        if module == "multimnist.train":
            raise st.StageFailed("trainer.epochs must be >= 1, got 0", 2)
        return fake(module, args)

    monkeypatch.setattr(st, "run_command", fails_on_train)
    with pytest.raises(
        st.StageFailed, match=r"^stage folds \(multimnist.train\): trainer.epochs must be"
    ) as failed:
        st.run_recipe(recipe)
    assert failed.value.code == 2 and fake.ran == ["data", "pretrain"]
    assert not (tmp_path / "exps" / "demo" / st.RECIPE_RECORD).exists()


def test_run_command_holds_back_the_commands_error_line_and_raises_it():
    with pytest.raises(st.StageFailed, match="^fold=9 is outside 0..4") as failed:
        st.run_command("multimnist.train", ["data.root=nowhere", "fold=9"])
    assert failed.value.code == 2


def test_a_recipe_that_generates_data_never_writes_into_a_folder_of_other_files(tmp_path):
    (tmp_path / "dacon").mkdir()
    (tmp_path / "dacon" / "dirty_mnist_2nd_answer.csv").write_text("index,a\n")
    recipe = recipe_of("demo", f"data.root={tmp_path / 'dacon'}", f"paths.experiments={tmp_path}")
    with pytest.raises(ValueError, match="holds files the generator did not write"):
        st.run_recipe(recipe)
    assert [p.name for p in (tmp_path / "dacon").iterdir()] == ["dirty_mnist_2nd_answer.csv"]


def test_extra_lists_are_quoted_for_hydra_as_typed():
    assert (
        quote_overrides("extra.train=[trainer.epochs=1,fold=0,1]")
        == 'extra.train=["trainer.epochs=1","fold=0,1"]'
    )
    assert (
        quote_overrides("stages.x.extra=[a.b=1,ensemble.experiments=[a,b]]")
        == 'stages.x.extra=["a.b=1","ensemble.experiments=[a,b]"]'
    )
    assert quote_overrides("data.root=x") == "data.root=x"
    assert quote_overrides('extra.train=["a=1"]') == 'extra.train=["a=1"]'


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "multimnist.recipe", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_the_command_line_lists_its_recipes_and_refuses_what_is_missing_in_one_line():
    helped = cli("--help")
    assert helped.returncode == 0 and all(f"  {name}: " in helped.stdout for name in RECIPES)
    assert "Docs: " in helped.stdout and "recipes.md" in helped.stdout
    for args, expected in [
        ((), "error: recipe=NAME: required; recipes: cpu_full, demo"),
        (("recipe=gpu_full", "data.root=x"), "error: mnist_data: required by recipe gpu_full"),
        (("recipe=gpu_full",), "error: data.root: required"),
        (("recipe=dmo",), "error: recipe=dmo: no such option; did you mean demo?"),
    ]:
        done = cli(*args)
        assert done.returncode == 2 and done.stderr.startswith(expected), (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1


def test_a_dry_run_prints_every_stage_command_and_runs_nothing(tmp_path):
    done = cli("recipe=self_training", "dry_run=true", "extra.train=[trainer.epochs=1]", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    commands = [line.strip() for line in done.stdout.splitlines() if line.startswith("  python -m")]
    assert len(commands) == 7 and all(
        "trainer.epochs=1 fold=0,1,2,3,4 -m" in c for c in commands if ".train " in c
    )
    assert not any(tmp_path.iterdir())


def test_the_make_targets_run_the_shipped_recipes():
    makefile = (REPO / "Makefile").read_text()
    assert (
        "-m multimnist.recipe recipe=demo " in makefile
        and "-m multimnist.recipe recipe=demo_full " in makefile
    )
    assert not (REPO / "scripts" / "demo.py").exists() and not (REPO / "scripts" / "gpu_full.py").exists()


def test_scripts_run_the_packages_commands_only_through_the_runner():
    """One runner: a script that starts processes itself would be a second one. bench_scale is the
    exception: it runs each of its own stages in a fresh process to measure that stage's peak memory."""
    for script in sorted((REPO / "scripts").glob("*.py")):
        if script.name != "bench_scale.py":
            assert "subprocess" not in script.read_text(), script.name
