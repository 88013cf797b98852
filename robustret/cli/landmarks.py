"""``python -m robustret.experiment.landmarks``: the corrupted landmark benchmark.

Examples::

    python -m robustret.experiment.landmarks --dataset roxford5k:data/roxford5k \
        --weights resnet50-0676ba61.pth --backbone resnet50 --degrade study --severity all
    python -m robustret.experiment.landmarks --dataset oxford5k:data/oxford5k --degrade noise

The benchmark's queries are cropped to their boxes, degraded (and restored), searched against
the whole gallery and scored by the protocol: mAP and mP@1/5/10 for Easy / Medium / Hard
(revisited) or the classic mAP with its non-interpolated and 11-point variants (docs/landmarks.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import restoration
from degradations import available
from degradations.groups import group_names
from robustret.cli.boundary import int_at_least, run_command
from robustret.core.checks import ConfigError
from robustret.data.landmark_fixture import write_landmark_fixture
from robustret.data.landmarks import parse_landmark_spec
from robustret.experiment.landmarks import LandmarkConfig, LandmarkResult, run_landmarks
from robustret.experiment.landmarks.run import RESTORE_CHOICES
from robustret.retrieval.ranking import METRIC_NAMES

PROG = "python -m robustret.experiment.landmarks"


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="The corrupted landmark benchmark: a landmark benchmark's cropped "
        "queries clean, degraded and restored, scored by the benchmark's own protocol "
        "(docs/landmarks.md). Writes results.md and results.json to --out.")
    add = parser.add_argument
    add("--dataset", required=True, metavar="FORMAT:PATH",
        help="oxford5k:PATH | paris6k:PATH (PATH/gt/ ground-truth folder, PATH/jpg/ images) | "
        "roxford5k:PATH | rparis6k:PATH (PATH/gnd_NAME.pkl, PATH/jpg/)")
    add("--write-fixture", action="store_true",
        help="first write a tiny fixture benchmark in FORMAT's layout at PATH (a new or empty "
        "folder; python -m robustret.data landmark-fixture), then run on it")
    add("--distractors", type=Path, metavar="DIR",
        help="extra gallery images (R1M: DIR/revisitop1m.txt naming DIR/jpg/ files, else every "
        "image under DIR)")
    add("--gt-dir", type=Path, metavar="DIR", help="classic formats: the ground-truth folder "
        "when it is not PATH/gt")
    add("--image-dir", type=Path, metavar="DIR", help="the image folder when it is not PATH/jpg")
    add("--degrade", nargs="+", default=["study"], metavar="NAME",
        choices=[*available(), *group_names()],
        help=f"degradations or groups ({', '.join(group_names())}); default study")
    add("--severity", nargs="+", default=["3"], metavar="LEVEL",
        choices=[str(i) for i in range(1, 6)] + ["all"], help="levels 1..5 or all (default 3)")
    add("--restore", nargs="+", default=["classical"], metavar="NAME",
        choices=[*RESTORE_CHOICES, *restoration.classical()],
        help="none, classical (each degradation's classical baseline, the family policy; "
        "default), estimated, or classical filters: "
        f"{', '.join(restoration.classical())}")
    add("--restorer-file", nargs="+", type=Path, default=[], metavar="PATH",
        help="saved restorers (restoration.save, a training folder's last.pt) applied to "
        "every degradation")
    add("--weights", type=Path, metavar="PATH",
        help="local torchvision checkpoint of the backbone; without it the backbone is a seeded "
        "untrained network and the scores are a smoke test only")
    add("--backbone", default="resnet34", help="retriever backbone (default resnet34)")
    add("--image-size", type=int_at_least(8), default=128, metavar="N",
        help="every image, query crops too, is resized to N x N (default 128)")
    add("--channels", choices=("rgb", "gray"), default="rgb")
    add("--metric", choices=METRIC_NAMES, default="cosine", help="default cosine")
    add("--topk", nargs="+", type=int_at_least(1), default=[1, 5, 10], metavar="K",
        help="k of mP@k (default 1 5 10)")
    add("--seed", type=int_at_least(0), default=0)
    add("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    add("--export", action="store_true",
        help="also write each condition's degraded queries as a query set to OUT/queries/")
    add("--queries", dest="queries_dir", type=Path, metavar="DIR",
        help="score the degraded query sets under DIR (written by --export) instead of "
        "degrading the queries")
    add("--out", type=Path, default=Path("experiments/results/landmarks"), metavar="DIR",
        help="output folder (default experiments/results/landmarks)")
    add("-q", "--quiet", action="store_true", help="only print the table")
    return parser


def config_from_args(args: argparse.Namespace) -> LandmarkConfig:
    """The :class:`LandmarkConfig` of the parsed flags."""
    severities = range(1, 6) if "all" in args.severity else sorted({int(s) for s in args.severity})
    return LandmarkConfig(
        dataset=args.dataset, out_dir=args.out, degradations=tuple(args.degrade),
        severities=tuple(severities), restore=tuple(args.restore),
        restorer_files=tuple(args.restorer_file), image_size=args.image_size,
        channels=args.channels, metric=args.metric, ks=tuple(args.topk), seed=args.seed,
        backbone=args.backbone, weights=args.weights, distractors=args.distractors,
        gt_dir=args.gt_dir, image_dir=args.image_dir, export=args.export,
        queries_dir=args.queries_dir, device=args.device)


def _write_fixture(spec: str) -> None:
    """``--write-fixture``: the fixture benchmark at the spec's path (new or empty folder)."""
    form, root = parse_landmark_spec(spec)
    if root.is_file() or (root.is_dir() and any(root.iterdir())):
        raise ConfigError(f"--write-fixture: {root} is a file or a non-empty folder; name a new "
                          "folder, or leave --write-fixture out to run on what is there")
    write_landmark_fixture(root, form)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)

    def work() -> LandmarkResult:
        config = config_from_args(args)
        if args.write_fixture:
            _write_fixture(config.dataset)
        return run_landmarks(config)

    status, result = run_command(PROG, work)
    if result is None:
        return status
    for note in result.notes:
        print(f"NOTE: {note}")
    print(result.table)
    print("\nsummary over corruptions (mCE: the error against the clean run's; docs/landmarks.md)")
    print(result.summary)
    print("results: " + "  ".join(str(p) for p in result.paths.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
