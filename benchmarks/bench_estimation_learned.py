"""The learned family estimator beside the classical one, on the built-in data's queries.

    .venv/bin/python benchmarks/bench_estimation_learned.py [--n 400] [--size 64] [--seed 0]
        [--steps 3000] [--sensor-noise S] [--sensor-fraction F] [--threads N]
        [--save FILE | --load FILE] [--out FILE]

Trains :class:`restoration.estimate_learned.FamilyNet` (``robustret.train.estimator``) on the
gallery's training part of ``synthetic`` (never the queries, never the held-out tenth), or
loads one with ``--load``; then degrades ``n`` query images (evenly spaced over the query
split) as an experiment does (``degradations.apply_indexed``, seed ``seed``) with each of the
study's six degradations and the two realistic variants at severities 1..5, and with the
``wild`` set (severity 5: clean or any member at any severity), and classifies every image with
``restoration.estimate.estimate_degradation`` (classical) and ``classify_family`` (learned).
Prints (and with ``--out`` writes) a markdown report: the family per degradation and severity
for both side by side, the pooled confusion per family and variant, the clean false-positive
rate, the noise kind, the wild set per family, a sweep of the learned one's ``clean_below``,
sharp images with faint sensor noise (a probe, truth clean), and the time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_estimation, beside it
from bench_estimation import evenly_spaced, run_facts  # noqa: E402

import degradations  # noqa: E402
from degradations.wild import REALISTIC, WILD_MEMBERS  # noqa: E402
from restoration.estimate import FAMILIES, estimate_degradation  # noqa: E402
from restoration.estimate_learned import (  # noqa: E402
    FamilyNet,
    estimate_family,
    family_from_probabilities,
    load_estimator,
    save_estimator,
)
from restoration.routed import WILD_FAMILY_CODES  # noqa: E402
from robustret.core.io import atomic_write_text  # noqa: E402
from robustret.core.rng import make_generator, stream_seed  # noqa: E402
from robustret.data import load  # noqa: E402
from robustret.train.estimator import (  # noqa: E402
    EstimatorTrainConfig,
    estimator_training_images,
    train_estimator,
)

NAMES = ("gaussian_noise", "salt_pepper", "speckle", "noise", "motion_blur",
         "realistic_motion_blur", "lowres", "realistic_lowres")
ESTIMATORS = ("classical", "learned")
WILD_SEVERITY = 5
"""The wild row's level: every member at severities 1..5 (the full protocol)."""
SENSOR_SIGMAS = (0.005, 0.01, 0.02)
"""Faint Gaussian noise added to clean images in the sensor-noise probe (the realistic motion
blur adds 0.01; the study's mildest Gaussian noise is 0.05)."""
CLEAN_BELOW = (None, 0.5, 0.2, 0.05)
"""The learned estimator's ``clean_below`` settings compared (None: the most probable)."""


class Case(NamedTuple):
    """One row: a degradation at a severity (``None``: clean), each image's true family and
    variant, each estimator's family codes and seconds, the learned family probabilities."""

    label: str
    truth: Tensor            # (B,) int64 family codes
    variant: list[str]       # per image: "clean", "study" or "realistic"
    found: dict[str, Tensor]
    seconds: dict[str, float]
    probabilities: Tensor    # (B, 4) the learned estimator's
    kinds: dict[str, Tensor]  # each estimator's (B,) noise-kind codes
    kind_truth: Tensor | None = None  # (B,) drawn noise-kind codes of a noise row


def _variant(name: str | None) -> str:
    return "clean" if name is None else "realistic" if name in REALISTIC else "study"


def classify(model: FamilyNet, images: Tensor,
             ) -> tuple[dict[str, Tensor], dict[str, float], Tensor, dict[str, Tensor]]:
    """Each estimator's (B,) family codes and its seconds, the learned (B, 4)
    probabilities, and each estimator's (B,) noise-kind codes."""
    start = time.perf_counter()
    classical = estimate_degradation(images)
    middle = time.perf_counter()
    learned = estimate_family(model, images)
    end = time.perf_counter()
    return ({"classical": classical.family.cpu(), "learned": learned.family.cpu()},
            {"classical": middle - start, "learned": end - middle},
            learned.probabilities.cpu(),
            {"classical": classical.noise_kind.cpu(), "learned": learned.noise_kind.cpu()})


