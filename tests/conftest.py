"""Shared fixtures: devices, tiny image batches, the optional real data set."""

from __future__ import annotations

import os
from pathlib import Path

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
