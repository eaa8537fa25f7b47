"""Every stage at the competition's size, with wall time and peak resident memory per stage.

    python scripts/bench_scale.py --n-train 50000 --n-test 5000      # the real scale (make bench-scale)
    python scripts/bench_scale.py --n-train 8000 --n-test 800 --out /tmp/scale8k

Each stage runs in its own process (so its peak memory is its own): generate the real-preset data;
validate + fingerprint; build the image cache at 256 and at 128 px; folds; a slice of training
(`--batches` batches) of effnet_b5 at 256 px and of cpu_full's network; the ensemble over 5 folds x 8
views of every OOF row; predict on every test image with 5 folds. The ensemble and predict stages run
on synthetic fold runs (random logits, untrained weights: said in the table), since training 5 real
folds at this size is a GPU's job; their cost does not depend on what the numbers are.
Prints one table; run it at two sizes to see how each stage grows. `--out` must be new, empty or an
earlier bench-scale folder: one holding anything else is refused (exit 2), nothing there touched.
Exit 1 when a stage fails.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from multimnist.io import OutputError, claim_folder

ROOT = Path(__file__).resolve().parents[1]
STAGES = (
    "generate",
    "validate",
    "cache256",
    "cache128",
    "folds",
    "train_b5",
    "train_fcn",
    "ensemble",
    "predict",
)


def peak_mb() -> float:
    """Peak resident memory of this process and of its finished children, MB (Linux: KB units)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def stage(name: str, args: argparse.Namespace) -> str:
    """Run one stage in this process; returns what it measured besides time and memory."""
    data, exps = Path(args.out) / "data", Path(args.out) / "experiments"
    if name == "generate":
        from multimnist.synth.compositor import Compositor, CompositorConfig
        from multimnist.synth.distractors import distractor_bank
        from multimnist.synth.generate import generate
        from multimnist.synth.glyphs import procedural_bank

        compositor = Compositor(CompositorConfig(), procedural_bank(0), distractor_bank(0), seed=0)
        s = generate(data, compositor, args.n_train, args.n_test, seed=0, progress=False, overwrite=True)
        return f"{s.images_per_second:.0f} img/s"
    from multimnist.data.dacon import DaconLayout, load_split

    layout = DaconLayout(data)
    if name == "validate":
        from multimnist.data.fingerprint import dataset_fingerprint

        splits = [load_split(layout, s) for s in ("train", "test")]
        dataset_fingerprint(layout)
        return f"{sum(map(len, splits))} images checked"
    if name.startswith("cache"):
        from multimnist.data.cache import cached_images

        size = int(name[5:])
        for split in ("train", "test"):
            images = cached_images(load_split(layout, split), data / ".cache", size, True, progress=False)
        return f"{images.nbytes / 2**20:.0f} MB test memmap"
    if name == "folds":
        from multimnist.data.folds import load_or_make_folds

        train = load_split(layout, "train")
        folds = load_or_make_folds(None, train.indices, train.labels, 5, 42, "stratified")
        return f"{folds.fold.nunique()} folds"
    if name.startswith("train"):
        return train_slice(name, args, layout)
    if name == "ensemble":
        fake_runs(args, layout, exps)
        from multimnist.config import compose
        from multimnist.ensemble import run_ensemble

        run_ensemble(compose("ensemble", ["exp=scale", f"paths.experiments={exps}", f"data.root={data}"]))
        return f"5 folds x {args.views} views, synthetic logits"
    if name == "predict":
        from multimnist.config import compose
        from multimnist.predict import run_predict

        images = data / "test_dirty_mnist_2nd"
        overrides = ["exp=scale", f"images={images}", f"out={Path(args.out) / 'pred.csv'}"]
        run_predict(compose("predict", [*overrides, f"paths.experiments={exps}", "progress=false"]))
        return f"5 folds x {args.predict_views} views, untrained cpu_full weights"
    raise ValueError(name)


