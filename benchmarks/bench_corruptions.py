"""Speed of the corruption suite against imagecorruptions, per image.

    .venv/bin/python benchmarks/bench_corruptions.py [--n 512] [--ref-n 32] [--size 96] [--reps 3]

Ours: one batched call on (n, C, size, size) float32 in [0, 1] (C = 1 and 3), severity 3.
imagecorruptions (the ``bench`` extra): its ``corrupt`` on each of ``ref-n`` RGB uint8 images
(it takes one image at a time, RGB), same severity. Prints img/s (best of ``reps``, the cases
of one family alternating) and ours / imagecorruptions for RGB. A family whose reference fails
on this machine's libraries is shown with the error instead. No bounds here: see
docs/benchmarks.md for what this does not yet measure.
"""

from __future__ import annotations

import argparse
import platform
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_degradations import timed_interleaved, warm_up_memory  # noqa: E402

import degradations  # noqa: E402

#: our family -> imagecorruptions' name (the same algorithm; names differ for two)
REFERENCE_NAMES = {
    "gaussian_noise": "gaussian_noise", "shot_noise": "shot_noise",
    "impulse_noise": "impulse_noise", "speckle": "speckle_noise",
    "defocus_blur": "defocus_blur", "glass_blur": "glass_blur",
    "line_motion_blur": "motion_blur", "zoom_blur": "zoom_blur", "gaussian_blur": "gaussian_blur",
    "snow": "snow", "fog": "fog", "spatter": "spatter", "brightness": "brightness",
    "contrast": "contrast", "saturate": "saturate", "elastic_transform": "elastic_transform",
    "pixelate": "pixelate", "jpeg": "jpeg_compression",
}


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() \
            else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="images per batched call (ours)")
    parser.add_argument("--ref-n", type=int, default=32, help="images for imagecorruptions")
    parser.add_argument("--size", type=int, default=96, help="image side")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions")
    args = parser.parse_args(argv)
    try:
        warnings.filterwarnings("ignore")
        from imagecorruptions import corrupt
    except ImportError:
        print("imagecorruptions is not installed: pip install -e '.[bench]'")
        return 2
    print(f"# {_cpu()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.size} px, severity 3; warm-up {warm_up_memory():.2f} s")
    gen = torch.Generator().manual_seed(0)
    gray = torch.rand((args.n, 1, args.size, args.size), generator=gen)
    rgb = torch.rand((args.n, 3, args.size, args.size), generator=gen)
    ref_images = [(img.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
                  for img in rgb[: args.ref_n]]
    print("| family | ours gray img/s | ours RGB img/s | imagecorruptions RGB img/s | "
          "ours / imagecorruptions (RGB) |")
    print("|---|---|---|---|---|")
    for name, theirs in REFERENCE_NAMES.items():
        try:
            corrupt(ref_images[0], corruption_name=theirs, severity=3)
            reference_ok, error = True, ""
        except Exception as exc:  # the reference on today's libraries  # noqa: BLE001
            reference_ok, error = False, f"{type(exc).__name__}: {str(exc)[:50]}"

        def ours(images: torch.Tensor, name: str = name) -> torch.Tensor:
            return degradations.apply(images, name, 3, generator=torch.Generator().manual_seed(1))

        def reference(theirs: str = theirs) -> list[np.ndarray]:
            return [corrupt(image, corruption_name=theirs, severity=3) for image in ref_images]

        cases = {"gray": (lambda: ours(gray), args.n), "rgb": (lambda: ours(rgb), args.n)}
        if reference_ok:
            cases["reference"] = (reference, args.ref_n)
        speed = timed_interleaved(cases, args.reps)
        ref = f"{speed['reference'][0]:.0f}" if reference_ok else f"fails ({error})"
        ratio = f"{speed['rgb'][0] / speed['reference'][0]:.1f}x" if reference_ok else "-"
        print(f"| `{name}` | {speed['gray'][0]:.0f} | {speed['rgb'][0]:.0f} | {ref} | {ratio} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