def run_cases(model: FamilyNet, images: Tensor, indices: Tensor, seed: int) -> list[Case]:
    """Clean images, every (degradation, severity), and the wild set."""
    count = images.shape[0]
    cases = [Case("clean", torch.zeros(count, dtype=torch.long), ["clean"] * count,
                  *classify(model, images))]
    for name in NAMES:
        code = FAMILIES.index(degradations.family(name))
        for severity in range(1, 6):
            degraded, params = degradations.apply_indexed(
                images, name, severity, seed=seed, indices=indices, return_params=True)
            kind = params["kind"].cpu().long() if "kind" in params else None
            cases.append(Case(f"{name} {severity}", torch.full((count,), code),
                              [_variant(name)] * count, *classify(model, degraded), kind))
            print(f"  {cases[-1].label}: " + ", ".join(
                f"{k} {v:.1f} s" for k, v in cases[-1].seconds.items()), file=sys.stderr)
    degraded, params = degradations.apply_indexed(images, "wild", WILD_SEVERITY, seed=seed,
                                                  indices=indices, return_params=True)
    member = params["member"].cpu().long()
    variant = [_variant(None if m < 0 else WILD_MEMBERS[m]) for m in member.tolist()]
    cases.append(Case(f"wild {WILD_SEVERITY}", WILD_FAMILY_CODES[member + 1], variant,
                      *classify(model, degraded)))
    return cases


def sensor_probe(model: FamilyNet, images: Tensor, seed: int) -> list[Case]:
    """Clean images plus faint Gaussian noise of each of :data:`SENSOR_SIGMAS` (a sharp photo
    with sensor noise), truth ``clean``; not part of the confusion tables."""
    cases = []
    for number, sigma in enumerate(SENSOR_SIGMAS):
        generator = make_generator(stream_seed(seed, "bench/sensor", number))
        noisy = (images + sigma * torch.randn(images.shape, generator=generator)).clamp(0, 1)
        cases.append(Case(f"clean + N(0, {sigma:g})", torch.zeros(images.shape[0],
                                                                  dtype=torch.long),
                          ["clean"] * images.shape[0], *classify(model, noisy)))
    return cases


def _pct(part: Tensor) -> str:
    return f"{100 * float(part.float().mean()):.1f}" if part.numel() else "-"


def family_table(cases: list[Case]) -> list[str]:
    """Per row: % of images each estimator puts in each family (the right one in bold)."""
    head = " | ".join(f"{e} {f}" for e in ESTIMATORS for f in FAMILIES)
    lines = [f"| degradation, severity | {head} |",
             "|---|" + "---:|" * (len(ESTIMATORS) * len(FAMILIES))]
    for case in cases:
        cells = []
        for estimator in ESTIMATORS:
            for code in range(len(FAMILIES)):
                text = _pct(case.found[estimator] == code)
                cells.append(f"**{text}**" if code == int(case.truth[0]) else text)
        lines.append(f"| {case.label} | " + " | ".join(cells) + " |")
    return lines


def _groups(cases: list[Case]) -> list[tuple[str, Tensor, dict[str, Tensor]]]:
    """(true family and variant, its images' true codes, each estimator's codes), pooled over
    the rows of one degradation table (the wild row left out)."""
    truth = torch.cat([c.truth for c in cases[:-1]])
    variant = [v for c in cases[:-1] for v in c.variant]
    found = {e: torch.cat([c.found[e] for c in cases[:-1]]) for e in ESTIMATORS}
    out = []
    for code, family in enumerate(FAMILIES):
        for kind in ("clean", "study", "realistic"):
            chosen = torch.tensor([v == kind for v in variant]) & (truth == code)
            if bool(chosen.any()):
                label = family if kind == "clean" else f"{family} ({kind})"
                out.append((label, truth[chosen], {e: f[chosen] for e, f in found.items()}))
    return out


