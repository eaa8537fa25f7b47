"""Run a whole recipe: `python -m multimnist.recipe recipe=NAME [data.root=DIR] [mnist_data=mnist_data/]`.

A recipe (conf/recipe/NAME.yaml) is its stages in order, each one of the package's commands with
its overrides: generate data, glyph pretraining, the fold sweep, the ensemble, and again for
self-training. Finished stages are skipped, so re-running goes on where a stopped run ended. Prints
the stage table (minutes, figure) and the share of the all-zeros -> perfect gap closed, and writes
recipe.json beside the last ensemble. The stages run in `multimnist.stages`.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from multimnist.cli import report, require_keys, run_cli

USAGE = "python -m multimnist.recipe recipe=NAME [data.root=DIR] [mnist_data=DIR] (--help lists the recipes)"


def summary(result: dict) -> list[str]:
    """The closing lines: the test score against the floor, the bar, the folds, where things are."""
    lines = []
    acc, floor, closed, bar = result["test_accuracy"], result["floor"], result["gap_closed"], result["bar"]
    if acc is not None:
        verdict = "" if bar is None else f" ({'PASS' if closed >= bar else 'BELOW'} the {bar:.0%} bar)"
        lines.append(
            f"test accuracy {acc:.4f} vs all-zeros floor {floor:.4f}: {closed:.1%} of the gap to perfect "
            f"closed{verdict}"
        )
    folds = result.get("folds") or {}
    if folds.get("runs"):
        aucs = ", ".join(f"{r['oof_auc']:.3f}" for r in folds["runs"])
        lines.append(f"OOF accuracy {result['oof_accuracy']:.4f}; macro ROC-AUC per fold {aucs}")
    minutes = result["minutes"]
    total = "unknown (a stage ran before times were kept)" if minutes is None else f"{minutes:.1f} min"
    lines.append(f"total {total}")
    return lines


def require_mnist_data(cfg: DictConfig, name: str) -> None:
    """A recipe whose stages read `${mnist_data}` needs it given; one line saying so, before anything runs."""
    if cfg.mnist_data is not None:
        return
    raw = OmegaConf.to_container(cfg.stages, resolve=False)
    if "${mnist_data}" in str(raw):
        print(
            f"error: mnist_data: required by recipe {name} (its stages use the competition's letters): "
            "mnist_data=DIR, the folder of mnist_data.zip (train.csv, test.csv)",
            file=sys.stderr,
        )
        sys.exit(2)


def run(cfg: DictConfig, name: str) -> int:
    from multimnist.config import validate
    from multimnist.rundir import ensemble_dir
    from multimnist.stages import RECIPE_RECORD, Recipe, run_recipe, say, table

    validate(cfg)
    recipe = Recipe.from_mapping(name, OmegaConf.to_container(cfg, resolve=True))
    result = run_recipe(recipe, dry_run=cfg.dry_run)
    if cfg.dry_run:
        return 0
    print(f"\n{table(result['stages'])}\n", flush=True)
    if "exp" not in result:  # no ensemble stage: nothing scored
        return 0
    for line in summary(result):
        say(line)
    where = ensemble_dir(recipe.experiments, result["exp"])
    say(f"submission, report.md and figures: {where}/; this table: {where.parent / RECIPE_RECORD}")
    bar, closed = result["bar"], result["gap_closed"]
    return 1 if bar is not None and closed is not None and closed < bar else 0


@hydra.main(version_base="1.3", config_path="pkg://multimnist.conf", config_name="recipe")
def main(cfg: DictConfig) -> int:
    from hydra.core.hydra_config import HydraConfig

    name = HydraConfig.get().runtime.choices.get("recipe")
    if name is None:
        from multimnist.config import group_options

        options = group_options("recipe").strip().replace("recipe: ", "")
        print(f"error: recipe=NAME: required; recipes: {options} (--help says what each is)", file=sys.stderr)
        sys.exit(2)
    require_keys(cfg, USAGE)
    require_mnist_data(cfg, name)

    def job() -> int:
        from multimnist.stages import StageFailed

        try:
            return run(cfg, name)
        except StageFailed as failed:
            if failed.code == 130:  # Ctrl-C: not an error; the stage resumes on the next run
                print(f"{failed}; re-run the same command to go on", file=sys.stderr)
                sys.exit(130)
            again = "fix it and re-run the same command (finished stages are skipped)"
            print(f"error: {failed}; {again}", file=sys.stderr)
            sys.exit(2 if failed.code == 2 else 1)

    code = report(job)
    if code:
        sys.exit(code)
    return code


def quote_overrides(arg: str) -> str:
    """`extra.train=[trainer.epochs=1,fold=0,1]` as Hydra's grammar wants it: each element of an
    extra list, split at its top-level commas, quoted (Hydra refuses an `=` inside a bare element).
    Commas inside a value's own brackets stay (`ensemble.experiments=[a,b]`); a comma that starts no
    key=value joins the element before it (`fold=0,1`). Other arguments are returned as given."""
    key, eq, value = arg.partition("=")
    if not eq or not (key.startswith("extra.") or key.endswith(".extra")) or not value.startswith("["):
        return arg
    if not value.endswith("]") or '"' in value or "'" in value:
        return arg
    parts, depth, current = [], 0, ""
    for ch in value[1:-1]:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    elements: list[str] = []
    for part in (p.strip() for p in parts if p.strip()):
        if elements and "=" not in part:
            elements[-1] += "," + part
        else:
            elements.append(part)
    return f"{key}=[" + ",".join(f'"{e}"' for e in elements) + "]"


def cli() -> None:
    """The console script (multimnist-recipe): the same as python -m."""
    sys.argv[1:] = [quote_overrides(a) for a in sys.argv[1:]]
    run_cli(main)


if __name__ == "__main__":
    cli()
