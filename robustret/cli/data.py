"""``python -m robustret.data``: summarise a data set (``info``), export its degraded queries, or
write a tiny landmark benchmark (``landmark-fixture``).

Examples::

    python -m robustret.data info --dataset synthetic --preview docs/img/datasets_synthetic.png
    python -m robustret.data info --dataset folder:path/to/coil-20 --image-size 64
    python -m robustret.data export --dataset folder:path/to/photos --degrade gaussian_noise \
        --severity 3 --seed 0 --out queries/noise3
    python -m robustret.data landmark-fixture /tmp/roxford-fixture --format roxford5k

``info`` on a ``folder:PATH`` first describes the folder (images per class, sizes, colour
modes, unreadable files). ``export`` writes the degraded queries of one condition exactly as
the experiment makes them (PNGs to look at, the exact float32 images in ``queries.npy``, a
checksummed ``manifest.json``; :mod:`robustret.experiment.query_sets`), for
``python -m robustret.experiment --queries DIR``.

A bad spec, a missing path or a corrupt file prints one line on stderr and exits with 2.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

import degradations
from degradations.groups import expand, group_names
from robustret.cli.boundary import int_at_least, run_command
from robustret.core.checks import ConfigError, check_writable_folder
from robustret.core.io import atomic_write_bytes
from robustret.data import RetrievalData, load
from robustret.data.folder import survey_folder
from robustret.data.landmark_fixture import write_landmark_fixture
from robustret.data.landmarks import LANDMARK_SCHEMES
from robustret.experiment.config import PROFILE_IMAGE_SIZE, ExperimentConfig, load_config_file
from robustret.experiment.query_sets import export_query_set

logger = logging.getLogger("robustret.data")
PROG = "python -m robustret.data"
T = TypeVar("T")


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
    # lazy: heavy; loaded only to draw a plot
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


FOLDER_SIZES = (
    "folder images of other sizes or shapes are centre-cropped to a square (the shorter side) "
    "and resized to N x N; without --image-size a folder of one size keeps it and one of several "
    "sizes goes to its smallest shorter side"
)


def _export(args: argparse.Namespace) -> int:
    """``export``: the degraded queries of each (degradation, severity) asked for."""
    return _readers_errors_as_config_errors(lambda: _export_sets(args))


def _export_sets(args: argparse.Namespace) -> int:
    values = dict(load_config_file(args.config)) if args.config else {}
    flags = {"dataset": args.dataset, "image_size": args.image_size,
             "per_class": args.per_class, "seed": args.seed}
    values.update({key: value for key, value in flags.items() if value is not None})
    config = ExperimentConfig.from_dict(values)
    image_size = config.image_size or PROFILE_IMAGE_SIZE[config.profile]
    names = expand(args.degrade)  # group names (study, imagenet-c, ...) become their members
    severities = range(1, 6) if "all" in args.severity else sorted({int(s) for s in args.severity})
    wanted = [(name, severity) for name in names for severity in severities]
    out = Path(args.out)
    for name, severity in wanted:
        folder = out if len(wanted) == 1 else out / f"{name}-s{severity}"
        made = export_query_set(folder, dataset=config.dataset, degradation=name,
                                severity=severity, seed=config.seed, image_size=image_size,
                                per_class=config.per_class,
                                dataset_options=config.dataset_options)
        sys.stdout.write(f"{name} severity {severity}: {len(made.labels)} queries, "
                         f"seed {config.seed} -> {folder}\n")
    return 0


def _degradation_names() -> list[str]:
    return degradations.available()


def build_parser() -> argparse.ArgumentParser:
    """The command line: sub-commands ``info``, ``export`` and ``landmark-fixture``."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser(
        "info", help="print classes, counts per split and per class, image shape",
        description="Print classes, counts per split and per class and the image shape; for a "
        "folder first its images per class, sizes, colour modes and unreadable files. "
        + FOLDER_SIZES + ".",
    )
    info.add_argument("--dataset", required=True, help="synthetic | smallnorb:PATH | folder:PATH")
    info.add_argument("--image-size", type=int_at_least(1), default=None,
                      help="resize to N x N; " + FOLDER_SIZES)
    info.add_argument(
        "--per-class", type=int_at_least(1), default=None,
        help="cap images per class in each split",
    )
    info.add_argument("--channels", choices=("gray", "rgb"), default=None)
    info.add_argument("--seed", type=int_at_least(0), default=0)
    info.add_argument(
        "--preview", default=None, metavar="FILE.png", help="write a grid of samples per class"
    )
    export = sub.add_parser(
        "export", help="write the degraded queries of a condition as a shareable query set",
        description="Write the degraded queries of each (degradation, severity) exactly as "
        "python -m robustret.experiment makes them (same data loading, same seeds): 8-bit PNGs "
        "to look at, the exact float32 images in queries.npy and a manifest.json with per "
        "image the label, the drawn parameters, the seed and the SHA-256 of its files. "
        "Evaluate on it with python -m robustret.experiment --queries DIR. " + FOLDER_SIZES + ".",
    )
    export.add_argument("--config", type=Path, metavar="FILE",
                        help="take dataset, dataset_options, image_size, per_class, seed and "
                        "profile from an experiment config (flags override it)")
    export.add_argument("--dataset", default=None, metavar="SPEC",
                        help="synthetic (default) | smallnorb:PATH | folder:PATH")
    export.add_argument("--degrade", nargs="+", required=True, metavar="NAME",
                        choices=[*_degradation_names(), *group_names()],
                        help=f"degradation(s): {', '.join(_degradation_names())}, or groups: "
                        f"{', '.join(group_names())} (docs/degradations.md)")
    export.add_argument("--severity", nargs="+", default=["3"], metavar="LEVEL",
                        choices=[str(i) for i in range(1, 6)] + ["all"],
                        help="levels 1..5 or all (default 3)")
    export.add_argument("--seed", type=int_at_least(0), default=None,
                        help="the experiment seed (default 0): data split and draws")
    export.add_argument("--image-size", type=int_at_least(1), default=None, metavar="N",
                        help="as the experiment's --image-size (default: the quick profile's 64)")
    export.add_argument("--per-class", type=int_at_least(1), default=None, metavar="N",
                        help="as the experiment's --per-class (default: all)")
    export.add_argument("--out", required=True, metavar="DIR",
                        help="the set's folder; several conditions go to DIR/NAME-sLEVEL/")
    fixture = sub.add_parser(
        "landmark-fixture", help="write a tiny landmark benchmark in an official format",
        description="Write a tiny landmark benchmark (3 landmarks x 4 photos, one query each, "
        "64 x 48 JPEGs) in the official file layout of FORMAT, for trying "
        "python -m robustret.experiment.landmarks (docs/landmarks.md).")
    fixture.add_argument("out", type=Path, metavar="OUT_DIR", help="the benchmark's folder")
    fixture.add_argument("--format", required=True, choices=LANDMARK_SCHEMES,
                         help="the layout: oxford5k / paris6k (gt/ folder) or roxford5k / "
                         "rparis6k (gnd_NAME.pkl)")
    fixture.add_argument("--landmarks", type=int_at_least(1), default=3, metavar="N",
                         help="landmarks, one query each (1..8, default 3)")
    fixture.add_argument("--per-landmark", type=int_at_least(4), default=4, metavar="N",
                         help="photos per landmark (default 4)")
    fixture.add_argument("--seed", type=int_at_least(0), default=0)
    return parser


