"""A training preset against a plain 40-line loop, on the same data, side by side.

    python scripts/bench_recipe.py [--glyphs dacon7 --glyphs-path DIR] [--preset "experiment=cpu"]
                                   [--layouts default apart clustered]

Data: eased but realistic (2-4 letters of 64-120 px, rotation within +-15 degrees, noise and 2-5
Hangul-like distractors; 8,000 train + 2,000 test), made with the chosen glyph source. Arms:
(a) the plain loop: four blocks of two 3x3 conv+BN+ReLU (32, 64, 128, 256) with 2x max-pool, global
    max pooling, linear head; Adam 1e-3 constant, bf16, batch 32, on all training images at 64 px,
    keep-255 denoise, threshold 0.5; it trains as many whole epochs as fit in arm (b)'s wall time
    (or `--loop-epochs`);
(b) the `cpu` preset's glyph pretraining (as `make demo` runs it; `--no-pretrain` skips it), then
    `python -m multimnist.train <preset> backbone.weights=... fold=0..4 -m` and the ensemble (its
    OOF-chosen decoding).
Prints each arm's wall time, test accuracy and the share of the all-zeros->perfect gap it closes.
A recipe is judged here on glyphs it was not shaped on: run it with both glyph sources, and on more
than one layout (`--layouts`, LAYOUTS below: how spread out and how overlapped the letters are).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from multimnist.build import make_loader
from multimnist.config import CONF_DIR
from multimnist.data.cache import cached_images
from multimnist.data.dacon import DaconLayout, load_split
from multimnist.data.dataset import DaconImages
from multimnist.decode import gap_closed
from multimnist.stages import Recipe, Stage, run_recipe

ROOT = Path(__file__).resolve().parents[1]
EASED = [
    "compositor.letters_min=2",
    "compositor.letters_max=4",
    "compositor.size_min=64",
    "compositor.size_max=120",
    "compositor.rotation=15",
]
LAYOUTS = {  # where the eased letters go: the compositor's overlap and spread knobs
    "default": [],  # the generator's: letters anywhere they fit, up to 15% of a letter's ink on earlier ink
    "apart": ["compositor.max_overlap=0"],  # letters never cover each other's ink
    "clustered": ["compositor.max_overlap=0.3", "compositor.spread=0.5"],  # centres in the middle quarter
}


def plain_net() -> nn.Module:
    layers, cin = [], 1
    for w in (32, 64, 128, 256):
        for _ in range(2):
            layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            cin = w
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(256, 26))


def plain_loop(data: Path, epochs: int | None, budget: float | None) -> tuple[float, float, int]:
    """(test accuracy, seconds, epochs) of the plain loop, data decoding included: `epochs` epochs, or
    as many whole epochs as fit in `budget` seconds (the last one's length predicts the next)."""
    start = time.perf_counter()
    torch.manual_seed(0)
    layout = DaconLayout(data)
    sets = {}
    for name in ("train", "test"):
        split = load_split(layout, name)
        images = cached_images(split, data / ".cache", 64, True, progress=False)
        sets[name] = DaconImages(split, img_size=64, denoise=True, images=images)
    model, loss_fn = plain_net(), nn.BCEWithLogitsLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    train = torch.utils.data.DataLoader(sets["train"], batch_size=32, shuffle=True)
    done = 0
    while epochs is None or done < epochs:
        epoch_start = time.perf_counter()
        model.train()
        for x, y, _ in train:
            x = x.float() / 255  # the dataset gives uint8 images
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(x)
            loss = loss_fn(out.float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        done += 1
        now = time.perf_counter()
        if budget is not None and now + (now - epoch_start) - start > budget:
            break
    model.eval()
    preds, labels = [], []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for x, y, _ in make_loader(sets["test"], batch_size=128):
            preds.append((model(x.float() / 255).float() > 0).numpy())
            labels.append(y.numpy() > 0.5)
    acc = float((np.concatenate(preds) == np.concatenate(labels)).mean())
    return acc, time.perf_counter() - start, done


def preset_run(
    data: Path, synth: list[str], preset: list[str], exps: Path, exp: str, pretrain: bool
) -> tuple[float, float, float]:
    """(test accuracy, OOF accuracy, seconds) of a 5-fold preset sweep and its ensemble, through the
    recipe runner: the data first (not timed), then with `pretrain` the `cpu` preset's glyph
    pretraining as `make demo` runs it (recipe=demo's pretrain stage), inside the budget. A re-run
    reuses finished stages with their recorded seconds, so the loop still gets the preset's budget."""
    stages = [Stage("data", "synth", args=synth)]
    if pretrain:
        demo_pretrain = OmegaConf.load(CONF_DIR / "recipe" / "demo.yaml").stages.pretrain
        stages.append(Stage("pretrain", "pretrain", exp=f"{exp}_glyphs", args=list(demo_pretrain.args)))
    stages.append(Stage("folds", "train", exp=exp, args=preset, weights="pretrain" if pretrain else None))
    stages.append(Stage("ensemble", "ensemble", exp=exp))
    result = run_recipe(Recipe(f"bench-recipe {exp}", stages, str(data), str(exps)))
    seconds = [r["seconds"] for r in result["stages"] if r["stage"] != "data"]
    budget = sum(seconds) if None not in seconds else float("nan")
    return result["test_accuracy"], result["oof_accuracy"], budget


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--glyphs", default="procedural", choices=("procedural", "dacon7"))
    parser.add_argument("--glyphs-path", default=None)
    parser.add_argument("--preset", default="experiment=cpu", help="train overrides of arm (b)")
    parser.add_argument(
        "--loop-epochs", type=int, default=None, help="fixed epochs (default: the preset's wall time)"
    )
    parser.add_argument(
        "--no-pretrain",
        action="store_true",
        help="arm (b) without the cpu preset's vgg_narrow glyph pretraining (presets with other backbones)",
    )
    parser.add_argument(
        "--layouts", nargs="+", default=["default"], choices=tuple(LAYOUTS), help="one pair of rows each"
    )
    parser.add_argument("--experiments", default=str(ROOT / "experiments"))
    args = parser.parse_args()
    for layout in args.layouts:
        run_layout(args, layout)
    return 0


def run_layout(args: argparse.Namespace, layout: str) -> None:
    """Both arms on one layout's data (generated on first use), printed as two rows."""
    name = f"recipe_{args.glyphs}" + ("" if layout == "default" else f"_{layout}")
    data = ROOT / "data" / name
    glyphs = [f"glyphs={args.glyphs}"] + ([f"glyphs.path={args.glyphs_path}"] if args.glyphs_path else [])
    synth = ["n_train=8000", "n_test=2000", "seed=5", *EASED, *LAYOUTS[layout], *glyphs]
    preset = shlex.split(args.preset)
    exp = f"{name}_" + "_".join(p.replace("=", "-").replace(".", "-") for p in preset)
    exp += "_scratch" if args.no_pretrain else ""
    rows = []
    acc, oof, budget = preset_run(data, synth, preset, Path(args.experiments), exp, not args.no_pretrain)
    floor = float(1 - load_split(DaconLayout(data), "test").labels.mean())
    how = "5 folds + ensemble" if args.no_pretrain else "glyph pretraining + 5 folds + ensemble"
    rows.append((f"multimnist.train {args.preset}, {how}", acc, oof, budget))
    acc, seconds, epochs = plain_loop(data, args.loop_epochs, None if args.loop_epochs else budget)
    rows.insert(0, (f"plain loop, {epochs} epochs", acc, None, seconds))
    knobs = " ".join(k.removeprefix("compositor.") for k in LAYOUTS[layout]) or "max_overlap=0.15 spread=1"
    print(
        f"data: {data.name} ({args.glyphs} glyphs, 2-4 letters, 64-120 px, +-15 deg;"
        f" layout {layout}: {knobs}),"
        f" floor {floor:.4f}",
        flush=True,
    )
    for name, acc, oof, seconds in rows:
        gap = gap_closed(acc, floor)
        oof_text = f", OOF {oof:.4f}" if oof is not None else ""
        print(
            f"  {name:<60} {seconds / 60:5.1f} min  test {acc:.4f}{oof_text}  gap closed {gap:.1%}",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
