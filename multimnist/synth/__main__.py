"""`python -m multimnist.synth out=DIR n_train=N n_test=M seed=S [preset=NAME] [glyphs=...]` (Hydra)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from multimnist.data.dacon import DatasetError
from multimnist.synth.compositor import Compositor, CompositorConfig
from multimnist.synth.distractors import distractor_bank
from multimnist.synth.generate import generate
from multimnist.synth.glyphs import load_glyphs


@dataclass
class GlyphsConfig:
    source: str = "procedural"
    path: Any = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SynthConfig:
    out: str = MISSING
    n_train: int = 2000
    n_test: int = 500
    seed: int = 0
    workers: int | None = None
    overwrite: bool = False
    progress: bool = True
    png_compression: int = 0
    compositor: CompositorConfig = field(default_factory=CompositorConfig)
    glyphs: GlyphsConfig = field(default_factory=GlyphsConfig)


ConfigStore.instance().store(name="synth_schema", node=SynthConfig)


def run(cfg: DictConfig) -> None:
    """Build the glyph bank and compositor from a composed config and write the dataset."""
    glyphs = load_glyphs(cfg.glyphs.source, cfg.glyphs.path, seed=cfg.seed, **cfg.glyphs.options)
    compositor = Compositor(
        CompositorConfig(**cfg.compositor), glyphs, distractor_bank(cfg.seed), seed=cfg.seed
    )
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
        provenance={"config": OmegaConf.to_container(cfg, resolve=True)},
    )
    print(
        f"wrote {summary.root}: {summary.n_train} train + {summary.n_test} test images "
        f"({len(glyphs)} {cfg.glyphs.source} glyphs) in {summary.seconds:.1f} s "
        f"({summary.images_per_second:.0f} img/s)"
    )


@hydra.main(version_base="1.3", config_path="../../conf", config_name="synth")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except (DatasetError, FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
