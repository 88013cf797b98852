"""CLI: train a restoration network on the fly-degraded clean gallery images.

``python -m restoration.train --model dae --degrade noise --dataset synthetic --out runs/dae_noise``
Re-running the same command resumes after the last finished epoch (``DIR/last.pt``); a larger
``--epochs`` extends the run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import restoration
from robustret.checks import ConfigError
from robustret.io import sigterm_as_interrupt
from robustret.train.restorer import RestorerTrainConfig, train_restorer

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
    parser.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-tensorboard", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, train, print the final validation figures; returns the exit code.

    Exit codes: 0 done, 2 bad input (one line on stderr), 130 interrupted (Ctrl-C or SIGTERM;
    re-running resumes).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    preset = RestorerTrainConfig.quick if args.profile == "quick" else RestorerTrainConfig.paper
    overrides = {"seed": args.seed, "severity": args.severity, "dataset": args.dataset,
                 "image_size": args.image_size, "device": args.device}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    try:
        with sigterm_as_interrupt():  # kill ends training like Ctrl-C; last.pt stays intact
            config = preset(args.model, args.degrade, **overrides)
            result = train_restorer(config, args.out, tensorboard=not args.no_tensorboard)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    except (ConfigError, FileNotFoundError) as exc:
        # only bad input is one line; anything else is a bug and shows its traceback
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    final = result.final
    print(f"{config.model} on {config.degrade}: epochs {len(result.history)} "
          f"(resumed from {result.resumed_from}); val PSNR {result.degraded_psnr:.2f} -> "
          f"{final.get('val_psnr', float('nan')):.2f} dB, SSIM {result.degraded_ssim:.4f} -> "
          f"{final.get('val_ssim', float('nan')):.4f}; checkpoint {result.checkpoint}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
