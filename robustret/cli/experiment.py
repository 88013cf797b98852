"""``python -m robustret.experiment``: the study end to end in one command.

Examples::

    python -m robustret.experiment --degrade noise
    python -m robustret.experiment --degrade study --restore all --severity all
    python -m robustret.experiment --degrade imagenet-c --restore none --severity all
    python -m robustret.experiment --dataset folder:PATH/TO/CLASS_FOLDERS --degrade lowres
    python -m robustret.experiment --config experiments/configs/smoke.toml --out /tmp/smoke
    torchrun --nproc_per_node=2 -m robustret.experiment --config ...   # docs/distributed.md

The pipeline: load data -> train (or reuse) the retriever -> index the gallery -> degrade the
queries (seeded) -> restore -> embed -> search -> top-k accuracy -> report. Trained models are
cached, so a second run with another degradation or metric reuses them.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import degradations
from degradations.groups import group_names
from robustret.cli.boundary import run_command
from robustret.core import distributed
from robustret.experiment.config import (
    ADAPTATION_SIDES,
    DEGRADE_SIDES,
    EXECUTORS,
    INDEXES,
    MEASURES,
    METRICS,
    POOLINGS,
    PROFILES,
    RESTORE_MODES,
    RETRIEVER_LOSSES,
    WHITENINGS,
    ExperimentConfig,
    load_config_file,
)
from robustret.experiment.embedding_routes import EMBEDDING_MAPS
from robustret.experiment.photos import PhotoResult, run_photo_queries
from robustret.experiment.policy import AUTO, pairings
from robustret.experiment.recipes import ALIASES, restorer_names
from robustret.experiment.runner import run
from robustret.experiment.seeds import run_seeds

PROG = "python -m robustret.experiment"


def _degradation_names() -> list[str]:
    return degradations.available()


def _restorer_names() -> list[str]:
    return restorer_names()


def _index_option(text: str) -> tuple[str, int]:
    """``KEY=INT`` of ``--index-option``."""
    key, sep, value = text.partition("=")
    if sep and key.strip():
        try:
            return key.strip(), int(value)
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"expected KEY=INTEGER (e.g. nprobe=16); got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface; every default is None so a config file can fill it."""
    names = _degradation_names()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Measure how CNN image retrieval degrades when queries are noisy, blurred or "
            "low-resolution, and how much restoration networks win back. Prints the study's "
            "table (top-k matching accuracy, clean / degraded / restored) and writes "
            "results.{json,csv,md}, TensorBoard logs and, for severity sweeps, a plot to --out."
        ),
        epilog="Precedence: built-in defaults < --config FILE.toml < flags. "
        "Open the logs with: tensorboard --logdir OUT",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_arguments(parser)
    _add_condition_arguments(parser, names)
    _add_training_arguments(parser, names)
    _add_evaluation_arguments(parser)
    _add_run_arguments(parser)
    return parser


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config`` and the data: ``--dataset`` and its reader's options."""
    add = parser.add_argument
    add("--config", type=Path, metavar="FILE",
        help="TOML file with any of the settings below, or the config.json of a finished run "
        "(repeats that run)")
    add(
        "--dataset",
        metavar="SPEC",
        help="synthetic (built in, default) | smallnorb:PATH | folder:PATH",
    )
    add("--decode", choices=("eager", "lazy"),
        help="folder data: eager (default) decodes the whole folder at once; lazy decodes one "
        "file at a time through a DataLoader (identical images; dataset_options.decode)")
    add("--workers", type=int, metavar="N",
        help="folder data with --decode lazy: DataLoader processes that decode in parallel "
        "(default 0; dataset_options.workers)")


