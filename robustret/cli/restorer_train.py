"""CLI: train a restoration network on the fly-degraded clean gallery images.

``python -m restoration.train --model dae --degrade noise --dataset synthetic --out runs/dae_noise``
Re-running the same command resumes after the last finished epoch (``DIR/last.pt``); a larger
``--epochs`` extends the run. It trains on the gallery split less a held-out tenth and
validates on that tenth, the same split the experiment makes
(:func:`robustret.train.restorer_validation.gallery_holdout` of ``--seed``); the queries are
never used. ``torchrun --nproc_per_node=N -m restoration.train ...``
trains with N processes (docs/distributed.md); rank 0 writes the folder and prints the result.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

import restoration
from robustret import data as rdata
from robustret.cli.boundary import int_at_least, run_command
from robustret.core import distributed
from robustret.core.checks import ConfigError, check_writable_folder
from robustret.core.device import resolve_device
from robustret.experiment.preflight import check_training_size
from robustret.train.restorer import train_restorer
from robustret.train.restorer_config import RestorerTrainConfig
from robustret.train.restorer_validation import split_gallery

PROG = "python -m restoration.train"


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags; ``--model`` choices are ``restoration.networks()``."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=restoration.networks(), required=True)
    parser.add_argument("--degrade", required=True,
                        help="degradation name (degradations.available())")
    parser.add_argument("--dataset", default="synthetic",
                        help="robustret.data.load spec (default: synthetic)")
    parser.add_argument("--out", required=True, help="run folder (last.pt, config.json, logs/)")
    parser.add_argument("--profile", choices=("quick", "paper"), default="quick")
    parser.add_argument("--epochs", type=int_at_least(0), default=None,
                        help="override the profile's epochs (>= 0)")
    parser.add_argument("--seed", type=int_at_least(0), default=0)
    parser.add_argument("--severity", type=int, choices=range(1, 6), default=3,
                        help="degradation severity 1..5 (default 3, the study's)")
    parser.add_argument("--image-size", type=int_at_least(1), default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-tensorboard", action="store_true")
    return parser


def _checked_inputs(config: RestorerTrainConfig, out: str) -> tuple[Tensor, Tensor]:
    """Check the output folder, device and data before training; the (training, validation)
    images: the gallery less its held-out tenth, and that tenth
    (:func:`robustret.train.restorer_validation.split_gallery` of ``config.seed``, as the
    experiment holds it out). Every problem a user can fix is a :class:`ConfigError`."""
    check_writable_folder(Path(out), "out", "--out")
    try:  # under torchrun: join the process group before the first shared file
        distributed.setup(resolve_device(config.device))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    try:  # the data set the trainer would load itself; rank 0 caches it first
        with distributed.main_first():
            bundle = rdata.load(config.dataset, image_size=config.image_size, seed=config.seed)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"dataset {config.dataset!r}: {exc}") from exc
    height, width = bundle.gallery.images.shape[-2:]
    check_training_size(config.model, config.crop_size, int(height), int(width),
                        where="the profile's preset")
    if len(bundle.gallery) < 2:
        raise ConfigError(f"dataset {config.dataset!r} has {len(bundle.gallery)} gallery "
                          "image(s); restorer training needs at least 2 (a tenth of them, at "
                          "least one, is held out to validate it)")
    return split_gallery(bundle.gallery.images, config.seed)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, train, print the final validation figures; returns the exit code.

    Exit codes: 0 done, 2 bad input (one line on stderr), 130 interrupted (Ctrl-C or SIGTERM;
    re-running resumes).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if distributed.env_rank() == 0 else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    preset = RestorerTrainConfig.quick if args.profile == "quick" else RestorerTrainConfig.paper
    overrides = {"seed": args.seed, "severity": args.severity, "dataset": args.dataset,
                 "image_size": args.image_size, "device": args.device}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    def work():  # kill ends training like Ctrl-C; last.pt stays intact
        config = preset(args.model, args.degrade, **overrides)
        train_images, val_images = _checked_inputs(config, args.out)
        return config, train_restorer(config, args.out, train_images=train_images,
                                      val_images=val_images, tensorboard=not args.no_tensorboard)

    try:
        status, outcome = run_command(PROG, work)
    finally:
        distributed.cleanup()
    if outcome is None or distributed.env_rank() > 0:  # rank 0 reports
        return status
    config, result = outcome
    final = result.final
    print(f"{config.model} on {config.degrade}: epochs {len(result.history)} "
          f"(resumed from {result.resumed_from}); val PSNR {result.degraded_psnr:.2f} -> "
          f"{final.get('val_psnr', float('nan')):.2f} dB, SSIM {result.degraded_ssim:.4f} -> "
          f"{final.get('val_ssim', float('nan')):.4f}; checkpoint {result.checkpoint}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
