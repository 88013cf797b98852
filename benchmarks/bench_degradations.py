"""Speed of every degradation family against its per-image loop, imagecorruptions and its bound.

    .venv/bin/python benchmarks/bench_degradations.py            # every family, ~6 min idle
    .venv/bin/python benchmarks/bench_degradations.py --quick    # 128 images, 2 reps, < 3 min
    .venv/bin/python benchmarks/bench_degradations.py --families jpeg pixelate --colors rgb
    .venv/bin/python benchmarks/bench_degradations.py --against 759c0a6 --families zoom_blur

Families: the study's six and the corruption suite's 16 (``--families`` picks some), each at
severity 3 on (n, C, size, size) float32 in [0, 1], gray (C = 1) and RGB (C = 3). Columns, in
images per second (best of ``--reps``, the reps of one row's cases alternating so a drift of a
shared machine's speed hits them alike; each case runs once untimed first):

- **ours**: ``degradations.apply`` on the whole batch (chunked inside).
- **loop**: the per-image numpy loop of the same algorithm, on ``--ref-n`` images: the study's
  reference code (:func:`reference`, per plane for RGB) for the study's five that have one;
  for the suite, imagecorruptions' per-image ``corrupt`` is that loop (same column as ``ic``).
- **ic**: imagecorruptions' ``corrupt`` per image (RGB uint8; a gray image enters as its
  three-channel copy, which is how it takes one), where it has the family and it runs on this
  machine's libraries (the error is printed otherwise).
- **bound**: the family's stated bound on this machine, measured in the same run on the same
  batch (:func:`bounds`): ``add`` a tensor add of the batch into a fresh output (memory
  bandwidth, with the output's page faults that every degradation pays too), ``rand`` /
  ``randn`` a uniform / normal fill of the batch (random numbers),
  ``fft`` the fastest batched real FFT pair (rfft2 + irfft2) of the batch among torch.fft,
  scipy.fft with ``workers`` = threads, and cv2.dft per plane, ``conv K`` the fastest of a
  depthwise ``conv2d`` and OpenCV's ``filter2D`` with a K x K kernel and the ``fft`` pair (at
  the image size, without the padding a linear convolution needs), ``sep K`` the faster of
  two 1-D ``conv2d`` and ``cv2.sepFilter2D`` with K taps, ``grid`` a bilinear ``grid_sample``
  of the batch, ``codec`` OpenCV's JPEG encode + decode per image; ``Z x add`` is Z passes.

Printed ratios: ``ours / ic`` (speed-up per image) and ``time / bound`` (ours' time over the
bound's; issue 38 asks for >= 10x and <= 2x).

``--against COMMIT`` measures a change instead: the package as it was at that commit is
imported beside today's (:func:`package_at`) and both are timed on the same batch in one
process, their reps alternating, with the largest difference between their outputs.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pywt
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import degradations  # noqa: E402
from degradations.corruptions._anchors import at_side  # noqa: E402
from degradations.corruptions._kernels import (  # noqa: E402
    gaussian_taps,
    motion_taps,
    zoom_factors,
)
from degradations.corruptions.noise_blur import defocus_kernel  # noqa: E402

#: the study's five with a per-image reference in :func:`reference` (not the mixture)
STUDY_REFERENCE = ("gaussian_noise", "lowres", "motion_blur", "salt_pepper", "speckle")
#: our family -> imagecorruptions' name (the same algorithm; the study's salt_pepper and lowres
#: are compared with impulse_noise and pixelate, the nearest ImageNet-C has)
IC_NAMES = {
    "gaussian_noise": "gaussian_noise", "shot_noise": "shot_noise",
    "impulse_noise": "impulse_noise", "speckle": "speckle_noise", "salt_pepper": "impulse_noise",
    "defocus_blur": "defocus_blur", "glass_blur": "glass_blur", "motion_blur": "motion_blur",
    "line_motion_blur": "motion_blur", "zoom_blur": "zoom_blur", "gaussian_blur": "gaussian_blur",
    "snow": "snow", "fog": "fog", "spatter": "spatter", "brightness": "brightness",
    "contrast": "contrast", "saturate": "saturate", "elastic_transform": "elastic_transform",
    "pixelate": "pixelate", "lowres": "pixelate", "jpeg": "jpeg_compression",
}


def bounds(name: str, side: int) -> list[tuple[str, float]]:
    """The family's bound as (component, size) terms at severity 3 and ``side`` px."""
    p = degradations.severity_params(name, 3)
    if name in ("brightness", "contrast", "saturate", "lowres", "pixelate"):
        return [("add", 0)]
    if name in ("gaussian_noise", "noise", "shot_noise"):
        return [("add", 0), ("randn", 0)]
    if name in ("salt_pepper", "impulse_noise", "speckle", "fog"):
        return [("add", 0), ("rand", 0)]
    if name == "motion_blur":
        return [("fft", 0)]
    if name == "defocus_blur":
        return [("conv", defocus_kernel(p["radius"], p["alias_blur"], side).shape[0])]
    if name == "line_motion_blur":
        taps = motion_taps(at_side(p["radius"], side, length=True),
                           at_side(p["sigma"], side, length=True))
        return [("conv", 2 * (len(taps) + 1) + 1)]
    if name == "gaussian_blur":
        return [("sep", len(gaussian_taps(at_side(p["sigma"], side, length=True))))]
    if name == "glass_blur":
        taps = len(gaussian_taps(at_side(p["sigma"], side, length=True)))
        return [("sep", taps), ("sep", taps), ("rand", 0)]
    if name == "zoom_blur":
        return [("add", 0)] * len(zoom_factors(at_side(p["max_zoom"], side), 0.01))
    if name == "elastic_transform":
        return [("grid", 0), ("rand", 0)]
    if name in ("snow", "spatter"):
        return [("add", 0), ("rand", 0), ("fft", 0)]
    if name == "jpeg":
        return [("codec", round(at_side(p["quality"], side)))]
    raise KeyError(f"no bound stated for {name!r}: add it to bounds()")


