"""Embedding extraction overhead: extract_embeddings vs a bare ``model.embed`` loop, same process.

Both paths embed the same (N, 1, S, S) images with ResNet34 (random weights, eval mode,
inference_mode, batch 128); repetitions alternate between the two so machine load hits both
alike. Target: extract_embeddings >= 0.9x the bare loop's throughput.

    .venv/bin/python benchmarks/bench_embed.py                       # N=512, 64x64, 3 reps
    .venv/bin/python benchmarks/bench_embed.py --size 96 --channels-last
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet34")
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from robustret.models import build_retriever
    from robustret.retrieval import extract_embeddings

    model = build_retriever(
        args.backbone, num_classes=5, in_channels=1, channels_last=args.channels_last
    ).eval()
    images = torch.rand(args.n, 1, args.size, args.size, generator=torch.Generator().manual_seed(0))
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format

    def bare() -> None:
        with torch.inference_mode():
            for start in range(0, args.n, args.batch_size):
                model.embed(images[start:start + args.batch_size].contiguous(memory_format=fmt))

    def ours() -> None:
        extract_embeddings(model, images, batch_size=args.batch_size, device="cpu",
                           channels_last=args.channels_last, progress=False)

    bare()  # warm-up (allocator, oneDNN primitives)
    ours()
    times: dict[str, list[float]] = {"bare": [], "extract_embeddings": []}
    for _ in range(args.reps):
        for name, fn in (("bare", bare), ("extract_embeddings", ours)):
            began = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - began)
    result = {
        "backbone": args.backbone,
        "n": args.n,
        "size": args.size,
        "batch_size": args.batch_size,
        "channels_last": args.channels_last,
        "threads": torch.get_num_threads(),
        "load_avg_1min": os.getloadavg()[0],
    }
    for name, values in times.items():
        med = sorted(values)[len(values) // 2]
        result[f"{name}_img_s"] = round(args.n / med, 1)
        result[f"{name}_img_s_range"] = [
            round(args.n / max(values), 1),
            round(args.n / min(values), 1),
        ]
    result["ratio"] = round(result["extract_embeddings_img_s"] / result["bare_img_s"], 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
