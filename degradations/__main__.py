"""``python -m degradations --out FILE.png``: the demo grid (see :mod:`degradations.demo`)."""

from __future__ import annotations

from .demo import main

raise SystemExit(main())
