"""``python -m robustret.experiment.landmarks``: the command is :mod:`robustret.cli.landmarks`."""

from robustret.cli.landmarks import main

if __name__ == "__main__":
    raise SystemExit(main())