def _add_condition_arguments(parser: argparse.ArgumentParser, names: list[str]) -> None:
    """The conditions and figures of the table: degradations, severities, restoration, metric,
    test-time adaptation, k."""
    add = parser.add_argument
    add("--degrade", nargs="+", metavar="NAME", choices=names + group_names(),
        help=f"degradations to apply to the queries: {', '.join(names)}; or groups of them, "
        "mixed with names: study = the study's six, imagenet-c = ImageNet-C's corruptions but "
        "frost, held-out = ImageNet-C's held-out ones, all = every registered one "
        "(docs/degradations.md; default: noise); wild = the wild query set, each query clean "
        "or a random family, variant and severity (--severity 5 draws every severity)")
    add("--severity", nargs="+", metavar="LEVEL", choices=[str(i) for i in range(1, 6)] + ["all"],
        help="severity levels 1..5 or all (default 3 = the study's parameters)")
    add("--restore", choices=[*RESTORE_MODES, *_restorer_names(), *ALIASES], metavar="MODE",
        help=f"restoration of degraded queries: auto (default; {AUTO} for every degradation: "
        "one restorer for every query that reads nothing the degradation drew, chosen by "
        "measurement, docs/results.md), oracle (the toolkit's best learned restorer per "
        f"family: {pairings('learned')}; each is told the drawn degradation, an upper bound; "
        "oracle_route on the wild set), estimated (estimates each query's degradation from "
        "the image and routes it to a classical filter; it knows nothing else), study (the "
        "study's "
        f"pixel-trained pairing: {pairings('network')}), classical, all, none, or one "
        f"restorer: {', '.join(_restorer_names())}")
    add("--embedding-map", choices=EMBEDDING_MAPS,
        help=f"auto's route in embedding space: resolution (default) maps the embedding of each "
        f"query estimated low-resolution by its Haar level's map, learned on the gallery's "
        f"training part (what it knows: the estimated level); none searches with {AUTO}'s "
        "restored images as embedded")
    add("--metric", choices=[*METRICS, "both"], help="ranking metric: l2, cosine or both (default)")
    add("--adapt", nargs="+", choices=["none", *ADAPTATION_SIDES], metavar="SIDE",
        help="also report test-time BatchNorm adaptation of the retriever on the degraded "
        "queries: queries (only they are embedded by the adapted retriever) and/or both")
    add(
        "--topk",
        nargs="+",
        type=int,
        metavar="K",
        help="k values of top-k accuracy (default 1 5 10)",
    )


def _add_training_arguments(parser: argparse.ArgumentParser, names: list[str]) -> None:
    """The profile, seed, device, folders and the retriever's training."""
    add = parser.add_argument
    add(
        "--profile",
        choices=PROFILES,
        help="quick (default: minutes on a CPU) or paper (the study's 200-epoch schedule)",
    )
    add("--seed", type=int, help="the one seed all randomness derives from (default 0)")
    add("--device", help="auto (default), cpu, cuda or cuda:N")
    add("--out", "--out-dir", dest="out_dir", type=Path, metavar="DIR",
        help="output folder (default experiments/results/default)")
    add(
        "--weights",
        type=Path,
        metavar="PATH",
        help="local checkpoint (state_dict .pth, or timm .safetensors) to initialise the "
        "backbone; nothing is downloaded",
    )
    add("--backbone", help="retriever backbone: resnet34 (default), resnet18, resnet50, vgg19, "
        "any torchvision classification model (tv:NAME, e.g. tv:convnext_tiny) or, with timm "
        "installed (pip install 'robustret[timm]'), any timm model (timm:NAME); built without "
        "weights (docs/descriptors.md)")
    _add_descriptor_arguments(parser)
    add(
        "--image-size",
        type=int,
        metavar="N",
        help="centre-crop each image to a square and resize it to N x N (default: the "
        "profile's, 64 for quick; paper keeps the native size)",
    )
    add(
        "--per-class",
        type=int,
        metavar="N",
        help="cap images per class in each split (default: the profile's)",
    )
    add("--train-degrade", nargs="+", metavar="NAME", choices=names,
        help="train the retriever from scratch with these degradations as augmentation")
    add("--robust-train", nargs="+", metavar="NAME", choices=names,
        help="fine-tune the trained retriever on these degradations with a clean-vs-degraded "
        "embedding consistency term (stability training); rows record what it saw")
    add("--robust-epochs", type=int, metavar="N",
        help="epochs of that fine-tuning (default 3)")
    add("--retriever-epochs", type=int, metavar="N", help="override the profile's retriever epochs")
    add("--restorer-epochs", type=int, metavar="N", help="override the profile's restorer epochs")
    add(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="cache of trained models (default ~/.cache/robustret)",
    )


