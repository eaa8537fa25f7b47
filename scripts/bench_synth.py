"""Generator throughput, PNG writing included: images/s on one core and on all cores.

    python scripts/bench_synth.py [--n 2000] [--preset-size 256]

The glyph bank is built once per run (timed separately): it is a fixed start-up cost, not per image.
Goal (issue 2): >= 200 img/s per core, so 50,000 real-size images take minutes on a laptop.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from multimnist.synth.compositor import Compositor, CompositorConfig
from multimnist.synth.distractors import distractor_bank
from multimnist.synth.generate import generate
from multimnist.synth.glyphs import procedural_bank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="images per measurement (default 2000)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    t = time.perf_counter()
    bank = procedural_bank(seed=0)
    compositor = Compositor(CompositorConfig(), bank, distractor_bank(0))
    print(
        f"glyph bank: {len(bank)} procedural glyphs built in {time.perf_counter() - t:.1f} s (once per run)"
    )
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in sorted({1, cores}):
            out = Path(tmp) / f"w{workers}"
            summary = generate(
                out, compositor, n_train=args.n, n_test=0, seed=0, workers=workers, progress=False
            )
            rate = rates[workers] = summary.images_per_second
            print(
                f"{workers} worker(s): {args.n} images 256x256 + PNG in {summary.seconds:.2f} s = "
                f"{rate:.0f} img/s total, {rate / workers:.0f} img/s per core"
            )
    per_core = rates[1]
    print(f"per-core rate {per_core:.0f} img/s (goal >= 200): {'PASS' if per_core >= 200 else 'BELOW GOAL'}")
    print(f"50,000 train + 5,000 test on {cores} cores: ~{55000 / rates[cores] / 60:.1f} min")


if __name__ == "__main__":
    main()