def _fixture(args: argparse.Namespace) -> int:
    """``landmark-fixture``: write the fixture benchmark."""
    root = args.out
    if root.is_file() or (root.is_dir() and any(root.iterdir())):
        raise ConfigError(f"{root} is a file or a non-empty folder; choose a new folder")
    check_writable_folder(root, "fixture folder", "OUT_DIR")
    try:
        write_landmark_fixture(root, args.format, landmarks=args.landmarks,
                               per_landmark=args.per_landmark, seed=args.seed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    sys.stdout.write(f"{args.format} fixture: {args.landmarks} landmarks x {args.per_landmark} "
                     f"photos -> {root}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad spec / data)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    body = {"export": _export, "info": _info, "landmark-fixture": _fixture}[args.command]
    status, _ = run_command(PROG, lambda: body(args))
    return status


def _readers_errors_as_config_errors(work: Callable[[], T]) -> T:
    """``work()``, with the data readers' bad-input errors (a bad spec, a corrupt or unreadable
    file: ``ValueError``, ``TypeError``) raised as :class:`ConfigError`, one line at the
    boundary."""
    try:
        return work()
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from exc


def _info(args: argparse.Namespace) -> int:
    """``info``: describe a data set (a folder's survey first) and write its preview."""
    if args.preview:  # before the (maybe slow) load: a preview that cannot be written
        _check_preview_path(Path(args.preview))

    def read() -> RetrievalData:
        scheme, _, location = args.dataset.strip().partition(":")
        if scheme.lower() == "folder" and location and Path(location).expanduser().is_dir():
            survey = survey_folder(Path(location).expanduser(), args.image_size)
            sys.stdout.write(survey.describe() + "\n\n")
        return load(args.dataset, image_size=args.image_size, channels=args.channels,
                    per_class=args.per_class, seed=args.seed)

    data = _readers_errors_as_config_errors(read)
    sys.stdout.write(data.describe() + "\n")
    if args.preview:
        path = write_preview(data, args.preview, seed=args.seed)
        sys.stdout.write(f"preview: {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
