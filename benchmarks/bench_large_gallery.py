"""Peak memory and speed of embedding a large image folder: lazy decoding + the shard writer.

Generates a class-per-folder tree of N seeded gray PNGs (default 20,000 of 64 x 64 px in 10
classes; stripes at a per-class angle plus noise), then embeds all of it with the quick
profile's retriever architecture (ResNet34, 1-channel stem) through the lazy path:
``index_folder`` (each file decoded once to learn its size and mode), a ``FolderDataset`` that
decodes one file per item, a DataLoader with ``--workers`` processes, and ``write_embeddings``,
which writes each batch's (B, 512) rows into a memory map of their place in a ``.npy`` and
unmaps it. The weights are randomly initialised: memory and speed do not depend on them.

Peak memory (Linux /proc): this process's VmHWM (the high-water mark of its resident set:
shared-library and memory-mapped file pages included) and the largest worker's peak RSS
(getrusage RUSAGE_CHILDREN, once the workers have exited; ``import torch`` itself runs a
short-lived child, whose peak is reported as ``children_rss_before_mb``, so the workers' own
high-water mark is also read from their /proc/PID/status VmHWM while they run,
``peak_rss_worker_mb``). Forked workers share the parent's pages (torch's libraries), which
these figures count in each process, so ``peak_bound_mb`` (parent + workers x largest worker)
over-counts. ``peak_pss_total_mb`` is the sharper figure: the proportional set
size (each shared page divided among the processes that map it) of this process and its
workers together, sampled every 0.2 s; ``peak_anon_parent_mb`` is this process's anonymous
(heap) memory at its sampled peak.

    .venv/bin/python benchmarks/bench_large_gallery.py                  # N=20,000, 2 workers
    .venv/bin/python benchmarks/bench_large_gallery.py --n 500 --workers 2
    .venv/bin/python benchmarks/bench_large_gallery.py --dir /tmp/gallery --keep --cache
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path


def _kib(field: str, pid: int | str = "self") -> int:
    """A ``kB`` field of /proc/PID/status (Linux), or -1."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def _rollup(pid: int | str, field: str) -> int:
    """A kB field of /proc/PID/smaps_rollup, or 0 (no such process, or not Linux)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children() -> list[str]:
    pids: list[str] = []
    for task in Path("/proc/self/task").glob("*"):
        try:
            pids += (task / "children").read_text().split()
        except OSError:
            continue
    return pids


class PeakSampler(threading.Thread):
    """Samples the PSS of this process and its children, and this process's anonymous memory."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval, self.stop = interval, threading.Event()
        self.peak_pss_kib = self.peak_anon_kib = self.peak_child_kib = 0

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        children = _children()
        total = _rollup("self", "Pss") + sum(_rollup(pid, "Pss") for pid in children)
        self.peak_child_kib = max([self.peak_child_kib, *(_kib("VmHWM", p) for p in children)])
        self.peak_pss_kib = max(self.peak_pss_kib, total)
        self.peak_anon_kib = max(self.peak_anon_kib, _rollup("self", "Anonymous"))


