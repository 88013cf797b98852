"""A PNG grid of every degradation at severities 1..5 on built-in test patterns.

    python -m degradations.demo --out degradations.png [--size 96] [--seed 0]

Rows: test pattern x degradation; columns: clean, then severity 1..5, with the PSNR (dB) to the
clean image under each tile. No downloads: the patterns are generated here.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np
import torch

from robustret.core.quality import psnr
from robustret.core.rng import make_generator

from .api import apply, available


def test_patterns(size: int = 96) -> torch.Tensor:
    """(3, 1, size, size) float32 in [0, 1]: zone plate, checkerboard + gradient, disks and bars."""
    axis = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    c = (size - 1) / 2
    r2 = (xx - c) ** 2 + (yy - c) ** 2
    zone = 0.5 + 0.5 * torch.cos(math.pi * r2 / (2.5 * size))
    checker = 0.2 + 0.4 * ((xx // (size // 8) + yy // (size // 8)) % 2) + 0.35 * xx / size
    shapes = torch.full((size, size), 0.15)
    shapes[r2 < (size / 4) ** 2] = 0.85
    shapes[(xx // 6 % 2 == 0) & (yy > 0.75 * size)] = 0.6
    shapes[(yy // 6 % 2 == 0) & (xx < 0.2 * size)] = 0.4
    return torch.stack([zone, checker, shapes]).clamp(0, 1)[:, None]


def render(size: int = 96, seed: int = 0) -> np.ndarray:
    """The grid as an (H, W) uint8 image."""
    clean = test_patterns(size)
    label_h, pad = 16, 4
    tile_h, tile_w = size + label_h, size + pad
    names = available()
    rows = []
    for p in range(clean.shape[0]):
        for name in names:
            row = np.full((tile_h, tile_w * 6 + 110), 255, np.uint8)
            cv2.putText(row, name, (2, tile_h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.35, 0, 1)
            tiles = [(clean[p : p + 1], "clean")]
            for severity in range(1, 6):
                out = apply(clean[p : p + 1], name, severity, generator=make_generator(seed))
                tiles.append((out, f"{float(psnr(out, clean[p : p + 1])):.1f} dB"))
            for j, (img, text) in enumerate(tiles):
                x0 = 110 + j * tile_w
                row[:size, x0 : x0 + size] = (img[0, 0].numpy() * 255).round().astype(np.uint8)
                cv2.putText(row, text, (x0 + 2, size + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, 0, 1)
            rows.append(row)
    header = np.full((18, rows[0].shape[1]), 255, np.uint8)
    for j, text in enumerate(["clean"] + [f"severity {s}" for s in range(1, 6)]):
        cv2.putText(header, text, (110 + j * tile_w + 2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.35, 0, 1)
    return np.concatenate([header, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write a PNG grid of all degradations x severities."
    )
    parser.add_argument("--out", type=Path, default=Path("degradations.png"))
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    grid = render(args.size, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp.png")
    if not cv2.imwrite(str(tmp), grid):
        raise OSError(f"could not write {args.out}")
    tmp.replace(args.out)
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
