"""Speed of the training-free denoisers on a batch of the built-in data's size.

    .venv/bin/python benchmarks/bench_denoise.py [--n 2400] [--size 64] [--repeats 3]

Times ``median_filter`` (3x3), ``switching_median``, ``tv_denoise`` (100 Chambolle steps, one
weight per image) and the ``tv`` restorer (its MAD sigma estimate included) on ``n`` gray
``size`` px images under Gaussian noise (salt and pepper for the switching median), best of
``repeats``. Prints a markdown table with the command, commit and host.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_estimation import run_facts  # noqa: E402

import degradations  # noqa: E402
import restoration  # noqa: E402
from restoration.classical import median_filter  # noqa: E402
from restoration.denoise import switching_median, tv_denoise  # noqa: E402
from robustret.core.rng import make_generator  # noqa: E402


def best_of(repeats: int, work: Callable[[], object]) -> float:
    """Shortest wall time of ``repeats`` calls, seconds."""
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        work()
        times.append(time.perf_counter() - tick)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2400)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    clean = torch.rand(args.n, 1, args.size, args.size, generator=torch.Generator().manual_seed(0))
    noisy = degradations.apply(clean, "gaussian_noise", 3, generator=make_generator(1))
    salted = degradations.apply(clean, "salt_pepper", 3, generator=make_generator(2))
    weight = torch.full((args.n,), 0.075)
    tv = restoration.build("tv")
    cases = {
        "median_filter 3x3": lambda: median_filter(noisy, 3),
        "switching_median 3x3 (salt and pepper 10%)": lambda: switching_median(salted, 3),
        "tv_denoise, 100 steps": lambda: tv_denoise(noisy, weight),
        "`tv` restorer (MAD sigma + tv_denoise)": lambda: tv(noisy),
    }
    lines = ["## Training-free denoisers", "", *run_facts("bench_denoise.py"),
             f"- data: {args.n} x 1 x {args.size} x {args.size} float32, best of {args.repeats}",
             "", "| function | seconds | ms per image |", "|---|---:|---:|"]
    with torch.no_grad():
        for label, work in cases.items():
            seconds = best_of(args.repeats, work)
            lines.append(f"| {label} | {seconds:.3f} | {1000 * seconds / args.n:.3f} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
