"""``python -m restoration.train``: the restorer training command.

The command lives in :mod:`robustret.cli.restorer_train` (training is robustret's top layer); this
shim imports it only when run or when :func:`main` is called, so importing ``restoration``
never imports robustret's training code.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``robustret.cli.restorer_train.main(argv)``; returns the exit code."""
    from robustret.cli.restorer_train import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