def _add_descriptor_arguments(parser: argparse.ArgumentParser) -> None:
    """The retriever's descriptor and training loss (docs/descriptors.md)."""
    add = parser.add_argument
    add("--pooling", choices=POOLINGS,
        help="global pooling of the trunk's feature map: avg (default: the backbone's own) or "
        "gem (generalised mean, learnable p; CNN backbones only)")
    add("--gem-p", dest="gem_p", type=float, metavar="P",
        help="GeM's exponent p >= 1, its starting value when learned (default 3)")
    add("--gem-fixed", dest="gem_learn", action="store_false", default=None,
        help="keep GeM's p fixed instead of learning it")
    add("--whiten", choices=WHITENINGS,
        help="descriptor whitening: none (default) or pca (PCA-whitening learned on the "
        "gallery's training part, L2-normalised descriptors)")
    add("--dim", type=int, metavar="N",
        help="descriptor size after PCA (with --whiten pca; <= the backbone's embedding size)")
    add("--retriever-loss", choices=list(RETRIEVER_LOSSES),
        help="the retriever's training loss: classifier (default, cross-entropy), triplet "
        "(batch-hard), contrastive or arcface; pair losses draw several images per class "
        "per batch ([retriever] images_per_class, margin)")


def _add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """What is evaluated and how: query sets, measures, degrade side, index, seeds, reference."""
    add = parser.add_argument
    add("--queries", dest="queries_dir", type=Path, metavar="DIR",
        help="evaluate on a shareable query set written by python -m robustret.data export "
        "(verified: checksums, degradation, severity, seed and data must match the run) instead "
        "of degrading the queries on the fly; the rows are identical")
    add("--query-folder", dest="query_folder", type=Path, metavar="DIR",
        help="real photos as queries: a class-per-folder directory (classes named like the "
        "gallery's) searched as the photos are and restored by auto (and by --restore when it "
        "reads nothing drawn, e.g. blind), with each photo's estimated degradation; writes "
        "OUT/photo_queries.md and .json in place of the planned conditions")
    add("--measures", nargs="+", choices=MEASURES, metavar="NAME",
        help="what each condition reports: topk (the study's hit rate), precision, recall "
        "(@k of --topk), map (full ranking), map_at_r, r_precision (default: topk map "
        "precision); the printed table stays the study's top-k")
    add("--degrade-side", choices=DEGRADE_SIDES,
        help="where the degradation (and the restorer) is applied: query (default, the study), "
        "gallery (clean queries against a degraded, re-embedded gallery) or both")
    add("--index", choices=INDEXES, metavar="NAME",
        help=f"gallery index: {', '.join(INDEXES)} (default exact: the torch search); an "
        "approximate one (faiss-ivf, faiss-ivfpq, faiss-hnsw) also writes OUT/index.json, its "
        "recall@k against exact search")
    add("--index-option", dest="index_options", nargs="+", type=_index_option,
        metavar="KEY=N", help="parameters of an approximate index over its defaults from the "
        "gallery size: nlist, nprobe, train_size, m, nbits, refine (IVF, IVF-PQ); M, "
        "ef_construction, ef_search (HNSW)")
    add("--seeds", nargs="+", type=int, metavar="N",
        help="run the whole pipeline once per seed (into OUT/seed-N) and summarise: mean, std "
        "and a 95%% bootstrap interval over queries, per condition and, with several "
        "severities, per degradation over them, recovery included (OUT/seeds_summary.json)")
    add("--reference", type=Path, metavar="RESULTS_JSON",
        help="results.json of an earlier run: the summary adds the corruption-error ratio "
        "against it (mCE with our own baseline) and the relative one (relative mCE)")


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Where conditions are evaluated, and the output."""
    add = parser.add_argument
    add("--jobs", type=int, metavar="N",
        help="evaluate independent conditions in N worker processes (default 1); models are "
        "trained first, once; the rows are those of --jobs 1")
    add("--executor", choices=EXECUTORS,
        help="local (default: processes on this machine) or submitit (Slurm jobs, options in "
        "the config file's [executor_options]; pip install 'robustret[cluster]')")
    add("--no-tensorboard", dest="tensorboard", action="store_false", default=None,
        help="do not write TensorBoard event files")
    add("-q", "--quiet", action="store_true", help="only print the result table")


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """Merge defaults < ``--config`` < flags into a validated :class:`ExperimentConfig`."""
    values = dict(load_config_file(args.config)) if args.config else {}
    flags = {
        "dataset": args.dataset,
        "degradations": args.degrade,  # group names: ExperimentConfig expands them
        "severities": (
            list(range(1, 6))
            if args.severity and "all" in args.severity
            else [int(s) for s in args.severity]
            if args.severity
            else None
        ),
        "restore": args.restore,
        "embedding_map": args.embedding_map,
        "metrics": (
            list(METRICS) if args.metric == "both" else [args.metric] if args.metric else None
        ),
        "ks": args.topk,
        "adapt": ([] if args.adapt and "none" in args.adapt else args.adapt),
        "profile": args.profile,
        "seed": args.seed,
        "device": args.device,
        "out_dir": args.out_dir,
        "weights": args.weights,
        "backbone": args.backbone,
        "pooling": args.pooling,
        "gem_p": args.gem_p,
        "gem_learn": args.gem_learn,
        "whiten": args.whiten,
        "dim": args.dim,
        "retriever_loss": args.retriever_loss,
        "image_size": args.image_size,
        "per_class": args.per_class,
        "train_degrade": args.train_degrade,
        "robust_train": args.robust_train,
        "robust_epochs": args.robust_epochs,
        "retriever_epochs": args.retriever_epochs,
        "restorer_epochs": args.restorer_epochs,
        "cache_dir": args.cache_dir,
        "queries_dir": args.queries_dir,
        "query_folder": args.query_folder,
        "tensorboard": args.tensorboard,
        "measures": args.measures,
        "degrade_side": args.degrade_side,
        "reference": args.reference,
        "index": args.index,
        "index_options": dict(args.index_options) if args.index_options else None,
        "jobs": args.jobs,
        "executor": args.executor,
    }
    values.update({key: value for key, value in flags.items() if value is not None})
    reader = {"decode": args.decode, "workers": args.workers}  # options of the folder reader
    if any(value is not None for value in reader.values()):
        values["dataset_options"] = {**(values.get("dataset_options") or {}),
                                     **{k: v for k, v in reader.items() if v is not None}}
    if values.get("severities") in ("all", ["all"]):
        values["severities"] = list(range(1, 6))
    return ExperimentConfig.from_dict(values)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the experiment; returns the process exit status (0 ok, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(  # under torchrun the ranks above 0 log warnings only
        level=logging.WARNING if args.quiet or distributed.env_rank() > 0 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    command = " ".join([PROG, *map(shlex.quote, sys.argv[1:] if argv is None else argv)])

    def work():  # kill ends the run like Ctrl-C; finished work is cached
        config = config_from_args(args)
        if args.seeds:
            return config, run_seeds(config, args.seeds, command=command)
        if config.query_folder is not None:
            return config, run_photo_queries(config)

        return config, run(config, command=command)

    try:
        status, outcome = run_command(PROG, work)
    finally:
        distributed.cleanup()
    if outcome is None or outcome[1] is None:  # None: a torchrun rank above 0, rank 0 reports
        return status
    config, result = outcome
    if args.seeds:
        seeds_result = result
        print(seeds_result.table)
        print(f"results: {seeds_result.paths['md']}  {seeds_result.paths['summary']}")
        return 0
    if isinstance(result, PhotoResult):
        print(result.paths["md"].read_text())
        print(f"results: {result.paths['md']}  {result.paths['json']}")
        return 0
    print(result.table)
    print(f"\nconditions: {result.computed} computed, {result.reused} reused from {config.out_dir}")
    print(f"results: {result.paths['md']}  {result.paths['json']}  {result.paths['csv']}")
    if result.index_report is not None:
        print(result.index_report.line())
    if result.tensorboard_dir is not None:
        print(f"tensorboard --logdir {result.tensorboard_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