def generate(root: Path, n: int, size: int, classes: int, seed: int) -> None:
    """Write n seeded gray PNGs, image i in class i % classes, one image in memory at a time."""
    import cv2
    import numpy as np

    from robustret.core.rng import stream_seed

    yy, xx = np.mgrid[0:size, 0:size] / size
    for c in range(classes):
        (root / f"class{c:02d}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c = i % classes
        rng = np.random.default_rng(stream_seed(seed, "bench/large_gallery", i))
        angle = c * np.pi / classes + rng.normal(0, 0.1)
        wave = np.sin(2 * np.pi * (c % 5 + 2) * (xx * np.cos(angle) + yy * np.sin(angle))
                      + rng.uniform(0, 2 * np.pi))
        image = (127 + 100 * wave + rng.normal(0, 8, wave.shape)).clip(0, 255).astype(np.uint8)
        cv2.imwrite(str(root / f"class{c:02d}" / f"img{i:07d}.png"), image)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="images (default 20,000)")
    parser.add_argument("--size", type=int, default=64, help="image side in px (default 64)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, help="folder for the images (default: a temporary "
                        "one); reused when it already holds --n images")
    parser.add_argument("--keep", action="store_true", help="keep the images and embeddings")
    parser.add_argument("--cache", action="store_true",
                        help="go through the memory-mapped decoded-image cache (written first)")
    args = parser.parse_args(argv)
    if args.n < args.classes or args.classes < 2:
        parser.error("need --classes >= 2 and --n >= --classes")

    work = Path(tempfile.mkdtemp(prefix="bench_large_gallery-"))
    root = args.dir or work / "images"
    os.environ.setdefault("ROBUSTRET_CACHE", str(work / "cache"))  # nothing in ~/.cache
    try:
        began = time.perf_counter()
        present = sum(1 for _ in root.rglob("*.png")) if root.is_dir() else 0
        if present != args.n:
            if present:
                parser.error(f"{root} holds {present} PNGs, not --n {args.n}; pass another --dir")
            generate(root, args.n, args.size, args.classes, args.seed)
        generate_s = time.perf_counter() - began

        import torch

        from robustret.data.lazy import (
            DecodedFolder,
            FolderDataset,
            decoded_cache,
            folder_loader,
            index_folder,
        )
        from robustret.models import build_retriever
        from robustret.retrieval import write_embeddings

        rss_before = _kib("VmRSS")
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
        sampler = PeakSampler()
        sampler.sample()
        sampler.start()
        tick = time.perf_counter()
        index = index_folder(root, workers=args.workers, use_cache=False)
        source = (decoded_cache(index, workers=args.workers) if args.cache
                  else DecodedFolder(index))
        index_s = time.perf_counter() - tick
        dataset = FolderDataset(source, index.labels)
        model = build_retriever("resnet34", num_classes=len(index.class_names),
                                in_channels=dataset.image_shape[0]).eval()
        loader = folder_loader(dataset, batch_size=args.batch_size, workers=args.workers)
        tick = time.perf_counter()
        embeddings = write_embeddings(model, loader, work / "embeddings.npy", progress=False)
        embed_s = time.perf_counter() - tick
        sampler.stop.set()
        sampler.join()
        sampler.sample()
        assert embeddings.shape == (args.n, 512)
        parent = _kib("VmHWM")
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
        result = {
            "n": args.n, "size": args.size, "classes": args.classes, "workers": args.workers,
            "batch_size": args.batch_size, "decoded_cache": args.cache,
            "threads": torch.get_num_threads(), "load_avg_1min": round(os.getloadavg()[0], 2),
            "generate_s": round(generate_s, 1), "index_s": round(index_s, 1),
            "embed_s": round(embed_s, 1), "embed_img_s": round(args.n / embed_s, 1),
            "rss_after_imports_mb": round(rss_before / 1024, 1),
            "peak_rss_parent_mb": round(parent / 1024, 1),
            "children_rss_before_mb": round(children_before / 1024, 1),
            "children_rss_after_mb": round(children / 1024, 1),
            "peak_rss_worker_mb": round(sampler.peak_child_kib / 1024, 1),
            "peak_bound_mb": round((parent + args.workers * sampler.peak_child_kib) / 1024, 1),
            "peak_pss_total_mb": round(sampler.peak_pss_kib / 1024, 1),
            "peak_anon_parent_mb": round(sampler.peak_anon_kib / 1024, 1),
            "embeddings_mb": round(embeddings.numel() * 4 / 2**20, 1),
        }
        result["below_2gb"] = result["peak_pss_total_mb"] < 2048 and parent < 2048 * 1024
        print(json.dumps(result))
    finally:
        if args.keep:
            print(f"kept: {root} and {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
            if args.dir is None:
                shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