def _fft_candidates(x: torch.Tensor) -> dict[str, Callable[[], object]]:
    import scipy.fft

    planes = x.numpy().reshape(-1, *x.shape[-2:])
    threads = torch.get_num_threads()

    def torch_fft() -> object:
        return torch.fft.irfft2(torch.fft.rfft2(x), s=x.shape[-2:])

    def scipy_fft() -> object:
        spectrum = scipy.fft.rfft2(planes, workers=threads)
        return scipy.fft.irfft2(spectrum, s=planes.shape[-2:], workers=threads)

    def cv2_dft() -> object:
        return [cv2.idft(cv2.dft(plane), flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)
                for plane in planes]

    return {"torch.fft": torch_fft, f"scipy.fft w{threads}": scipy_fft, "cv2.dft": cv2_dft}


def _component(kind: str, size: int, x: torch.Tensor) -> dict[str, Callable[[], object]]:
    """The ways to do one bound component on the batch ``x``; the fastest one counts."""
    b, c, h, w = x.shape
    out = torch.empty_like(x)
    planes = x.numpy().reshape(-1, h, w)
    gen = torch.Generator().manual_seed(0)
    if kind == "add":  # into a fresh output, as every degradation returns one
        return {"add": lambda: torch.add(x, x)}
    if kind == "rand":
        return {"rand": lambda: out.uniform_(generator=gen)}
    if kind == "randn":
        return {"randn": lambda: out.normal_(generator=gen)}
    if kind == "fft":
        return _fft_candidates(x)
    if kind == "conv":
        kernel = torch.full((c, 1, size, size), 1.0 / size**2)
        k_np = np.full((size, size), 1.0 / size**2, np.float32)
        return {"conv2d": lambda: F.conv2d(F.pad(x, [size // 2] * 4, mode="replicate"),
                                           kernel, groups=c),
                "cv2.filter2D": lambda: [cv2.filter2D(p, -1, k_np) for p in planes],
                **_fft_candidates(x)}  # a convolution's fastest way may be the FFT
    if kind == "sep":
        taps = torch.full((size,), 1.0 / size)
        t_np = taps.numpy()
        flat = x.reshape(b * c, 1, h, w)
        r = size // 2

        def torch_sep() -> object:
            rows = F.conv2d(F.pad(flat, [r, r, 0, 0], mode="replicate"), taps.view(1, 1, 1, -1))
            return F.conv2d(F.pad(rows, [0, 0, r, r], mode="replicate"), taps.view(1, 1, -1, 1))

        return {"conv2d": torch_sep,
                "cv2.sepFilter2D": lambda: [cv2.sepFilter2D(p, -1, t_np, t_np) for p in planes]}
    if kind == "grid":
        grid = torch.rand(b, h, w, 2, generator=gen) * 2 - 1
        return {"grid_sample": lambda: F.grid_sample(x, grid, align_corners=True)}
    if kind == "codec":
        pixels = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
        flags = [int(cv2.IMWRITE_JPEG_QUALITY), size]

        def codec() -> object:
            return [cv2.imdecode(cv2.imencode(".jpg", image, flags)[1], cv2.IMREAD_UNCHANGED)
                    for image in pixels]

        return {"cv2 codec": codec}
    raise KeyError(kind)


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
    """The study's per-image numpy code (with its min-max re-stretch), one (H, W) plane at a
    time."""
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


def _cpu() -> str:
    model = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").exists():
        text = Path("/proc/cpuinfo").read_text()
        names = [line.split(":", 1)[1].strip() for line in text.splitlines()
                 if line.startswith("model name")]
        model = (names[0] if names else model) + (", AVX-512" if " avx512f" in text else "")
    return f"{model}, {os.cpu_count()} logical CPUs"


class Bounds:
    """Bound components measured once per batch shape (the fastest way of each), in seconds."""

    def __init__(self, reps: int) -> None:
        self.reps, self.seconds, self.winner = reps, {}, {}

    def time(self, kind: str, size: int, x: torch.Tensor) -> float:
        key = (kind, size, tuple(x.shape))
        if key not in self.seconds:
            ways = _component(kind, size, x)
            speed = timed_interleaved({way: (fn, 1) for way, fn in ways.items()}, self.reps)
            best = max(speed, key=lambda way: speed[way][0])
            self.seconds[key], self.winner[key] = 1 / speed[best][0], best
        return self.seconds[key]

    def describe(self, terms: list[tuple[str, float]], x: torch.Tensor) -> str:
        names = []
        for kind, size in dict.fromkeys(terms):
            count = terms.count((kind, size))
            label = f"{kind} {size}" if size else kind
            way = self.winner[(kind, size, tuple(x.shape))]
            names.append(f"{count} x {label}" if count > 1 else label)
            if kind in ("fft", "conv", "sep", "grid"):
                names[-1] += f" ({way})"
        return " + ".join(names)


def _row_cases(name: str, x: torch.Tensor, args: argparse.Namespace, corrupt: object,
               ic_error: str | None) -> dict[str, tuple[Callable[[], object], int]]:
    gen = torch.Generator().manual_seed(1)
    cases: dict[str, tuple[Callable[[], object], int]] = {
        "ours": (lambda: degradations.apply(x, name, 3, generator=gen), len(x))}
    small = x[: args.ref_n]
    if name in STUDY_REFERENCE:
        planes = small.numpy().reshape(-1, *x.shape[-2:])
        rng = np.random.default_rng(0)
        cases["loop"] = (lambda: reference(name, planes, rng), len(small))
    if corrupt is not None and name in IC_NAMES and ic_error is None:
        rgb = small.expand(-1, 3, -1, -1) if x.shape[1] == 1 else small
        images = [(img.permute(1, 2, 0).numpy() * 255).astype(np.uint8) for img in rgb]
        cases["ic"] = (lambda: [corrupt(im, corruption_name=IC_NAMES[name], severity=3)
                                for im in images], len(images))
    return cases


def _ic_errors(corrupt: object, side: int) -> dict[str, str | None]:
    """imagecorruptions' failure on this machine's libraries, per family (None: it runs)."""
    image = np.full((side, side, 3), 128, np.uint8)
    errors: dict[str, str | None] = {}
    for ours, theirs in IC_NAMES.items():
        try:
            corrupt(image, corruption_name=theirs, severity=3)
            errors[ours] = None
        except Exception as exc:  # the reference on today's libraries  # noqa: BLE001
            errors[ours] = f"fails: {type(exc).__name__}"
    return errors


def package_at(commit: str) -> ModuleType:
    """``degradations`` as it was at ``commit`` (git), imported as a package of its own
    (``degradations_at_<commit>``, its own registry) beside today's, so both can be timed in
    one process; its imports of ``robustret`` are today's."""
    root = Path(__file__).resolve().parents[1]
    name = "degradations_at_" + "".join(ch for ch in commit if ch.isalnum())

    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=root, capture_output=True, text=True,
                              check=True).stdout

    package = Path(tempfile.mkdtemp()) / name
    for path in git("ls-tree", "-r", "--name-only", commit, "degradations").split():
        if path.endswith(".py"):
            target = package / Path(path).relative_to("degradations")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(git("show", f"{commit}:{path}"))
    spec = importlib.util.spec_from_file_location(
        name, package / "__init__.py", submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def compare_with(commit: str, args: argparse.Namespace,
                 batches: dict[str, torch.Tensor]) -> None:
    """Print, per family and colour, img/s of ``degradations`` at ``commit`` and today's, in
    one process, the reps alternating (seed 1, severity 3), and whether the bytes are equal."""
    before = package_at(commit)
    print(f"| family | C | at {commit} img/s | now img/s | now / then | output |")
    print("|---|---|---|---|---|---|")
    for name in args.families:
        for color in args.colors:
            x, outs = batches[color], {}

            def run(key: str, module: ModuleType, x: torch.Tensor = x,
                    outs: dict = outs, name: str = name) -> None:
                outs[key] = module.apply(x, name, 3, generator=torch.Generator().manual_seed(1))

            speed = timed_interleaved({"then": (lambda: run("then", before), len(x)),
                                       "now": (lambda: run("now", degradations), len(x))},
                                      args.reps)
            diff = (outs["then"] - outs["now"]).abs().max().item()
            output = "the same bytes" if diff == 0 else f"max abs diff {diff:.2g}"
            then, now = speed["then"][0], speed["now"][0]
            print(f"| `{name}` | {x.shape[1]} | {then:,.0f} | {now:,.0f} | {now / then:.2f}x | "
                  f"{output} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="images per batched call (ours)")
    parser.add_argument("--ref-n", type=int, default=32, help="images of the per-image loops")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="--n 128 --ref-n 8 --reps 2")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch's intra-op threads (default: torch's own choice); 1 keeps "
                             "ratios steadier on a machine shared with other work")
    parser.add_argument("--families", nargs="+", choices=degradations.available(),
                        default=[*degradations.GROUPS["study"],
                                 *(n for n in degradations.GROUPS["all"]
                                   if n not in degradations.GROUPS["study"]
                                   and not n.startswith("realistic_"))])
    parser.add_argument("--colors", nargs="+", choices=("gray", "rgb"), default=["gray", "rgb"])
    parser.add_argument("--against", metavar="COMMIT",
                        help="instead of the table: time degradations at COMMIT (git) against "
                             "today's, in one process, and compare their outputs")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.ref_n, args.reps = 128, 8, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.against:
        gen = torch.Generator().manual_seed(0)
        print(f"# {_cpu()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
              f"{args.size} px, severity 3, n {args.n}, best of {args.reps}; load average "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        compare_with(args.against, args, {
            "gray": torch.rand(args.n, 1, args.size, args.size, generator=gen),
            "rgb": torch.rand(args.n, 3, args.size, args.size, generator=gen)})
        print(f"# load average at the end {os.getloadavg()[0]:.1f}")
        return 0
    try:
        warnings.filterwarnings("ignore")
        from imagecorruptions import corrupt
    except ImportError:
        print("imagecorruptions not installed (pip install -e '.[bench]'): no ic column")
        corrupt = None
    ic_errors = _ic_errors(corrupt, args.size) if corrupt is not None else {}
    print(f"# {_cpu()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{args.size} px, severity 3, n {args.n}, loops on {args.ref_n}, best of {args.reps}; "
          f"load average {os.getloadavg()[0]:.1f}; warm-up {warm_up_memory():.2f} s", flush=True)
    gen = torch.Generator().manual_seed(0)
    batches = {"gray": torch.rand(args.n, 1, args.size, args.size, generator=gen),
               "rgb": torch.rand(args.n, 3, args.size, args.size, generator=gen)}
    measured = Bounds(args.reps)
    print("| family | C | ours img/s | loop img/s | imagecorruptions img/s | bound | bound img/s "
          "| ours / ic | time / bound |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.families:
        for color in args.colors:
            x = batches[color]
            speed = timed_interleaved(_row_cases(name, x, args, corrupt, ic_errors.get(name)),
                                      args.reps)
            terms = bounds(name, args.size)
            bound = len(x) / sum(measured.time(kind, size, x) for kind, size in terms)
            ours = speed["ours"][0]
            loop = speed.get("loop", speed.get("ic", (math.nan,)))[0]
            loop_text = "-" if math.isnan(loop) else f"{loop:,.0f}"
            ic = f"{speed['ic'][0]:,.0f}" if "ic" in speed else (ic_errors.get(name) or "-")
            ratio = f"{ours / speed['ic'][0]:.1f}x" if "ic" in speed else "-"
            print(f"| `{name}` | {x.shape[1]} | {ours:,.0f} | {loop_text} | {ic} | "
                  f"{measured.describe(terms, x)} | {bound:,.0f} | {ratio} | "
                  f"{bound / ours:.1f} |", flush=True)
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