def train_slice(name: str, args: argparse.Namespace, layout) -> str:
    """`--batches` training batches (from the cache, as a fold trains), img/s of the last ones."""
    import torch
    from torch.utils.data import Subset

    from multimnist.build import build_datasets, build_loss, build_model, build_training, make_loader
    from multimnist.config import compose, dataset_args, model_args, optimizer_args, placement_args
    from multimnist.engine import train_one_epoch

    preset = ["backbone=effnet_b5", "trainer.batch_size=8"] if name == "train_b5" else ["experiment=cpu_full"]
    cfg = compose(
        "train", [f"data.root={layout.root}", *preset, "trainer.num_workers=2", "trainer.progress=false"]
    )
    t = cfg.trainer
    train_ds, _, _ = build_datasets(**dataset_args(cfg))
    subset = Subset(train_ds, range(min(len(train_ds), args.batches * t.batch_size)))
    loader = make_loader(subset, t.batch_size, t.num_workers)
    step, state = build_training(
        build_model(**model_args(cfg)),
        torch.device("cpu"),
        **placement_args(cfg),
        precision=t.precision,
        optimizer=optimizer_args(cfg),
        scheduler={"name": "none"},
        epochs=1,
        updates_per_epoch=len(loader),
        loss_fn=build_loss(**cfg.loss),
        progress=False,
    )
    result = train_one_epoch(step, loader, epoch=0, num_updates=0)
    return f"{cfg.backbone.name} {cfg.backbone.img_size} px: {result.images / result.seconds:.1f} img/s"


def fake_runs(args: argparse.Namespace, layout, exps: Path) -> None:
    """5 fold runs of cpu_full's config on the data: random logits that lean towards the answers
    (so decoding has something to tune), untrained weights as best.pt."""
    import numpy as np
    import torch
    from omegaconf import OmegaConf

    from multimnist.build import build_model
    from multimnist.config import compose, model_args
    from multimnist.data.dacon import load_split
    from multimnist.data.folds import load_or_make_folds
    from multimnist.rundir import fold_dir

    train, test = load_split(layout, "train"), load_split(layout, "test")
    folds = load_or_make_folds(None, train.indices, train.labels, 5, 42, "stratified").fold.to_numpy()
    rng = np.random.default_rng(0)
    for k in range(5):
        cfg = compose("train", [f"data.root={layout.root}", "experiment=cpu_full", "exp=scale", f"fold={k}"])
        cfg.trainer.tta_views = args.predict_views  # what predict runs; the saved logits have --views
        run = fold_dir(exps, "scale", k)
        (run / ".hydra").mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run / ".hydra" / "config.yaml", resolve=True)
        rows = np.flatnonzero(folds == k)
        signal = (train.labels[rows].astype(np.float32) * 2 - 1)[:, None, :]
        oof = signal + rng.normal(0, 1.5, (len(rows), args.views, 26)).astype(np.float32)
        np.save(run / "oof_logits.npy", oof)
        np.save(run / "oof_index.npy", train.indices[rows])
        torch.save({"model": build_model(**model_args(cfg)).state_dict()}, run / "best.pt")
        np.save(run / "test_logits.npy", rng.normal(0, 1.5, (len(test), args.views, 26)).astype(np.float32))


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every argument in range, every stage known: argparse's one line and exit 2 otherwise."""
    for key in ("n_train", "n_test", "batches", "views", "predict_views"):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}")
    unknown = [s for s in args.stages.split(",") if s not in STAGES]
    if unknown:
        parser.error(f"--stages: unknown stage {unknown[0]!r}; stages: {','.join(STAGES)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=50000)
    parser.add_argument("--n-test", type=int, default=5000)
    parser.add_argument("--out", default="/tmp/multimnist_scale")
    parser.add_argument("--batches", type=int, default=4, help="training batches per model")
    parser.add_argument("--views", type=int, default=8, help="TTA views of the logits the ensemble combines")
    parser.add_argument("--predict-views", type=int, default=2, help="TTA views predict runs per fold")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--stage", help=argparse.SUPPRESS)  # internal: run one stage, print JSON
    args = parser.parse_args()
    check_args(parser, args)
    if args.stage:
        started = time.perf_counter()
        note = stage(args.stage, args)
        print(json.dumps({"seconds": time.perf_counter() - started, "peak_mb": peak_mb(), "note": note}))
        return 0
    try:
        claim_folder(args.out, "bench_scale")
    except OutputError as err:
        parser.error(str(err))
    rows, failed = [], False
    for name in args.stages.split(","):
        cmd = [sys.executable, __file__, "--stage", name, *sys.argv[1:]]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            rows.append((name, float("nan"), float("nan"), "FAILED"))
            failed = True
            break
        result = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append((name, result["seconds"], result["peak_mb"], result["note"]))
        print(f"[scale] {name}: {result['seconds']:.1f} s, peak {result['peak_mb']:.0f} MB", flush=True)
    print(f"\n{args.n_train:,} train + {args.n_test:,} test images, 2-core CPU")
    print("| stage | wall s | peak RSS MB | s per 1,000 images | note |\n|---|---|---|---|---|")
    n = args.n_train + args.n_test
    for name, seconds, mb, note in rows:
        print(f"| {name} | {seconds:.1f} | {mb:.0f} | {1000 * seconds / n:.2f} | {note} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
