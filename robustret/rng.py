"""Seeded randomness: library code takes a ``torch.Generator`` and never touches global state.

Draws happen on the generator's device (the CPU by default) in float32 and are then moved to
the data's device, so the same seed gives the same bytes on CPU and CUDA.
"""

from __future__ import annotations

import numpy as np
import torch


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed``."""
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator


def sample_seed(seed: int, *index: int) -> int:
    """A 63-bit seed derived from ``seed`` and an index path (numpy ``SeedSequence``).

    ``sample_seed(seed, i)`` seeds item ``i``; it depends on nothing but its arguments, so
    batch size, order and workers never change what item ``i`` receives.
    """
    state = np.random.SeedSequence([int(seed), *(int(i) for i in index)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def draw_seed(generator: torch.Generator | None) -> int:
    """One 63-bit integer drawn from ``generator`` (torch's global generator when None)."""
    return int(torch.randint(0, 2**63 - 1, (1,), generator=generator, device=_device_of(generator)).item())


def numpy_rng(generator: torch.Generator | None) -> np.random.Generator:
    """A numpy ``Generator`` seeded by one draw from ``generator``.

    Used where numpy's bit generators are much faster than torch's CPU sampler; the stream is
    still fully determined by the torch generator's state.
    """
    return np.random.Generator(np.random.SFC64(draw_seed(generator)))


def _device_of(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")
