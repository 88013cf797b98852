"""Speed of the degradations vs the study's per-image numpy code, kornia and imagecorruptions.

    .venv/bin/python benchmarks/bench_degradations.py [--quick] [--n 2048] [--size 96]

Input: (N, 1, size, size) float32 in [0, 1], after touching 1 GiB once (see warm_up_memory).
Prints img/s, best and median over reps (the reps of all competitors of one degradation
alternate, so drifts of the machine's speed hit them alike), and the ratios ours / reference,
ours / kornia, ours / imagecorruptions. kornia and imagecorruptions
are used only if installed (the script says when they are missing).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import cv2
import numpy as np
import pywt
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import degradations  # noqa: E402


def timed_interleaved(
    cases: dict[str, tuple[Callable[[], object], int]], reps: int,
) -> dict[str, tuple[float, float]]:
    """(best, median) img/s per case over ``reps``; the cases' reps alternate (a, b, c, a, ...).

    Alternating keeps slow drifts of the machine's speed out of the ratios. Best-of-reps is
    the headline (as ``timeit`` advises), the median is printed too (why: docs/benchmarks.md,
    "Benchmark method").
    ``cases`` maps a name to (function, images per call); each function runs once untimed first.
    """
    times: dict[str, list[float]] = {name: [] for name in cases}
    for fn, _ in cases.values():
        fn()
    for _ in range(reps):
        for name, (fn, _) in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {
        name: (cases[name][1] / min(t), cases[name][1] / statistics.median(t))
        for name, t in times.items()
    }


def warm_up_memory(gib: float = 1.0) -> float:
    """Touch and free ``gib`` GiB once; returns the seconds it took.

    Where a process's first fresh memory is slower than later allocations (the VMs behind
    docs/benchmarks.md, "Benchmark method"), this keeps the first case timed from paying for
    the whole process.
    """
    start = time.perf_counter()
    block = torch.ones(int(gib * 2**28))  # float32: 4 bytes per value
    del block
    return time.perf_counter() - start


def reference(name: str, batch: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """The study's per-image numpy code (with its min-max re-stretch), one image at a time."""
    out = []
    for img in batch:
        if name == "gaussian_noise":
            g = img + rng.normal(0, 0.1, img.shape)
        elif name == "salt_pepper":
            m = rng.choice([0, 1], img.shape, p=[0.9, 0.1])
            s = rng.choice([0, 1], img.shape, p=[0.5, 0.5])
            g = (1 - m) * img + m * s
        elif name == "speckle":
            g = img * (1 + rng.uniform(-0.1, 0.1, img.shape))
        elif name == "lowres":
            ll = img
            for _ in range(1 + rng.integers(2)):
                ll = pywt.dwt2(ll, "haar")[0]
            g = cv2.resize(ll, img.shape[::-1], interpolation=cv2.INTER_AREA)
        else:  # motion blur
            h, w = img.shape
            a, b = rng.normal(0, 0.05, 2)
            f = np.fft.fftshift(np.fft.fft2(img))
            f[h // 2 - 1 : h // 2 + 1, w // 2 - 1 : w // 2 + 1] = 0
            u, v = np.meshgrid(np.arange(-h // 2, h // 2), np.arange(-w // 2, w // 2))
            phi = np.pi * (u * a + v * b) + 1e-5
            hh = np.sin(phi) / phi * np.exp(-1j * phi)
            g = np.real(np.fft.ifft2(np.fft.ifftshift(f * hh)))
        low, high = g.min(), g.max()
        out.append((g - low) / (high - low))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--quick", action="store_true", help="2 reps instead of 5")
    args = parser.parse_args(argv)
    reps = 2 if args.quick else 5
    n, size = args.n, args.size
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, size, size, generator=gen)
    x_np = x[:, 0].numpy()
    rng = np.random.default_rng(0)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, N={n}, {size}x{size}, "
        f"reps={reps}"
    )
    print(f"memory warm-up: 1 GiB touched in {warm_up_memory():.2f} s")

    have_kornia = importlib.util.find_spec("kornia") is not None
    have_ic = importlib.util.find_spec("imagecorruptions") is not None
    kornia_ops = {}
    if have_kornia:
        import kornia.augmentation as K

        kornia_ops = {
            "gaussian_noise": K.RandomGaussianNoise(std=0.1, p=1.0),
            "salt_pepper": K.RandomSaltAndPepperNoise(amount=0.1, salt_vs_pepper=0.5, p=1.0),
            "motion_blur": K.RandomMotionBlur(kernel_size=5, angle=45.0, direction=1.0, p=1.0),
        }
    else:
        print("kornia not installed: skipping its columns")
    ic_names = {"gaussian_noise": "gaussian_noise", "salt_pepper": "impulse_noise",
                "speckle": "speckle_noise", "motion_blur": "motion_blur", "lowres": "pixelate"}
    if have_ic:
        warnings.filterwarnings("ignore")
        from imagecorruptions import corrupt
        ic_n = min(n, 128 if args.quick else 256)
        ic_imgs = [
            np.repeat((x_np[i] * 255).astype(np.uint8)[:, :, None], 3, axis=2) for i in range(ic_n)
        ]
    else:
        print("imagecorruptions not installed: skipping its column")

    rows: list[tuple[str, dict[str, tuple[float, float]]]] = []
    for name in sorted(degradations.GROUPS["study"]):  # the reference code has only these six
        cases: dict[str, tuple[Callable[[], object], int]] = {
            "ours": (lambda: degradations.apply(x, name, 3, generator=gen), n)}
        if name != "noise":
            cases["ref"] = (lambda: reference(name, x_np, rng), n)
        if name in kornia_ops:
            op = kornia_ops[name]

            def run_kornia() -> list[torch.Tensor]:
                # keep every output, as ours, the reference loop and imagecorruptions do: a
                # chunk output thrown away is freed and its memory reused without page faults
                with torch.no_grad():
                    return [op(x[s : s + 128]) for s in range(0, n, 128)]

            cases["kornia"] = (run_kornia, n)
        if have_ic and name in ic_names:
            cases["ic"] = (
                lambda: [corrupt(im, corruption_name=ic_names[name], severity=1) for im in ic_imgs],
                ic_n,
            )
        rows.append((name, timed_interleaved(cases, reps)))

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}"

    def ratio(a: float, b: float | None) -> str:
        return "-" if b is None else f"{a / b:.1f}x"

    for label, which in (("best of reps", 0), ("median of reps", 1)):
        print(f"\n{label}:")
        print(
            "| degradation (level 3) | ours img/s | reference loop img/s | ours/ref | kornia "
            "(chunks 128) img/s"
            " | ours/kornia | imagecorruptions img/s | ours/ic |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for name, speed in rows:
            ours, ref, kor, ic = (
                speed[c][which] if c in speed else None for c in ("ours", "ref", "kornia", "ic")
            )
            print(
                f"| {name} | {fmt(ours)} | {fmt(ref)} | {ratio(ours, ref)} | {fmt(kor)} | "
                f"{ratio(ours, kor)}"
                f" | {fmt(ic)} | {ratio(ours, ic)} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
