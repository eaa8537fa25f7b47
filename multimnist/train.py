"""Train one fold: `python -m multimnist.train data.root=DIR exp=NAME backbone=B fold=K` (Hydra).

Sweep folds with `fold=0,1,2,3,4 -m`; several GPUs for one fold:
`torchrun --standalone --nproc_per_node=N -m multimnist.train ...`. The steps live in
`multimnist.fold` (imported when the job runs, so `--help` starts without torch).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from multimnist.cli import remove_empty_job_dir, report, run_cli


def preflight(cfg: DictConfig) -> None:
    """The checks that need no torch: every value in range (fold within the folds, ...), the
    pretrained weights reachable when asked for (timm, no torch model), the data root there, wandb
    installed when logger=wandb. A mistake fails in seconds, before any data work."""
    from multimnist.config import validate
    from multimnist.data.dacon import DaconLayout, require_root

    validate(cfg)
    if cfg.backbone.pretrained or cfg.backbone.pretrained_file is not None:  # weights first, as before
        from multimnist.pretrained import require_pretrained  # timm: only when weights are asked for

        require_pretrained(cfg.backbone.name, cfg.backbone.pretrained, cfg.backbone.pretrained_file)
    require_root(DaconLayout.from_mapping(cfg.data))
    if cfg.logger.wandb is not None:
        from multimnist.tracking import require_wandb

        require_wandb()


@hydra.main(version_base="1.3", config_path="pkg://multimnist.conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Returns the fold's best val_loss, so a sweeper (hparams_search=optuna) can minimise it."""

    def job() -> float | None:
        preflight(cfg)  # seconds: before torch and timm load
        from multimnist.fold import best_val_loss, run_fold

        return best_val_loss(run_fold(cfg))

    try:
        return report(
            job,
            "last.pt holds the last finished epoch: re-run the same command to resume",
            exp=cfg.exp,
        )
    finally:
        remove_empty_job_dir()


def cli() -> None:
    """The console script (multimnist-...): the same as python -m."""
    run_cli(main)


if __name__ == "__main__":
    cli()
