"""CLI: PSNR / SSIM of degraded and restored queries, per degradation and restorer.

``python -m restoration.evaluate --dataset synthetic --models-dir runs``

Queries are degraded at the given severity with a generator seeded by ``--seed``; the classical
baselines receive the blur / resolution parameters the degradation drew per image (the "known
blur" case). Networks are the ``last.pt`` checkpoints found under ``--models-dir`` (any depth);
each is evaluated on the degradation it was trained on (``--all-pairs``: on every degradation).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

import restoration
from robustret.device import resolve_device
from robustret.quality import psnr, ssim
from robustret.rng import make_generator, sample_seed

log = logging.getLogger(__name__)

DEFAULT_DEGRADATIONS = ("gaussian_noise", "salt_pepper", "speckle", "noise", "motion_blur", "lowres")


def restorer_kwargs(name: str, params: dict[str, Tensor]) -> dict[str, Tensor]:
    """The degradation's drawn per-image parameters a classical restorer can use."""
    if name == "wiener" and "a" in params:
        return {"a": params["a"], "b": params["b"]}
    if name == "bicubic" and "level" in params:
        return {"level": params["level"]}
    return {}


def find_models(dirs: Sequence[str | Path]) -> list[Path]:
    """``last.pt`` files under ``dirs`` (recursive), sorted."""
    found: list[Path] = []
    for d in dirs:
        d = Path(d)
        if d.is_file():
            found.append(d)
        elif d.is_dir():
            found += sorted(d.rglob("last.pt"))
        else:
            raise FileNotFoundError(f"--models-dir {d} does not exist")
    return found


@torch.inference_mode()
def _run(model: torch.nn.Module, images: Tensor, kwargs: dict[str, Tensor], device: torch.device,
         chunk: int = 64) -> Tensor:
    parts = []
    for i in range(0, images.shape[0], chunk):
        part = {k: v[i:i + chunk] for k, v in kwargs.items()}
        parts.append(model(images[i:i + chunk].to(device), **part).cpu())
    return torch.cat(parts)


def evaluate(images: Tensor, degradation_names: Sequence[str], restorer_names: Sequence[str],
             model_paths: Sequence[Path] = (), *, severity: int = 3, seed: int = 0, all_pairs: bool = False,
             device: torch.device | str = "cpu") -> list[dict[str, object]]:
    """One row per (degradation, restorer): mean PSNR / SSIM of degraded and restored images.

    Args:
        images: (N, C, H, W) clean queries in [0, 1].
        degradation_names: degradations to apply (``degradations.available()``).
        restorer_names: registry restorers to run (``identity`` and classical ones; networks need
            weights and come from ``model_paths``).
        model_paths: restorer checkpoints.
        severity: degradation severity.
        seed: degradation seed.
        all_pairs: run every network on every degradation, not only its own.
        device: where networks run.
    Returns:
        Rows with keys degradation, restorer, psnr_degraded, psnr_restored, ssim_degraded,
        ssim_restored.
    """
    import degradations

    device = resolve_device(device)
    models = []
    for path in model_paths:
        model = restoration.load(path, device=device)
        info = getattr(model, "checkpoint_info", {})
        models.append((f"{model.restorer_name}[{path.parent.name}]", info.get("degradation"), model))
    rows: list[dict[str, object]] = []
    for d, name in enumerate(degradation_names):
        module = degradations.build_module(name, severity)
        degraded, params = module(images, make_generator(sample_seed(seed, d)), return_params=True)
        base_p, base_s = float(psnr(degraded, images).mean()), float(ssim(degraded, images).mean())
        todo = [(r, restoration.build(r), restorer_kwargs(r, params)) for r in restorer_names]
        todo += [(label, m, {}) for label, trained_on, m in models if all_pairs or trained_on == name]
        for label, model, kwargs in todo:
            restored = _run(model, degraded, kwargs, device)
            rows.append({"degradation": name, "restorer": label, "psnr_degraded": base_p,
                         "psnr_restored": float(psnr(restored, images).mean()), "ssim_degraded": base_s,
                         "ssim_restored": float(ssim(restored, images).mean())})
            log.info("%s / %s: PSNR %.2f -> %.2f", name, label, base_p, rows[-1]["psnr_restored"])
    return rows


def format_table(rows: Sequence[dict[str, object]]) -> str:
    """Rows as a Markdown table (PSNR in dB)."""
    lines = ["| degradation | restorer | PSNR degraded | PSNR restored | gain dB | SSIM degraded | SSIM restored |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['degradation']} | {r['restorer']} | {r['psnr_degraded']:.2f} | {r['psnr_restored']:.2f} | "
                     f"{r['psnr_restored'] - r['psnr_degraded']:+.2f} | {r['ssim_degraded']:.4f} | "
                     f"{r['ssim_restored']:.4f} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    parser = argparse.ArgumentParser(prog="python -m restoration.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--degrade", nargs="+", default=list(DEFAULT_DEGRADATIONS))
    parser.add_argument("--restorers", nargs="+", default=["identity", *restoration.CLASSICAL],
                        help="registry restorers without weights (default: identity + classical)")
    parser.add_argument("--models-dir", nargs="*", default=[], help="folders searched for last.pt checkpoints")
    parser.add_argument("--queries", type=int, default=256, help="first N query images (0: all)")
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--all-pairs", action="store_true")
    parser.add_argument("--device", default="auto")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, evaluate, print the table; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from robustret import data as rdata

    images = rdata.load(args.dataset, seed=args.seed).queries.images
    if args.queries:
        images = images[: args.queries]
    rows = evaluate(images, args.degrade, args.restorers, find_models(args.models_dir), severity=args.severity,
                    seed=args.seed, all_pairs=args.all_pairs, device=args.device)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
