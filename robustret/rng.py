"""Seeded randomness: library code takes a ``torch.Generator`` and never touches global state.

Draws happen on the generator's device (the CPU by default) in float32 and are then moved to
the data's device, so the same seed gives the same bytes on CPU and CUDA.
"""

from __future__ import annotations

import hashlib

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
    state = np.random.SeedSequence([int(seed), *(int(i) for i in index)]).generate_state(
        2, np.uint32
    )
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def stream_seed(seed: int, stream: str, *index: int) -> int:
    """A 63-bit seed for the named random ``stream`` of a run, item ``index``.

    Each consumer of randomness has its own stream name (``"degrade"``, ``"retriever/init"``,
    ``"data/split"``, ...); the name is hashed (SHA-256) into the seed sequence, so two streams
    never share seeds the way two bare integers can collide, and adding a stream changes none
    of the others.

    Args:
        seed: the run's one seed.
        stream: a short descriptive name, unique per consumer.
        index: an index path within the stream (an epoch, an image, a severity).
    """
    if not isinstance(stream, str) or not stream:
        raise ValueError(f"stream must be a non-empty string; got {stream!r}")
    word = int.from_bytes(hashlib.sha256(stream.encode("utf-8")).digest()[:8], "little")
    return sample_seed(seed, word >> 32, word & 0xFFFFFFFF, *index)


def draw_seed(generator: torch.Generator | None) -> int:
    """One 63-bit integer drawn from ``generator`` (torch's global generator when None)."""
    return int(
        torch.randint(0, 2**63 - 1, (1,), generator=generator, device=_device_of(generator)).item()
    )


def _device_of(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")
