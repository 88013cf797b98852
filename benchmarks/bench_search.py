"""Exact k-NN speed: robustret.retrieval.search against FAISS flat (and the study's broadcast).

N(0, 1) features, gallery 24,300 x 512, 2,048 queries, k = 10 by default. Every case runs in
its own process (peak memory = VmHWM of that process minus its VmRSS before the timed part),
and the cases take turns: round 1 runs each case once, then round 2, ..., so a load that comes
and goes on a shared machine falls on every case alike. Each process times ``--reps`` searches
and keeps its median; the table gives the median over rounds (and the range). The header
names the CPU, the threads, the library versions and the load average before and after.

    .venv/bin/python benchmarks/bench_search.py                       # ours vs faiss, ~80 s idle
    .venv/bin/python benchmarks/bench_search.py --case ours_l2 --reps 3
    .venv/bin/python benchmarks/bench_search.py --cases ours_l2 ours_l2_unpruned faiss_l2

Cases: ``ours_*`` is ``search(..., backend="torch")``, ``faiss_*`` is ``backend="faiss"``
(IndexFlatL2 / IndexFlatIP, index built per call like ours prepares its gallery per call),
``ours_l2_unpruned`` is ours with the block-pruned top-k switched off (the plain ``topk`` over
each whole score row, the search before the pruning), ``broadcast_l2`` is the study's
``torch.norm(g[None] - q[:, None])`` on 64-query batches, timed on ``--broadcast-queries``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

CASES = ("ours_l2", "ours_cosine", "faiss_l2", "faiss_cosine", "ours_l2_unpruned",
         "broadcast_l2")
DEFAULT_CASES = ("ours_l2", "faiss_l2", "ours_cosine", "faiss_cosine")


def _status(field: str) -> float:
    """A /proc/self/status memory field in MiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_model() -> str:
    """The CPU's model name and logical CPU count (from /proc/cpuinfo where it exists)."""
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle
                     if line.startswith("model name")]
    except OSError:
        names = []
    name = names[0] if names else (platform.processor() or platform.machine())
    flags = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as handle:
            text = handle.read()
        flags = ", AVX-512" if " avx512f" in text else (", AVX2" if " avx2" in text else "")
    return f"{name}{flags}, {os.cpu_count()} logical CPUs"


def _search_once(case: str, queries, gallery, k: int, chunk: int, broadcast_queries: int):
    import torch

    from robustret.retrieval import search

    metric = "cosine" if "cosine" in case else "l2"
    if case.startswith("ours"):
        search(queries, gallery, k, metric, chunk_size=chunk)
        return queries.shape[0]
    if case.startswith("faiss"):
        search(queries, gallery, k, metric, backend="faiss")
        return queries.shape[0]
    with torch.inference_mode():  # the study's approach: broadcast difference, 64 a batch
        for start in range(0, broadcast_queries, 64):
            q = queries[start:start + 64]
            dist = torch.norm(gallery[None] - q[:, None], dim=-1)
            torch.topk(dist, k, dim=1, largest=False)
    return broadcast_queries


def run_case(case: str, args: argparse.Namespace) -> dict:
    import torch

    from robustret.retrieval import index

    if case == "ours_l2_unpruned":
        index._prunes = lambda size, k: False  # the plain top-k over each whole row
    generator = torch.Generator().manual_seed(0)
    gallery = torch.randn(args.gallery, args.dim, generator=generator)
    queries = torch.randn(args.queries, args.dim, generator=generator)
    if case.startswith("faiss"):
        import faiss  # noqa: F401  (import cost outside the timing)
    rss_before, hwm_before = _status("VmRSS"), _status("VmHWM")
    times, timed = [], args.queries
    for _ in range(args.reps):
        began = time.perf_counter()
        timed = _search_once(case, queries, gallery, args.k, args.chunk, args.broadcast_queries)
        times.append(time.perf_counter() - began)
    median = statistics.median(times)
    return {
        "case": case,
        "threads": torch.get_num_threads(),
        "timed_queries": timed,
        "qps": timed / median,
        "seconds_full": median * args.queries / timed,
        "peak_extra_mib": max(_status("VmHWM"), hwm_before) - rss_before,
    }


def _versions() -> str:
    import numpy
    import torch

    try:
        import faiss

        faiss_version = faiss.__version__
    except ImportError:
        faiss_version = "absent"
    return f"torch {torch.__version__}, numpy {numpy.__version__}, faiss-cpu {faiss_version}"


def _table(rows: dict[str, list[dict]], args: argparse.Namespace) -> None:
    print(f"\ngallery {args.gallery:,} x {args.dim}, {args.queries:,} queries, k = {args.k}, "
          f"{args.rounds} rounds x {args.reps} reps")
    print("\n| case | queries/s median over rounds (min-max) | s per query set | peak extra MiB |")
    print("|---|---|---|---|")
    qps = {}
    for case, runs in rows.items():
        values = [run["qps"] for run in runs]
        qps[case] = statistics.median(values)
        seconds = statistics.median(run["seconds_full"] for run in runs)
        peak = max(run["peak_extra_mib"] for run in runs)
        print(f"| {case} | {qps[case]:,.0f} ({min(values):,.0f}-{max(values):,.0f}) | "
              f"{seconds:.2f} | {peak:.0f} |")
    for metric in ("l2", "cosine"):
        if f"ours_{metric}" in qps and f"faiss_{metric}" in qps:
            per_round = [o["qps"] / f["qps"] for o, f in
                         zip(rows[f"ours_{metric}"], rows[f"faiss_{metric}"], strict=True)]
            ratio = qps[f"ours_{metric}"] / qps[f"faiss_{metric}"]
            print(f"{metric}: ours / faiss flat = {ratio:.2f}x "
                  f"(per round {min(per_round):.2f}-{max(per_round):.2f}x)")
    if "ours_l2" in qps and "ours_l2_unpruned" in qps:
        print(f"l2: pruned / unpruned top-k = {qps['ours_l2'] / qps['ours_l2_unpruned']:.2f}x")
    if "ours_l2" in qps and "broadcast_l2" in qps:
        print(f"l2: ours / broadcast = {qps['ours_l2'] / qps['broadcast_l2']:.0f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=CASES,
                        help="one case in this process, printed as JSON (default: the cases, "
                             "each in a subprocess)")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(DEFAULT_CASES),
                        help="the cases the table compares (default: %(default)s)")
    parser.add_argument("--gallery", type=int, default=24_300)
    parser.add_argument("--queries", type=int, default=2_048)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--reps", type=int, default=2, help="timed searches per process")
    parser.add_argument("--rounds", type=int, default=3,
                        help="turns of every case, each in a fresh process")
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--broadcast-queries", type=int, default=128,
                        help="queries timed for the broadcast case")
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args)))
        return 0
    print(f"CPU: {cpu_model()}; {_versions()}; load average before: {os.getloadavg()[0]:.2f}",
          flush=True)
    passed = list(argv if argv is not None else sys.argv[1:])
    if "--cases" in passed:  # the child takes one --case
        start = passed.index("--cases")
        end = start + 1
        while end < len(passed) and not passed[end].startswith("--"):
            end += 1
        passed = passed[:start] + passed[end:]
    rows: dict[str, list[dict]] = {case: [] for case in args.cases}
    for _ in range(args.rounds):
        for case in args.cases:
            cmd = [sys.executable, __file__, "--case", case, *passed]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows[case].append(json.loads(out.strip().splitlines()[-1]))
            print(out.strip().splitlines()[-1], flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    _table(rows, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