def confusion_tables(cases: list[Case]) -> list[str]:
    """True family and variant (rows, all severities pooled) x estimated family, counts."""
    lines = []
    for estimator in ESTIMATORS:
        lines += [f"{estimator}:", "",
                  "| true \\ estimated | " + " | ".join(FAMILIES) + " | recall % |",
                  "|---|" + "---:|" * (len(FAMILIES) + 1)]
        for label, truth, found in _groups(cases):
            counts = torch.bincount(found[estimator], minlength=len(FAMILIES))
            lines.append(f"| {label} | " + " | ".join(str(int(v)) for v in counts)
                         + f" | {_pct(found[estimator] == truth)} |")
        lines.append("")
    return lines


def threshold_table(cases: list[Case]) -> list[str]:
    """The learned estimator's recall per true family and variant (pooled over the rows of
    the degradation table) and on the wild set, for each ``clean_below`` of
    :data:`CLEAN_BELOW`; the clean row's recall is 100 minus its false-positive rate."""
    groups = _groups(cases)
    probabilities = torch.cat([c.probabilities for c in cases[:-1]])
    truth = torch.cat([c.truth for c in cases[:-1]])
    variant = [v for c in cases[:-1] for v in c.variant]
    wild = cases[-1]
    lines = ["| learned, clean_below | " + " | ".join(label for label, _, _ in groups)
             + " | wild set |", "|---|" + "---:|" * (len(groups) + 1)]
    for threshold in CLEAN_BELOW:
        found = family_from_probabilities(probabilities, threshold)
        cells = []
        for label, _, _ in groups:
            family, _, kind = label.partition(" (")
            chosen = torch.tensor([v == (kind.rstrip(")") or "clean") for v in variant]) & (
                truth == FAMILIES.index(family))
            cells.append(_pct(found[chosen] == truth[chosen]))
        wild_found = family_from_probabilities(wild.probabilities, threshold)
        name = "most probable" if threshold is None else f"{threshold:g}"
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | {_pct(wild_found == wild.truth)} |")
    return lines


def kind_table(cases: list[Case]) -> list[str]:
    """Noise-kind accuracy among the noise rows' images each estimator calls noisy, per noise
    degradation (severities pooled)."""
    noise = FAMILIES.index("noise")
    lines = ["| degradation | " + " | ".join(f"{e} kind right %" for e in ESTIMATORS) + " |",
             "|---|" + "---:|" * len(ESTIMATORS)]
    names = dict.fromkeys(c.label.rsplit(" ", 1)[0] for c in cases if c.kind_truth is not None)
    for name in names:
        rows = [c for c in cases if c.kind_truth is not None and c.label.startswith(name + " ")]
        cells = []
        for estimator in ESTIMATORS:
            noisy = torch.cat([c.found[estimator] == noise for c in rows])
            right = torch.cat([c.kinds[estimator] == c.kind_truth for c in rows])
            cells.append(_pct(right[noisy]))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def wild_table(case: Case) -> list[str]:
    """The wild set per true family and variant: each estimator's recall."""
    variant = torch.tensor([{"clean": 0, "study": 1, "realistic": 2}[v] for v in case.variant])
    lines = ["| true family (variant) | images | " + " | ".join(
                 f"{e} right %" for e in ESTIMATORS) + " |",
             "|---|---:|" + "---:|" * len(ESTIMATORS)]
    for code, family in enumerate(FAMILIES):
        for number, kind in enumerate(("clean", "study", "realistic")):
            chosen = (case.truth == code) & (variant == number)
            if not bool(chosen.any()):
                continue
            label = family if kind == "clean" else f"{family} ({kind})"
            lines.append(f"| {label} | {int(chosen.sum())} | " + " | ".join(
                _pct(case.found[e][chosen] == case.truth[chosen]) for e in ESTIMATORS) + " |")
    lines.append(f"| all | {len(case.truth)} | " + " | ".join(
        _pct(case.found[e] == case.truth) for e in ESTIMATORS) + " |")
    return lines


def header(args: argparse.Namespace, count: int, size: tuple[int, int],
           training: str) -> list[str]:
    return run_facts("bench_estimation_learned.py") + [
        f"- data: `synthetic`, {size[0]} x {size[1]} px; {count} query images (evenly "
        f"spaced), degradation seed {args.seed}",
        f"- learned estimator: {training}"]


