"""PSNR / SSIM of degraded and restored queries, per degradation and restorer, and its CLI.

``python -m restoration.evaluate --dataset synthetic --models-dir runs``

Queries are degraded at the given severity, image i with a generator seeded by the run seed,
the degradation's name and i (``degradations.apply_indexed``), so a degradation's queries do
not depend on which others are evaluated. Every restorer receives the parameters the
degradation drew per image (the "known blur" case for Wiener, the known level for bicubic);
restorers that do not use them ignore them. Networks are the ``last.pt`` checkpoints found
under ``--models-dir`` (any depth); each is evaluated on the degradations it serves
(``robustret.experiment.policy.training_degradation``; ``--all-pairs``: on every degradation).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import degradations
import restoration
from degradations.groups import GROUPS, expand
from robustret import data as rdata
from robustret.cli.boundary import int_at_least, run_command
from robustret.core.checks import ConfigError, check_images
from robustret.core.device import resolve_device
from robustret.core.quality import psnr, ssim
from robustret.core.rng import stream_seed
from robustret.experiment import policy
from robustret.experiment.preflight import ssim_window

log = logging.getLogger(__name__)

PROG = "python -m restoration.evaluate"
DEGRADE_STREAM = "restorer_eval/degrade"
"""Seed stream prefix of the degraded queries; the degradation name completes it."""


@dataclass(frozen=True)
class QualityRow:
    """Mean image quality of one (degradation, restorer) pair.

    Attributes:
        degradation: degradation name.
        restorer: restorer label (registry name, or ``name[run folder]`` for a checkpoint).
        psnr_degraded: mean PSNR (dB) of the degraded queries against the clean ones.
        psnr_restored: mean PSNR (dB) of the restored queries.
        ssim_degraded: mean SSIM of the degraded queries.
        ssim_restored: mean SSIM of the restored queries.
    """

    degradation: str
    restorer: str
    psnr_degraded: float
    psnr_restored: float
    ssim_degraded: float
    ssim_restored: float

    @property
    def psnr_gain(self) -> float:
        """``psnr_restored - psnr_degraded`` in dB."""
        return self.psnr_restored - self.psnr_degraded

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for JSON / CSV)."""
        return asdict(self)


def find_models(dirs: Sequence[str | Path]) -> list[Path]:
    """``last.pt`` files under ``dirs`` (recursive, sorted per folder); files are kept as given.

    Raises:
        FileNotFoundError: an entry of ``dirs`` does not exist.
    """
    found: list[Path] = []
    for d in map(Path, dirs):
        if d.is_file():
            found.append(d)
        elif d.is_dir():
            found += sorted(d.rglob("last.pt"))
        else:
            raise FileNotFoundError(f"--models-dir {d} does not exist; pass a folder holding "
                                    "restorer runs (DIR/last.pt) or a checkpoint file")
    return found


def _serves(trained_on: object, degradation: str) -> bool:
    """Whether a network trained on ``trained_on`` is meant for ``degradation``."""
    return trained_on in (degradation, policy.training_degradation(degradation))


