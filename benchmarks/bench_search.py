"""Exact k-NN speed: robustret.retrieval.search vs the study's broadcast approach vs faiss.

Each case runs in its own process (peak memory = VmHWM of that process minus its VmRSS
before the timed part). N(0, 1) features, gallery 24,300 x 512, 24,300 queries, k=10.

    .venv/bin/python benchmarks/bench_search.py                 # all cases, summary table
    .venv/bin/python benchmarks/bench_search.py --case ours_l2 --reps 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CASES = ("ours_l2", "ours_cosine", "faiss_l2", "faiss_cosine", "broadcast_l2")


def _status(field: str) -> float:
    """A /proc/self/status memory field in MiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_case(
    case: str,
    gallery_size: int,
    num_queries: int,
    dim: int,
    k: int,
    reps: int,
    chunk: int,
    broadcast_queries: int,
) -> dict:
    import torch

    from robustret.retrieval import search

    generator = torch.Generator().manual_seed(0)
    gallery = torch.randn(gallery_size, dim, generator=generator)
    queries = torch.randn(num_queries, dim, generator=generator)
    if case.startswith("faiss"):
        import faiss  # noqa: F401  (import cost outside the timing)
    metric = "cosine" if case.endswith("cosine") else "l2"
    times = []
    rss_before = _status("VmRSS")
    hwm_before = _status("VmHWM")
    timed_queries = num_queries
    for _ in range(reps):
        began = time.perf_counter()
        if case.startswith("ours"):
            search(queries, gallery, k, metric, chunk_size=chunk)
        elif case.startswith("faiss"):
            search(queries, gallery, k, metric, backend="faiss")
        else:  # the study's approach: broadcast difference, 64 queries a batch, on a subset
            timed_queries = broadcast_queries
            with torch.inference_mode():
                for start in range(0, broadcast_queries, 64):
                    q = queries[start:start + 64]
                    dist = torch.norm(gallery[None] - q[:, None], dim=-1)
                    torch.topk(dist, k, dim=1, largest=False)
        times.append(time.perf_counter() - began)
    times.sort()
    median = times[len(times) // 2]
    return {
        "case": case,
        "metric": metric,
        "chunk": chunk if case.startswith("ours") else None,
        "threads": torch.get_num_threads(),
        "timed_queries": timed_queries,
        "qps_median": timed_queries / median,
        "qps_min": timed_queries / times[-1],
        "qps_max": timed_queries / times[0],
        "seconds_full": median * num_queries / timed_queries,
        "peak_extra_mib": max(_status("VmHWM"), hwm_before) - rss_before,
        "rss_before_mib": rss_before,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--case",
        choices=CASES,
        help="one case in this process (default: all, each in a subprocess)",
    )
    parser.add_argument("--gallery", type=int, default=24_300)
    parser.add_argument("--queries", type=int, default=24_300)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument(
        "--broadcast-queries", type=int, default=128, help="queries timed for the broadcast case"
    )
    args = parser.parse_args(argv)
    if args.case:
        result = run_case(
            args.case,
            args.gallery,
            args.queries,
            args.dim,
            args.k,
            args.reps,
            args.chunk,
            args.broadcast_queries,
        )
        print(json.dumps(result))
        return 0
    rows = {}
    for case in CASES:
        cmd = [sys.executable, __file__, "--case", case, *(argv or sys.argv[1:])]
        out = (
            subprocess.run(cmd, check=True, capture_output=True, text=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        rows[case] = json.loads(out)
        print(out, flush=True)
    print("\n| case | queries/s (median, min-max) | full set s | peak extra MiB |")
    print("|---|---|---|---|")
    for case, r in rows.items():
        print(f"| {case} | {r['qps_median']:,.0f} ({r['qps_min']:,.0f}-{r['qps_max']:,.0f}) | "
              f"{r['seconds_full']:.1f} | {r['peak_extra_mib']:.0f} |")
    for metric in ("l2", "cosine"):
        ours, faiss_ = rows[f"ours_{metric}"], rows[f"faiss_{metric}"]
        print(f"{metric}: ours / faiss = {ours['qps_median'] / faiss_['qps_median']:.2f}x")
    print(
        "l2: ours / broadcast = "
        f"{rows['ours_l2']['qps_median'] / rows['broadcast_l2']['qps_median']:.0f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
