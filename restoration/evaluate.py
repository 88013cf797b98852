"""``python -m restoration.evaluate``: the PSNR / SSIM table of degraded and restored queries.

The command lives in :mod:`robustret.cli.restorer_eval`; this shim imports it only when run or
when :func:`main` is called, so importing ``restoration`` never imports robustret's upper
layers.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``robustret.cli.restorer_eval.main(argv)``; returns the exit code."""
    from robustret.cli.restorer_eval import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
