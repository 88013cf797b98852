"""``python -m robustret.experiment``: the command lives in :mod:`robustret.cli.experiment`."""

from robustret.cli.experiment import main

if __name__ == "__main__":
    raise SystemExit(main())
