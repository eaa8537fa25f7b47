"""A picture of the data: `python -m multimnist.synth.show out=FILE.png [preset=NAME] [glyphs=...]
[real=DIR]` (Hydra; `make show-data`).

Draws `n` generated images with their letters, exactly as the generator would write them (same
preset, glyph source, seed rule), and beside them up to `n` PNGs from `real=DIR` (say, a few real
competition images) so the two can be compared by eye.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from multimnist.cli import report, run_cli  # noqa: E402
from multimnist.config import validate  # noqa: E402
from multimnist.data.dacon import DatasetError, decode_gray, image_name  # noqa: E402
from multimnist.io import ensure_writable  # noqa: E402
from multimnist.labels import LETTERS  # noqa: E402
from multimnist.plots import save_figure  # noqa: E402
from multimnist.synth.compositor import Compositor, CompositorConfig  # noqa: E402
from multimnist.synth.distractors import distractor_bank  # noqa: E402
from multimnist.synth.glyphs import load_glyphs  # noqa: E402


def real_images(folder: str | None, n: int) -> list[tuple[str, np.ndarray]]:
    """Up to `n` PNGs of `folder` by name (none when no folder is given)."""
    if folder is None:
        return []
    path = Path(folder)
    if not path.is_dir():
        raise DatasetError(f"real={folder}: folder not found")
    return [(p.name, decode_gray(p)) for p in sorted(path.glob("*.png"))[:n]]


def generated_images(compositor: Compositor, seed: int, n: int) -> list[tuple[list[int], np.ndarray]]:
    """(letters, image) of train images 0..n-1 by the generator's per-image seed rule: the very
    images `python -m multimnist.synth` writes with this compositor and seed."""
    comps = [compositor.compose(np.random.default_rng([seed, 0, i])) for i in range(n)]
    return [(list(c.letters), c.image) for c in comps]


def preview(cfg: DictConfig) -> Path:
    validate(cfg)
    out = Path(cfg.out)
    ensure_writable(out.parent, "out", out)
    real = real_images(cfg.real, cfg.n)
    glyphs = load_glyphs(
        cfg.glyphs.source, cfg.glyphs.path, seed=cfg.seed, pool=cfg.glyphs.pool, **cfg.glyphs.options
    )
    compositor = Compositor(
        CompositorConfig(**cfg.compositor), glyphs, distractor_bank(cfg.seed), seed=cfg.seed
    )
    tiles = [
        (f"synthetic {image_name(i)}\n{''.join(LETTERS[k] for k in sorted(letters))}", img)
        for i, (letters, img) in enumerate(generated_images(compositor, cfg.seed, cfg.n))
    ]
    tiles += [(f"real {name}", img) for name, img in real]
    cols = min(4, len(tiles))
    rows = -(-len(tiles) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, img) in zip(axes.flat, tiles, strict=False):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=8)
    fig.suptitle(f"{cfg.glyphs.source} glyphs, {cfg.n} generated" + (f", {len(real)} real" if real else ""))
    save_figure(fig, out)
    print(f"wrote {out}: {cfg.n} generated image(s)" + (f" beside {len(real)} real one(s)" if real else ""))
    return out


@hydra.main(version_base="1.3", config_path="pkg://multimnist.conf", config_name="show")
def main(cfg: DictConfig) -> None:
    report(lambda: preview(cfg))


def cli() -> None:
    """The console script (multimnist-...): the same as python -m."""
    run_cli(main)


if __name__ == "__main__":
    cli()