def evaluate(images: Tensor, degradation_names: Sequence[str], restorer_names: Sequence[str],
             model_paths: Sequence[str | Path] = (), *, severity: int = 3, seed: int = 0,
             all_pairs: bool = False, device: torch.device | str = "cpu",
             batch_size: int = 64) -> list[QualityRow]:
    """One row per (degradation, restorer): mean PSNR / SSIM of degraded and restored images.

    Args:
        images: (N, C, H, W) clean queries, float in [0, 1].
        degradation_names: degradations to apply (``degradations.available()``).
        restorer_names: registry restorers without weights (``identity`` and the classical
            ones, ``restoration.classical()``); networks come from ``model_paths``.
        model_paths: restorer checkpoints (``restoration.load``).
        severity: degradation severity (1..5).
        seed: degradation seed.
        all_pairs: run every network on every degradation, not only those it serves.
        device: where the restorers run.
        batch_size: images per restorer call.
    Returns:
        Rows in the order degradation, then the named restorers, then the networks.
    Raises:
        ConfigError: a network among ``restorer_names`` (it needs trained weights), an
            unknown restorer or degradation name, a severity outside 1..5, images smaller than
            SSIM's window or an empty query set, or an unknown device.
    """
    check_images(images, "images")
    if images.shape[0] == 0:
        raise ConfigError("there are no query images to evaluate; use a data set with queries")
    if min(images.shape[-2:]) < ssim_window():
        raise ConfigError(f"SSIM needs images of at least {ssim_window()} px per side; got "
                          f"{tuple(images.shape[-2:])}. Use larger images")
    if isinstance(severity, bool) or severity not in range(1, 6):
        raise ConfigError(f"severity must be an integer in 1..5; got {severity!r}")
    untrained = [name for name in restorer_names if name in restoration.networks()]
    if untrained:
        raise ConfigError(f"{', '.join(untrained)} are networks and need trained weights: pass "
                          "their checkpoints (model_paths / --models-dir) instead")
    for name in restorer_names:
        if name not in restoration.RESTORERS:
            raise ConfigError(f"unknown restorer {name!r}; available: "
                              f"{', '.join(restoration.available())}")
    unknown = [name for name in degradation_names if name not in degradations.DEGRADATIONS]
    if unknown:
        raise ConfigError(f"unknown degradation(s) {', '.join(unknown)}; available: "
                          f"{', '.join(degradations.available())}")
    try:
        device = resolve_device(device)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    models = []
    for path in map(Path, model_paths):
        try:
            model = restoration.load(path, device=device)
        except ValueError as exc:  # a retriever's, or another file's, checkpoint
            raise ConfigError(f"{exc}; pass --models-dir folders of restorer runs only") from exc
        trained_on = getattr(model, "checkpoint_info", {}).get("degradation")
        models.append((f"{model.restorer_name}[{path.parent.name}]", trained_on, model))
    built = {name: restoration.build(name).to(device) for name in restorer_names}
    rows: list[QualityRow] = []
    for name in degradation_names:
        degraded, params = degradations.apply_indexed(
            images, name, severity, seed=stream_seed(seed, f"{DEGRADE_STREAM}/{name}", severity),
            indices=torch.arange(images.shape[0]), return_params=True)
        base_p = float(psnr(degraded, images).mean())
        base_s = float(ssim(degraded, images).mean())
        todo = list(built.items())
        todo += [(label, m) for label, trained_on, m in models
                 if all_pairs or _serves(trained_on, name)]
        for label, model in todo:
            restored = restoration.restore_batches(model, degraded, params,
                                                   batch_size=batch_size, device=device)
            rows.append(QualityRow(
                degradation=name, restorer=label, psnr_degraded=base_p,
                psnr_restored=float(psnr(restored, images).mean()), ssim_degraded=base_s,
                ssim_restored=float(ssim(restored, images).mean())))
            log.info("%s / %s: PSNR %.2f -> %.2f", name, label, base_p, rows[-1].psnr_restored)
    return rows


def format_table(rows: Sequence[QualityRow]) -> str:
    """Rows as a Markdown table (PSNR in dB)."""
    lines = ["| degradation | restorer | PSNR degraded | PSNR restored | gain dB "
             "| SSIM degraded | SSIM restored |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.degradation} | {r.restorer} | {r.psnr_degraded:.2f} "
                     f"| {r.psnr_restored:.2f} | {r.psnr_gain:+.2f} | {r.ssim_degraded:.4f} "
                     f"| {r.ssim_restored:.4f} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags; the names offered come from the registries."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--degrade", nargs="+", default=None,
                        help="degradations to apply, or groups of them (study, imagenet-c, "
                        "held-out, all); default: study, the study's six")
    parser.add_argument("--restorers", nargs="+", default=None,
                        choices=[n for n in restoration.available()
                                 if n not in restoration.networks()],
                        help="registry restorers without weights (default: identity + classical)")
    parser.add_argument("--models-dir", nargs="*", default=[],
                        help="folders searched for last.pt checkpoints")
    parser.add_argument("--queries", type=int_at_least(0), default=256,
                        help="first N query images (0: all)")
    parser.add_argument("--severity", type=int, choices=range(1, 6), default=3,
                        help="degradation severity 1..5 (default 3, the study's)")
    parser.add_argument("--seed", type=int_at_least(0), default=0)
    parser.add_argument("--all-pairs", action="store_true")
    parser.add_argument("--device", default="auto")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, evaluate, print the table; returns the exit code (2: bad input)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    status, rows = run_command(PROG, lambda: _evaluate(args))
    if rows is not None:
        print(format_table(rows))
    return status


def _evaluate(args: argparse.Namespace) -> list[QualityRow]:
    """The rows of the table ``args`` asks for."""
    try:
        images = rdata.load(args.dataset, seed=args.seed).queries.images
    except (ValueError, TypeError) as exc:  # the data readers' bad-input errors
        raise ConfigError(f"dataset {args.dataset!r}: {exc}") from exc
    if args.queries:
        images = images[: args.queries]
    restorers = args.restorers or [restoration.IDENTITY, *restoration.classical()]
    # groups become their members; an unknown name is left to evaluate()'s message
    names = expand(args.degrade, keep_unknown=True) if args.degrade else sorted(GROUPS["study"])
    return evaluate(images, names, restorers,
                    find_models(args.models_dir), severity=args.severity, seed=args.seed,
                    all_pairs=args.all_pairs, device=args.device)


if __name__ == "__main__":
    raise SystemExit(main())
