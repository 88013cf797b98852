"""``python -m robustret.data``: the command lives in :mod:`robustret.cli.data`."""

from robustret.cli.data import main

if __name__ == "__main__":
    raise SystemExit(main())
