"""`python -m multimnist.synth out=DIR n_train=N n_test=M seed=S [preset=NAME] [glyphs=...]` (Hydra)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from multimnist.cli import report, run_cli
from multimnist.config import validate
from multimnist.data.dacon import DatasetError
from multimnist.synth.compositor import Compositor, CompositorConfig
from multimnist.synth.distractors import distractor_bank
from multimnist.synth.generate import check_out, generate
from multimnist.synth.glyphs import GlyphBank, load_glyphs, split_families


def subset_or_fail(glyphs: GlyphBank, rows, side: str) -> GlyphBank:
    """The train or test images' share of the glyphs; one line naming the key when it lacks a letter."""
    try:
        return glyphs.subset(rows)
    except DatasetError as err:
        raise DatasetError(f"test_glyphs_held_out: the {side} images' share of glyphs: {err}") from None


def run(cfg: DictConfig) -> None:
    """Build the glyph bank and compositor from a composed config and write the dataset."""
    validate(cfg)
    check_out(cfg.out, cfg.overwrite)  # before the glyph bank, which takes seconds
    glyphs = load_glyphs(
        cfg.glyphs.source, cfg.glyphs.path, seed=cfg.seed, pool=cfg.glyphs.pool, **cfg.glyphs.options
    )
    options, distractors = CompositorConfig(**cfg.compositor), distractor_bank(cfg.seed)
    test_compositor, held = None, ""
    if cfg.test_glyphs_held_out > 0:  # test images drawn from glyph families train images never use
        train_rows, test_rows = split_families(
            glyphs.families, cfg.test_glyphs_held_out, cfg.seed, glyphs.letters
        )
        test_bank = subset_or_fail(glyphs, test_rows, "test")
        glyphs = subset_or_fail(glyphs, train_rows, "train")
        test_compositor = Compositor(options, test_bank, distractors, seed=cfg.seed)
        held = f"; test images use {len(test_bank)} other glyphs"
    compositor = Compositor(options, glyphs, distractors, seed=cfg.seed)
    summary = generate(
        cfg.out,
        compositor,
        cfg.n_train,
        cfg.n_test,
        seed=cfg.seed,
        workers=cfg.workers,
        progress=cfg.progress,
        overwrite=cfg.overwrite,
        png_compression=cfg.png_compression,
        test_compositor=test_compositor,
        provenance={"config": OmegaConf.to_container(cfg, resolve=True)},
    )
    print(
        f"wrote {summary.root}: {summary.n_train} train + {summary.n_test} test images "
        f"({len(glyphs)} {cfg.glyphs.source} glyphs{held}) in {summary.seconds:.1f} s "
        f"({summary.images_per_second:.0f} img/s)"
    )


@hydra.main(version_base="1.3", config_path="pkg://multimnist.conf", config_name="synth")
def main(cfg: DictConfig) -> None:
    report(lambda: run(cfg))


def cli() -> None:
    """The console script (multimnist-...): the same as python -m."""
    run_cli(main)


if __name__ == "__main__":
    cli()
