"""Which classical restorer serves each route of ``estimated``: retrieval accuracy per candidate.

    .venv/bin/python benchmarks/bench_routes.py [--seed 0] [--cache-dir DIR] [--out FILE]

On the built-in data with the quick profile's retriever of ``--seed`` (trained, or reused from the
experiment's model cache), the query split is degraded exactly as ``python -m
robustret.experiment --degrade noise motion_blur --severity all --seed S`` degrades it, and each
candidate restores it: for the noise mixture the 3x3 ``median``, the ``switching_median``, total
variation at three strengths (weight = strength x each image's MAD sigma), and ``estimated``
with its kind-routed denoiser; for motion blur ``estimated`` with the Wiener filter's
noise-to-signal ratio k at 0.01, 0.003 and 0.001. Prints (and with ``--out`` writes) L2 top-1
(%) per severity, the mean over severities and the recovery ratio, and for noise each candidate
per drawn noise kind (the drawn kind only splits the table; no candidate reads it). The choice
these tables informed is in docs/results.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_estimation import run_facts  # noqa: E402

import restoration  # noqa: E402
from degradations.noise import MIXTURE_KINDS  # noqa: E402
from restoration.classical import WienerDeblur  # noqa: E402
from restoration.routed import EstimateThenRestore  # noqa: E402
from robustret.core.io import atomic_write_text  # noqa: E402
from robustret.evaluation.pipeline import degradation_seed, degrade_queries  # noqa: E402
from robustret.experiment.config import ExperimentConfig  # noqa: E402
from robustret.experiment.runner import _load, _train_and_index  # noqa: E402
from robustret.retrieval.embed import extract_embeddings  # noqa: E402
from robustret.retrieval.metrics import per_query_scores  # noqa: E402

SEVERITIES = (1, 2, 3, 4, 5)
TV_STRENGTHS = (0.5, 0.75, 1.0)
WIENER_K = (0.01, 0.003, 0.001)


def noise_candidates() -> dict[str, Callable[[Tensor], Tensor]]:
    """Name -> restorer of a (B, C, H, W) batch; none reads a drawn parameter."""
    out: dict[str, Callable[[Tensor], Tensor]] = {
        "median": restoration.build("median"),
        "switching_median": restoration.build("switching_median")}
    for strength in TV_STRENGTHS:
        out[f"tv {strength}"] = restoration.build("tv", strength=strength)
    out["estimated"] = restoration.build("estimated")
    return out


def blur_candidates() -> dict[str, Callable[[Tensor], Tensor]]:
    return {f"estimated, k {k}": EstimateThenRestore(blur=WienerDeblur(phase="zero", k=k))
            for k in WIENER_K}


class Scorer:
    """L2 top-1 hits of query batches against the seed's gallery."""

    def __init__(self, seed: int, cache_dir: Path | None) -> None:
        config = ExperimentConfig(seed=seed, cache_dir=cache_dir, tensorboard=False,
                                  out_dir=Path("bench-routes-unused")).resolved().validate()
        self.stage = _load(config, torch.device("cpu"))
        _train_and_index(self.stage, None)
        self.seed = seed

    def hits(self, images: Tensor) -> Tensor:
        """(Q,) float 1/0: whether each query's nearest gallery image (L2) has its class."""
        stage = self.stage
        embeddings = extract_embeddings(stage.retriever.model, images, device=stage.device)
        _, found = stage.indexes["l2"].search(embeddings, 1)
        retrieved = stage.data.gallery.labels[found]  # (Q, 1)
        return per_query_scores(retrieved, stage.data.queries.labels, ["topk"], [1])[("topk", 1)]

    def degraded(self, name: str, severity: int):
        return degrade_queries(self.stage.data.queries.images, name, severity,
                               seed=degradation_seed(self.seed, severity))


def table(scorer: Scorer, name: str, candidates: dict[str, Callable[[Tensor], Tensor]],
          split_by_kind: bool) -> list[str]:
    """Markdown rows: per candidate, top-1 per severity, mean, recovery; with
    ``split_by_kind`` also the mean per drawn noise kind."""
    clean = 100 * float(scorer.hits(scorer.stage.data.queries.images).mean())
    hits: dict[str, list[Tensor]] = {"degraded": [], **{n: [] for n in candidates}}
    kinds = []
    for severity in SEVERITIES:
        made = scorer.degraded(name, severity)
        kinds.append(made.params.get("kind"))
        hits["degraded"].append(scorer.hits(made.images))
        with torch.no_grad():
            for label, restorer in candidates.items():
                restored = restoration.restore_batches(restorer, made.images, {},
                                                       batch_size=128)
                hits[label].append(scorer.hits(restored))
        print(f"{name} severity {severity} done", file=sys.stderr, flush=True)
    degraded_mean = sum(100 * float(h.mean()) for h in hits["degraded"]) / len(SEVERITIES)
    kind_head = ("".join(f" {k} |" for k in MIXTURE_KINDS)) if split_by_kind else ""
    lines = [f"### `{name}`, clean {clean:.2f}", "",
             "| restorer | " + " | ".join(f"s{s}" for s in SEVERITIES) + " | mean | recovery |"
             + kind_head,
             "|---|" + "---:|" * (len(SEVERITIES) + 2)
             + ("---:|" * len(MIXTURE_KINDS) if split_by_kind else "")]
    for label, per in hits.items():
        values = [100 * float(h.mean()) for h in per]
        mean = sum(values) / len(values)
        recovery = (mean - degraded_mean) / (clean - degraded_mean)
        row = (f"| {label} | " + " | ".join(f"{v:.2f}" for v in values)
               + f" | {mean:.2f} | {recovery:.2f} |")
        if split_by_kind:
            for code in range(len(MIXTURE_KINDS)):
                chosen = [h[k == code] for h, k in zip(per, kinds)]
                row += f" {100 * float(torch.cat(chosen).mean()):.2f} |"
        lines.append(row)
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="the experiment's model cache (default: its own default)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    scorer = Scorer(args.seed, args.cache_dir)
    lines = ["## Routes of `estimated`: candidates per family", "",
             *run_facts("bench_routes.py"),
             f"- data: `synthetic`, quick profile, seed {args.seed}, "
             f"{len(scorer.stage.data.queries)} queries, L2 top-1 (%)", ""]
    lines += table(scorer, "noise", noise_candidates(), split_by_kind=True)
    lines += table(scorer, "motion_blur", blur_candidates(), split_by_kind=False)
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        atomic_write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
