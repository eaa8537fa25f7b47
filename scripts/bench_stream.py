"""The synthetic stream's speed beside the trainer's appetite: how many loader workers keep it fed.

    python scripts/bench_stream.py [--backbone B] [--batch 32] [--glyphs dacon7 --glyphs-path DIR]

(a) the generator: stream images composed, preprocessed and augmented in one process (img/s per
worker); (b) the same through a DataLoader with --workers processes; (c) the trainer's consumption:
the backbone's update loop on in-memory uint8 batches (as bench_train's model loop), at the batch,
precision and channels_last given. Workers needed = ceil(c / a). Every figure comes from this one run.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from multimnist.build import (
    build_loss,
    build_model,
    build_optimizer,
    make_loader,
    place_model,
    synthetic_stream,
)
from multimnist.config import compose, dataset_args
from multimnist.engine import resolve_device, resolve_precision


def stream_overrides(args: argparse.Namespace) -> list[str]:
    out = [f"backbone={args.backbone}", f"synthetic={args.glyphs}", f"data.synthetic.per_epoch={args.n}"]
    if args.glyphs_path:
        out.append(f"data.synthetic.glyphs.path={args.glyphs_path}")
    if args.img_size:
        out.append(f"backbone.img_size={args.img_size}")
    return out + [f"data.denoise={args.denoise}", *args.overrides]


def generator_rate(stream, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        stream[i]
    return n / (time.perf_counter() - start)


def loader_rate(stream, batch: int, workers: int) -> float:
    loader = make_loader(stream, batch_size=batch, num_workers=workers)
    start, images = time.perf_counter(), 0
    for x, _, _ in loader:
        images += len(x)
    return images / (time.perf_counter() - start)


def trainer_rate(cfg, batch: int, precision_name: str, channels_last: bool, steps: int) -> tuple[float, str]:
    b = cfg.backbone
    device = resolve_device("auto")
    precision = resolve_precision(precision_name, device)
    torch.manual_seed(0)
    model = build_model(b.name, in_chans=b.in_chans, head=b.head, global_pool=b.global_pool)
    model, batching = place_model(model, device, b.in_chans, channels_last, b.normalize)
    optimizer, loss_fn = build_optimizer(model, "adam", lr=1e-3), build_loss("bce")
    xs = torch.randint(0, 256, (batch, 1, b.img_size, b.img_size), dtype=torch.uint8)
    ys = (torch.rand(batch, 26) < 0.46).float().to(device)

    def run(k: int) -> float:
        model.train()
        start = time.perf_counter()
        for _ in range(k):
            with torch.autocast(device.type, dtype=precision.dtype, enabled=precision.dtype is not None):
                out = model(batching(xs))
            loss = loss_fn(out.float(), ys)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss.item()
        return k * batch / (time.perf_counter() - start)

    run(2)  # warm-up: allocator, kernels
    return run(
        steps
    ), f"{b.name} ({b.head} head) at {b.img_size}px, batch {batch}, {precision.name}, {device}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="tf_effnet_lite0", help="a conf/backbone option")
    parser.add_argument("--img-size", type=int, default=None, help="default: the backbone's img_size")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--glyphs", default="procedural", choices=("procedural", "dacon7"))
    parser.add_argument("--glyphs-path", default=None, help="for --glyphs dacon7: mnist_data/ or a CSV")
    parser.add_argument("--denoise", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--n", type=int, default=256, help="stream images per measurement")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for (b)")
    parser.add_argument("--steps", type=int, default=10, help="trainer updates for (c)")
    parser.add_argument("overrides", nargs="*", help="more train overrides, e.g. backbone.head=per_location")
    args = parser.parse_args()
    cfg = compose("train", stream_overrides(args))
    d = dataset_args(cfg)
    stream = synthetic_stream(d["synthetic"], 0, d["img_size"], d["denoise"], d["augment"], 0)
    stream[0]  # warm-up
    a = generator_rate(stream, args.n)
    b = loader_rate(stream, args.batch, args.workers)
    c, what = trainer_rate(cfg, args.batch, args.precision, args.channels_last, args.steps)
    layout = cfg.data.synthetic.compositor
    print(
        f"stream: glyphs={args.glyphs}, {layout.letters_min}-{layout.letters_max} letters at "
        f"{layout.image_size}px -> {d['img_size']}px, denoise={d['denoise']}, {args.n} images"
    )
    print(f"trainer: {what}, channels_last={args.channels_last}")
    print(f"(a) generator, one worker:        {a:8.1f} img/s")
    print(f"(b) DataLoader, {args.workers} workers:         {b:8.1f} img/s ({b / a:.2f}x one worker)")
    print(f"(c) trainer consumption:          {c:8.1f} img/s")
    print(f"workers to keep the trainer fed: {math.ceil(c / a)} (c / a = {c / a:.2f})")


if __name__ == "__main__":
    main()
