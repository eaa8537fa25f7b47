"""Trainer overhead: the model loop on in-memory random tensors (a) vs the trainer on a dataset from disk (b).

    python scripts/bench_train.py [--backbone small_cnn] [--img-size 64] [--batch 64] [--precision bf16]
                                  [KEY=VALUE ...]

KEY=VALUE: train-config overrides of the network (e.g. backbone.head=per_location
backbone.truncate_stride=16); it is built without any pretrained weights (speed does not need them).

Same model, batch, precision and channels_last in both; (b) is `engine.train_one_epoch` over the real
DataLoader of a generated dataset (decoded once into the memmap cache, as training does). The ratio
b/a is what the data path costs; goal >= 0.95 on CPU. Prints both figures and the ratio (the median
of adjacent pairs, since whole runs on a shared VM drift by tens of percent).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from multimnist.build import build_loss, build_model, build_optimizer, make_loader, place_model
from multimnist.config import compose, model_args
from multimnist.data.cache import cached_images
from multimnist.data.dacon import DaconLayout, load_split
from multimnist.data.dataset import DaconImages
from multimnist.engine import TrainStep, resolve_device, resolve_precision, train_one_epoch
from multimnist.synth.compositor import Compositor, CompositorConfig
from multimnist.synth.distractors import distractor_bank
from multimnist.synth.generate import generate
from multimnist.synth.glyphs import procedural_bank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="small_cnn", help="a conf/backbone option (default small_cnn)")
    parser.add_argument("--img-size", type=int, default=None, help="default: the backbone's img_size")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for (b)")
    parser.add_argument("--n", type=int, default=4096, help="training images (both measurements)")
    parser.add_argument(
        "--repeats", type=int, default=7, help="alternating (a, b) pairs; the ratio is their median"
    )
    parser.add_argument(
        "--compile",
        default="none",
        choices=("none", "default", "reduce-overhead", "max-autotune"),
        help="torch.compile the model for both (a) and (b); reduce-overhead uses CUDA graphs on a GPU",
    )
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE train-config overrides of the network")
    args = parser.parse_args()
    cfg = compose("train", [f"backbone={args.backbone}", *args.overrides])
    b = cfg.backbone
    size = args.img_size or b.img_size
    device = resolve_device("auto")
    precision = resolve_precision(args.precision, device)
    torch.manual_seed(0)
    model, batching = place_model(
        build_model(**model_args(cfg) | {"pretrained": False, "weights": None}),
        device,
        b.in_chans,
        args.channels_last,
    )
    optimizer = build_optimizer(model, "adam", lr=1e-3)
    if (
        args.compile != "none"
    ):  # the optimizer keeps the original parameters; the step runs the compiled module
        model = torch.compile(model, mode=args.compile)
    loss_fn = build_loss("bce")
    scaler = torch.amp.GradScaler(device.type, enabled=precision.needs_scaler)
    step = TrainStep(model, loss_fn, optimizer, batching, precision, scaler, progress=False)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        compositor = Compositor(CompositorConfig(), procedural_bank(0, variants=1), distractor_bank(0))
        generate(root, compositor, n_train=args.n, n_test=1, seed=0, progress=False)
        split = load_split(DaconLayout(root), "train")
        images = cached_images(split, Path(tmp) / "cache", size, denoise=True, progress=False)
        ds = DaconImages(split, img_size=size, denoise=True, images=images)
        loader = make_loader(ds, batch_size=args.batch, num_workers=args.workers)
        xs = torch.randint(0, 256, (args.batch, 1, size, size), dtype=torch.uint8)  # as the dataset gives
        ys = (torch.rand(args.batch, 26) < 0.46).float()
        steps = len(loader)

        def raw() -> float:
            model.train()
            start = time.perf_counter()
            for _ in range(steps):
                x = batching(xs)
                with torch.autocast(device.type, dtype=precision.dtype, enabled=precision.dtype is not None):
                    out = model(x)
                loss = loss_fn(out.float(), ys.to(device))
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                loss.item()
            return steps * args.batch / (time.perf_counter() - start)

        def trainer() -> float:
            result = train_one_epoch(step, loader, epoch=0, num_updates=0)
            return result.images / result.seconds

        raw(), trainer()  # warm-up: allocator, oneDNN kernels, page cache
        # Adjacent a/b pairs share the machine's state: the median of pair ratios resists the noise of a
        # shared 2-core VM (whole runs here vary by +-30% from one minute to the next).
        runs = [(raw(), trainer()) for _ in range(args.repeats)]
        a, bb = float(np.median([r[0] for r in runs])), float(np.median([r[1] for r in runs]))
        ratio = float(np.median([y / x for x, y in runs]))
    print(
        f"model {b.name} at {size}px, batch {args.batch}, {precision.name}, "
        f"channels_last={args.channels_last}, compile={args.compile}, device {device}, {args.n} images, "
        f"workers {args.workers}"
    )
    print("pairs (a, b) img/s:", ", ".join(f"({x:.0f}, {y:.0f})" for x, y in runs))
    print(f"(a) model loop on in-memory random tensors: {a:8.0f} img/s (median)")
    print(f"(b) trainer on the dataset from disk:       {bb:8.0f} img/s (median)")
    print(f"ratio b/a = {ratio:.3f} (median of {len(runs)} adjacent pairs; goal >= 0.95 on CPU)")


if __name__ == "__main__":
    main()
