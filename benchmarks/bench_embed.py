"""extract_embeddings vs the bare model forward (same batch, same threads), one process.

    .venv/bin/python benchmarks/bench_embed.py --images 512 --size 64 --batch 128 --reps 3
"""

from __future__ import annotations

import argparse
import time

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet34")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args(argv)
    from robustret.models import build_retriever
    from robustret.retrieval import extract_embeddings

    model = build_retriever(args.backbone, num_classes=5, channels_last=args.channels_last).eval()
    images = torch.rand(args.images, 1, args.size, args.size, generator=torch.Generator().manual_seed(0))

    def bare() -> None:
        with torch.inference_mode():
            for batch in images.split(args.batch):
                model.embed(batch)

    def ours() -> None:
        extract_embeddings(model, images, batch_size=args.batch, device="cpu", channels_last=args.channels_last,
                           progress=False)

    times: dict[str, list[float]] = {"bare": [], "extract": []}
    bare()  # warm-up
    for _ in range(args.reps):  # interleaved, so load changes hit both alike
        for name, fn in (("bare", bare), ("extract", ours)):
            began = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - began)
    med = {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}
    for name in med:
        print(f"{name}: {args.images / med[name]:.1f} img/s (median of {args.reps}, threads {torch.get_num_threads()})")
    print(f"ratio extract / bare = {med['bare'] / med['extract']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
