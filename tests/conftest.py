"""Shared fixtures: devices, tiny image batches, the optional real data set."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep every cache the tests create out of the user's ~/.cache."""
    os.environ["ROBUSTRET_CACHE"] = str(tmp_path_factory.mktemp("robustret-cache"))


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """The CPU always, CUDA too when present."""
    return torch.device(request.param)


@pytest.fixture
def images() -> torch.Tensor:
    """(4, 1, 32, 32) float32 in [0, 1]: smooth gradients plus a bright square."""
    generator = torch.Generator().manual_seed(1234)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    base = 0.25 + 0.5 * (0.6 * xx + 0.4 * yy)
    batch = base.expand(4, 1, 32, 32).clone()
    batch[:, :, 8:20, 10:22] += 0.2
    batch += 0.05 * torch.rand(batch.shape, generator=generator)
    return batch.clamp(0, 1)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository; the test is skipped where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available: {SHARED_DATA} does not exist")
    return SHARED_DATA


def write_class_folders(root: Path, classes: int = 3, per_class: int = 10, size: int = 32) -> Path:
    """Class c: stripes of frequency c + 2 at a per-class angle, with per-image jitter."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            angle = c * np.pi / classes + rng.normal(0, 0.1)
            phase = rng.uniform(0, 2 * np.pi)
            wave = np.sin(2 * np.pi * (c + 2) * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
            image = (127 + 100 * wave + rng.normal(0, 8, wave.shape)).clip(0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"img{i:02d}.png"), image)
    return root


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    """A class-folder data set of 3 classes x 10 PNGs of 32 px (``folder:PATH``)."""
    return write_class_folders(tmp_path / "data")