def report(cases: list[Case], probe: list[Case], args: argparse.Namespace,
           size: tuple[int, int], training: str) -> str:
    count = len(cases[0].truth)
    images = sum(len(c.truth) for c in cases)
    speed = ", ".join(f"{e} {1000 * sum(c.seconds[e] for c in cases) / images:.2f} ms"
                      for e in ESTIMATORS)
    clean = cases[0]
    lines = header(args, count, size, training) + [
        f"- time per image (all rows): {speed}", "",
        "Clean images read as degraded (false positives): " + ", ".join(
            f"{e} {_pct(clean.found[e] != 0)}%" for e in ESTIMATORS) + ".", "",
        "#### Family per degradation and severity (% of images)", ""]
    lines += family_table(cases[:-1])
    lines += ["", "#### Family confusion, all severities pooled (images)", ""]
    lines += confusion_tables(cases)
    lines += ["#### Noise kind among the images called noisy", ""]
    lines += kind_table(cases)
    lines += ["", f"#### The wild set (`wild` severity {WILD_SEVERITY}, {count} images)", ""]
    lines += wild_table(cases[-1])
    lines += ["", "#### Learned: calling fewer images degraded (`clean_below`; recall %)", ""]
    lines += threshold_table(cases)
    lines += ["", "#### Sharp images with faint sensor noise (% of images; truth: clean)", ""]
    lines += family_table(probe)
    return "\n".join(lines) + "\n"


def trained_model(args: argparse.Namespace, gallery: Tensor) -> tuple[FamilyNet, str]:
    """The learned estimator (loaded or trained on the gallery's training part) and a line
    saying how it was made."""
    if args.load is not None:
        model = load_estimator(args.load)
        return model, (f"loaded from {args.load} (sha256 "
                       f"{model.checkpoint_info['sha256'][:12]})")
    config = EstimatorTrainConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                                  sensor_noise=args.sensor_noise,
                                  sensor_fraction=args.sensor_fraction)
    images = estimator_training_images(gallery, args.seed)
    start = time.perf_counter()
    result = train_estimator(images, config)
    minutes = (time.perf_counter() - start) / 60
    if args.save is not None:
        save_estimator(result.model, args.save, config=config.__dict__,
                       losses=result.losses)
    tail = result.losses[-100:].mean()
    return result.model, (
        f"trained here on the gallery's {images.shape[0]} training images, {config.steps} "
        f"steps of {config.batch_size} (`EstimatorTrainConfig` defaults otherwise: width "
        f"{config.width}, depth {config.depth}, Adam lr {config.lr} cosine-decayed, clean fraction "
        f"{config.clean_fraction}, sensor noise up to {config.sensor_noise} on a share "
        f"{config.sensor_fraction}), seed {config.seed}, in {minutes:.1f} min (measured while "
        f"other work shared the 2 cores); loss of the last 100 steps {float(tail):.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="query images (default 400)")
    parser.add_argument("--size", type=int, default=64, help="image side (default 64: quick)")
    parser.add_argument("--seed", type=int, default=0,
                        help="data, degradation and training seed")
    parser.add_argument("--steps", type=int, default=EstimatorTrainConfig.steps,
                        help="training steps")
    parser.add_argument("--batch-size", type=int, default=EstimatorTrainConfig.batch_size,
                        help="training images per step")
    parser.add_argument("--sensor-noise", type=float,
                        default=EstimatorTrainConfig.sensor_noise,
                        help="largest sigma of the label-keeping training sensor noise (0: none)")
    parser.add_argument("--sensor-fraction", type=float,
                        default=EstimatorTrainConfig.sensor_fraction,
                        help="share of training images that get it")
    parser.add_argument("--save", type=Path, default=None, help="write the trained estimator")
    parser.add_argument("--load", type=Path, default=None,
                        help="use this saved estimator instead of training one")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own; 1 is several times faster "
                             "while other work shares the cores)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    data = load("synthetic", image_size=args.size, seed=args.seed)
    model, training = trained_model(args, data.gallery.images)
    indices, images = evenly_spaced(data.queries.images, args.n)
    text = report(run_cases(model, images, indices, args.seed),
                  sensor_probe(model, images, args.seed), args,
                  (images.shape[-2], images.shape[-1]), training)
    print(text)
    if args.out is not None:
        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
