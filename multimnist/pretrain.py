"""Glyph pretraining: `python -m multimnist.pretrain backbone=B exp=NAME [glyphs=...] [preset=...]` (Hydra).

Writes `<paths.experiments>/<exp>/pretrain/weights.pt`; fold training starts from it with
`backbone.weights=FILE`. The steps live in `multimnist.pretraining` (imported when the job runs,
so `--help` starts without torch).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from multimnist.cli import report, run_cli


@hydra.main(version_base="1.3", config_path="pkg://multimnist.conf", config_name="pretrain")
def main(cfg: DictConfig) -> None:
    from multimnist.pretraining import run_pretrain

    report(
        lambda: run_pretrain(cfg),
        "last.pt holds the last finished epoch: re-run the same command to resume",
        exp=cfg.exp,
    )


def cli() -> None:
    """The console script (multimnist-...): the same as python -m."""
    run_cli(main)


if __name__ == "__main__":
    cli()
