"""Accuracy of the classical degradation estimators on the built-in data's queries.

    .venv/bin/python benchmarks/bench_estimation.py [--n 400] [--size 64] [--seed 0] [--out FILE]

For clean images and each of the six study degradations at severities 1..5, ``n`` query images
(evenly spaced over the query split of ``synthetic``) are degraded as an experiment degrades them
(``degradations.apply_indexed``, seed ``seed``), and ``restoration.estimate.estimate_degradation``
estimates them. Prints (and with ``--out`` writes) a markdown report: the family confusion per
degradation and severity and over all severities, the noise-kind confusion, the error of each
estimated parameter against the drawn one, the severity proxy's agreement, and the speed.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import degradations  # noqa: E402
from restoration.estimate import (  # noqa: E402
    FAMILIES,
    NOISE_KINDS,
    DegradationEstimate,
    estimate_degradation,
)
from restoration.estimate_blur import angle_difference, blur_endpoint_error  # noqa: E402
from robustret.core.io import atomic_write_text  # noqa: E402
from robustret.data import load  # noqa: E402

NAMES = ("gaussian_noise", "salt_pepper", "speckle", "noise", "motion_blur", "lowres")
NOISE_TOLERANCE = 0.15
"""Relative error of a noise level counted as right."""
BLUR_TOLERANCE = 1.0
"""Endpoint error (pixels) of a blur displacement counted as right."""
VISIBLE_BLUR = 2.0
"""Blurs at least this long (pixels) put a zero line in the spectrum (the estimator's reach)."""
_OWN_PARAMETER = {"gaussian_noise": "sigma", "salt_pepper": "p", "speckle": "amplitude"}


class Case(NamedTuple):
    """One row: a degradation at a severity (``None`` for clean), its truth and estimate."""

    name: str | None
    severity: int | None
    params: dict[str, Tensor]
    estimate: DegradationEstimate
    seconds: float

    @property
    def label(self) -> str:
        return "clean" if self.name is None else f"{self.name} {self.severity}"

    @property
    def family(self) -> int:
        return 0 if self.name is None else FAMILIES.index(degradations.family(self.name))


def run_cases(images: Tensor, indices: Tensor, seed: int) -> list[Case]:
    """Estimate clean images and every (degradation, severity)."""
    cases = []
    start = time.perf_counter()
    estimate = estimate_degradation(images)
    cases.append(Case(None, None, {}, estimate, time.perf_counter() - start))
    for name in NAMES:
        for severity in range(1, 6):
            degraded, params = degradations.apply_indexed(
                images, name, severity, seed=seed, indices=indices, return_params=True)
            start = time.perf_counter()
            estimate = estimate_degradation(degraded)
            cases.append(Case(name, severity, params, estimate, time.perf_counter() - start))
            print(f"  {cases[-1].label}: {cases[-1].seconds:.1f} s", file=sys.stderr)
    return cases


def _pct(part: Tensor) -> str:
    return f"{100 * float(part.float().mean()):.1f}" if part.numel() else "-"


def _median(values: Tensor, digits: int = 3) -> str:
    return f"{float(values.median()):.{digits}f}" if values.numel() else "-"


def family_table(cases: list[Case]) -> list[str]:
    """Per row: % of images estimated as each family (the right one in bold)."""
    lines = ["| degradation, severity | " + " | ".join(FAMILIES) + " |",
             "|---|" + "---:|" * len(FAMILIES)]
    for case in cases:
        cells = []
        for code in range(len(FAMILIES)):
            text = _pct(case.estimate.family == code)
            cells.append(f"**{text}**" if code == case.family else text)
        lines.append(f"| {case.label} | " + " | ".join(cells) + " |")
    return lines


def confusion_matrix(cases: list[Case]) -> list[str]:
    """True family (rows, all severities pooled) x estimated family, image counts."""
    counts = torch.zeros(len(FAMILIES), len(FAMILIES), dtype=torch.long)
    for case in cases:
        counts[case.family] += torch.bincount(case.estimate.family.cpu(),
                                              minlength=len(FAMILIES))
    lines = ["| true \\ estimated | " + " | ".join(FAMILIES) + " | recall % |",
             "|---|" + "---:|" * (len(FAMILIES) + 1)]
    for row, name in enumerate(FAMILIES):
        total = int(counts[row].sum())
        recall = f"{100 * int(counts[row, row]) / total:.1f}" if total else "-"
        lines.append(f"| {name} | " + " | ".join(str(int(v)) for v in counts[row])
                     + f" | {recall} |")
    return lines


def kind_table(cases: list[Case]) -> list[str]:
    """Noise kind confusion among images estimated noisy, pooled over severities, and the
    accuracy per severity."""
    noise_cases = [c for c in cases if c.name in ("gaussian_noise", "salt_pepper", "speckle",
                                                  "noise")]
    counts = torch.zeros(3, 3, dtype=torch.long)
    per_severity = {s: [0, 0] for s in range(1, 6)}
    for case in noise_cases:
        noisy = case.estimate.family.cpu() == FAMILIES.index("noise")
        true, found = case.params["kind"].cpu()[noisy], case.estimate.noise_kind.cpu()[noisy]
        counts += torch.bincount(true * 3 + found, minlength=9).view(3, 3)
        per_severity[case.severity][0] += int((true == found).sum())
        per_severity[case.severity][1] += int(noisy.sum())
    lines = ["| true \\ estimated | " + " | ".join(NOISE_KINDS) + " | recall % |",
             "|---|---:|---:|---:|---:|"]
    for row, name in enumerate(NOISE_KINDS):
        total = int(counts[row].sum())
        lines.append(f"| {name} | " + " | ".join(str(int(v)) for v in counts[row])
                     + f" | {100 * int(counts[row, row]) / max(total, 1):.1f} |")
    lines += ["", "| severity | 1 | 2 | 3 | 4 | 5 |", "|---|---:|---:|---:|---:|---:|",
              "| kind accuracy % | " + " | ".join(
                  f"{100 * right / max(total, 1):.1f}" for right, total in per_severity.values())
              + " |"]
    return lines


def noise_rows(case: Case) -> str:
    """Noise level error on images estimated noisy with the right kind."""
    est = case.estimate
    right = (est.family.cpu() == 1) & (est.noise_kind.cpu() == case.params["kind"].cpu())
    true = torch.tensor([degradations.severity_params(NOISE_KINDS[k], case.severity)[
        _OWN_PARAMETER[NOISE_KINDS[k]]] for k in case.params["kind"].tolist()])
    found = est.noise_level.cpu()
    rel = ((found - true).abs() / true)[right]
    return (f"| {case.label} | {_pct(right)} | {_median((found - true).abs()[right], 4)} | "
            f"{_median(rel)} | {_pct(rel <= NOISE_TOLERANCE)} | "
            f"{_pct(est.severity.cpu() == case.severity)} |")


def blur_rows(case: Case, size: tuple[int, int]) -> str:
    """Blur errors on images estimated blurred whose true blur is at least VISIBLE_BLUR px."""
    est, a, b = case.estimate, case.params["a"].cpu(), case.params["b"].cpu()
    height, width = size
    length = torch.hypot(a * width, b * height)
    visible = length >= VISIBLE_BLUR
    found = est.family.cpu() == FAMILIES.index("blur")
    ok = visible & found
    endpoint = blur_endpoint_error(est.blur_a.cpu(), est.blur_b.cpu(), a, b, size)[ok]
    length_error = (est.blur_length.cpu() - length).abs()[ok]
    true_angle = torch.rad2deg(torch.atan2(b * height, a * width))
    angle_error = angle_difference(est.blur_angle.cpu(), true_angle)[ok]
    return (f"| {case.label} | {_pct(visible)} | {_pct(found[visible])} | "
            f"{_pct(found[~visible])} | {_median(endpoint)} | "
            f"{_pct(endpoint <= BLUR_TOLERANCE)} | {_median(length_error)} | "
            f"{_median(angle_error, 2)} | {_pct(est.severity.cpu() == case.severity)} |")


def level_rows(case: Case) -> str:
    est, true = case.estimate, case.params["level"].cpu()
    counts = torch.bincount(true, minlength=4).tolist()
    return (f"| {case.label} | {counts[1]} / {counts[2]} / {counts[3]} | "
            f"{_pct(est.level.cpu() == true)} | {_pct(est.severity.cpu() == case.severity)} |")


def run_facts(script: str) -> list[str]:
    """A report's command, date and commit, and host lines (``script``: the benchmark's file
    name under ``benchmarks/``; the arguments are this process's)."""
    def shell(command: list[str]) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True,
                                  check=False).stdout.strip()
        except OSError:
            return "unknown"
    cpu = [line.split(":", 1)[1].strip() for line in shell(["lscpu"]).splitlines()
           if line.startswith("Model name")]
    argv = " ".join(sys.argv[1:])
    return [f"- command: `.venv/bin/python benchmarks/{script} {argv}`",
            f"- date: {datetime.date.today().isoformat()}; commit "
            f"{shell(['git', 'rev-parse', '--short', 'HEAD']) or 'unknown'}",
            f"- host: {cpu[0] if cpu else platform.processor()}, "
            f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"]


def evenly_spaced(queries: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """``min(n, Q)`` of the (Q, C, H, W) ``queries``, evenly spaced: their (n,) int64 indices
    and the (n, C, H, W) images, contiguous."""
    indices = torch.linspace(0, queries.shape[0] - 1, min(n, queries.shape[0])).long()
    return indices, queries[indices].contiguous()


def header(args: argparse.Namespace, count: int, size: tuple[int, int]) -> list[str]:
    return run_facts("bench_estimation.py") + [
        f"- data: `synthetic` queries, {count} images (evenly spaced), "
        f"{size[0]} x {size[1]} px, degradation seed {args.seed}"]


def report(cases: list[Case], args: argparse.Namespace, size: tuple[int, int]) -> str:
    count = len(cases[0].estimate)
    seconds = sum(c.seconds for c in cases)
    lines = header(args, count, size) + [
        f"- speed: {len(cases) * count / seconds:.0f} images/s over all rows "
        f"({1000 * seconds / (len(cases) * count):.1f} ms per image)", "",
        "### Family per degradation and severity (% of images)", ""]
    lines += family_table(cases)
    lines += ["", "### Family confusion, all severities pooled (images)", ""]
    lines += confusion_matrix(cases)
    lines += ["", "### Noise kind among images estimated noisy (images)", ""]
    lines += kind_table(cases)
    lines += ["", "### Noise level (the kind's own parameter: sigma, p or amplitude)", "",
              f"Errors over the images estimated noisy with the right kind; within = relative "
              f"error <= {NOISE_TOLERANCE:.0%}; severity = the estimated severity equals the "
              f"drawn one.", "",
              "| degradation, severity | right family and kind % | median abs error | "
              "median rel error | within % | severity % |",
              "|---|---:|---:|---:|---:|---:|"]
    lines += [noise_rows(c) for c in cases if c.name in _OWN_PARAMETER or c.name == "noise"]
    lines += ["", "### Motion blur", "",
              f"visible = true length >= {VISIBLE_BLUR:g} px; errors over visible blurs "
              f"estimated blurred; endpoint = distance between displacements up to the sign; "
              f"within = endpoint <= {BLUR_TOLERANCE:g} px.", "",
              "| severity | visible % | visible found % | shorter found % | median endpoint px "
              "| within % | median length error px | median angle error deg | severity % |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [blur_rows(c, size) for c in cases if c.name == "motion_blur"]
    lines += ["", "### Haar level", "",
              "| severity | drawn levels 1 / 2 / 3 | level exact % | severity % |",
              "|---|---|---:|---:|"]
    lines += [level_rows(c) for c in cases if c.name == "lowres"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="query images (default 400)")
    parser.add_argument("--size", type=int, default=64, help="image side (default 64: quick)")
    parser.add_argument("--seed", type=int, default=0, help="data and degradation seed")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    data = load("synthetic", image_size=args.size, seed=args.seed)
    indices, images = evenly_spaced(data.queries.images, args.n)
    size = (images.shape[-2], images.shape[-1])
    text = report(run_cases(images, indices, args.seed), args, size)
    print(text)
    if args.out is not None:
        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
