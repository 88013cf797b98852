"""``python -m robustret.data info --dataset SPEC``: summarise a data set, optionally preview it.

Examples::

    python -m robustret.data info --dataset synthetic --preview docs/img/datasets_synthetic.png
    python -m robustret.data info --dataset folder:path/to/coil-20 --image-size 64

A bad spec, a missing path or a corrupt file prints one line on stderr and exits with 2.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
from pathlib import Path

import numpy as np

from robustret.checks import ConfigError
from robustret.data import RetrievalData, load
from robustret.io import atomic_write_bytes
from robustret.preflight import check_writable_folder, int_at_least

logger = logging.getLogger("robustret.data")


def preview_grid(data: RetrievalData, per_class: int = 8, seed: int = 0) -> np.ndarray:
    """A (rows * S, cols * S[, 3]) uint8 grid: one row per class, gallery samples then queries.

    Args:
        data: the data set.
        per_class: images shown per class (half from each split where possible).
        seed: which images are shown.
    Returns:
        uint8 image, gray (H, W) or RGB (H, W, 3).
    """
    rng = np.random.default_rng(seed)
    c, s = data.gallery.images.shape[1], data.gallery.images.shape[2]
    w = data.gallery.images.shape[3]
    rows = []
    for label in range(len(data.class_names)):
        tiles = []
        for side, count in (
            (data.gallery, per_class - per_class // 2),
            (data.queries, per_class // 2),
        ):
            positions = np.flatnonzero(side.labels.numpy() == label)
            chosen = np.sort(rng.choice(positions, size=min(count, positions.size), replace=False))
            tiles.extend(side.images[int(i)].numpy() for i in chosen)
        tiles += [np.zeros((c, s, w), np.float32)] * (per_class - len(tiles))
        rows.append(
            np.concatenate(
                [np.pad(t, ((0, 0), (1, 1), (1, 1)), constant_values=1.0) for t in tiles], axis=2
            )
        )
    grid = (np.concatenate(rows, axis=1) * 255).round().astype(np.uint8)
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def write_preview(data: RetrievalData, path: str | Path, per_class: int = 8, seed: int = 0) -> Path:
    """Write :func:`preview_grid` as a PNG with class names on the left (atomic).

    Draws on a standalone :class:`matplotlib.figure.Figure` with an Agg canvas: no pyplot, no
    change of the process's matplotlib backend.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grid = preview_grid(data, per_class, seed)
    rows = len(data.class_names)
    height = grid.shape[0] / grid.shape[1] * 8
    fig = Figure(figsize=(8.8, max(2.0, height + 0.6)), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    tile = grid.shape[0] / rows
    ax.set_yticks([(i + 0.5) * tile for i in range(rows)], data.class_names)
    ax.set_xticks([])
    ax.set_title(
        f"{data.name}: per class, {per_class - per_class // 2} gallery | {per_class // 2} query "
        "images",
        fontsize=9,
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())


def _check_preview_path(path: Path) -> None:
    """Raise :class:`ConfigError` when the preview PNG cannot be written at ``path``."""
    if path.is_dir():
        raise ConfigError(f"--preview {path} is a folder; name a .png file inside it")
    check_writable_folder(path.parent, "the folder of --preview", "--preview")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad spec / data)."""
    parser = argparse.ArgumentParser(
        prog="python -m robustret.data", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print classes, counts per split and per class, image shape")
    info.add_argument("--dataset", required=True, help="synthetic | smallnorb:PATH | folder:PATH")
    info.add_argument("--image-size", type=int_at_least(1), default=None, help="resize to N x N")
    info.add_argument(
        "--per-class", type=int_at_least(1), default=None,
        help="cap images per class in each split",
    )
    info.add_argument("--channels", choices=("gray", "rgb"), default=None)
    info.add_argument("--seed", type=int_at_least(0), default=0)
    info.add_argument(
        "--preview", default=None, metavar="FILE.png", help="write a grid of samples per class"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        if args.preview:  # before the (maybe slow) load: a preview that cannot be written
            _check_preview_path(Path(args.preview))
        data = load(args.dataset, image_size=args.image_size, channels=args.channels,
                    per_class=args.per_class, seed=args.seed)
    except (ValueError, FileNotFoundError, OSError) as exc:
        # ConfigError and the readers' bad-input errors (a bad spec, a missing or corrupt
        # file): one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(data.describe() + "\n")
    if args.preview:
        path = write_preview(data, args.preview, seed=args.seed)
        sys.stdout.write(f"preview: {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
