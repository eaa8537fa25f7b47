"""Training-step speed by precision and memory format, measured in one run on this machine.

    python scripts/bench_precision.py [--backbone effnet_b5] [--img-size 256] [--batch 32] [--steps 20]

The model loop (forward, loss, backward, Adam step) on in-memory random tensors, for fp32, bf16,
bf16 + channels_last and, on a GPU, fp16 with the grad scaler. Prints img/s per setting and the
ratio to fp32. Settings run in turns (round-robin, `--rounds` times) and each keeps its median, so a
machine that drifts during the run does not favour the first or the last.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from multimnist.build import build_model, build_optimizer, place_model
from multimnist.config import compose
from multimnist.engine import resolve_device, resolve_precision


def step_time(model, optimizer, scaler, x, y, precision, device, steps: int) -> float:
    loss_fn = torch.nn.BCEWithLogitsLoss()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        with torch.autocast(device.type, dtype=precision.dtype, enabled=precision.dtype is not None):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="effnet_b5", help="a conf/backbone option")
    parser.add_argument("--img-size", type=int, default=None, help="default: the backbone's img_size")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per setting and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    b = compose("train", [f"backbone={args.backbone}"]).backbone
    size = args.img_size or b.img_size
    device = resolve_device("auto")
    settings = [("fp32", False), ("bf16", False), ("bf16", True)]
    if device.type == "cuda":
        settings.append(("fp16", True))
    runs = {}
    for name, channels_last in settings:
        torch.manual_seed(0)
        model, batching = place_model(
            build_model(b.name, in_chans=b.in_chans), device, b.in_chans, channels_last
        )
        precision = resolve_precision(name, device)
        x = batching(torch.rand(args.batch, 1, size, size))
        y = (torch.rand(args.batch, 26, device=device) > 0.5).float()
        optimizer = build_optimizer(model, "adam", lr=1e-4)
        scaler = torch.amp.GradScaler(device.type) if precision.needs_scaler else None
        model.train()
        step_time(model, optimizer, scaler, x, y, precision, device, 3)  # warm-up (cuDNN autotune, allocator)
        label = f"{name}{' + channels_last' if channels_last else ''}"
        runs[label] = (model, optimizer, scaler, x, y, precision, [])
    for _ in range(args.rounds):
        for model, optimizer, scaler, x, y, precision, times in runs.values():
            times.append(step_time(model, optimizer, scaler, x, y, precision, device, args.steps))
    name = (
        torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"{args.backbone} at {size} px, batch {args.batch}, on {name}; median of {args.rounds} rounds")
    base = None
    for label, (*_, times) in runs.items():
        ips = args.batch / statistics.median(times)
        base = base or ips
        print(f"  {label:<22} {ips:8.1f} img/s   x{ips / base:.2f} vs fp32")
    if device.type == "cuda":
        print(
            f"  peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB (all settings held at once)"
        )


if __name__ == "__main__":
    main()
