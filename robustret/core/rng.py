"""Seeded randomness: library code takes a ``torch.Generator`` and never touches global state.

Draws happen on the generator's device (the CPU by default) in float32 and are then moved to
the data's device, so the same seed gives the same bytes on CPU and CUDA.
"""

from __future__ import annotations

import hashlib
import numbers

import numpy as np
import torch

#: seeds are non-negative integers below this (``torch.Generator.manual_seed``'s range)
SEED_LIMIT = 2**64


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` as an int, or an error naming ``name``.

    Args:
        seed: a non-negative integer below 2**64 (a Python or numpy integer; not a bool).
        name: how the value is called in the message (``seed``, ``index``, ...).
    Returns:
        ``int(seed)``.
    Raises:
        TypeError: not an integer.
        ValueError: negative or too large.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative integer; got {type(seed).__name__} "
                        f"{seed!r}")
    if not 0 <= int(seed) < SEED_LIMIT:
        raise ValueError(f"{name} must be a non-negative integer below 2**64; got {int(seed)}")
    return int(seed)


def check_generator(generator: object, name: str = "generator") -> torch.Generator | None:
    """``generator`` itself when it is a ``torch.Generator`` or None, else a TypeError.

    Raises:
        TypeError: anything else (an int seed, a numpy generator, ...); the message says how
            to make one.
    """
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None; got "
                        f"{type(generator).__name__} {generator!r}. For a seed use "
                        "robustret.core.rng.make_generator(seed)")
    return generator


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed``.

    Raises:
        TypeError, ValueError: ``seed`` is not a non-negative integer (:func:`check_seed`).
    """
    generator = torch.Generator(device=device)
    generator.manual_seed(check_seed(seed))
    return generator


def sample_seed(seed: int, *index: int) -> int:
    """A 63-bit seed derived from ``seed`` and an index path (numpy ``SeedSequence``).

    ``sample_seed(seed, i)`` seeds item ``i``; it depends on nothing but its arguments, so
    batch size, order and workers never change what item ``i`` receives.

    Raises:
        TypeError, ValueError: ``seed`` or an index is not a non-negative integer.
    """
    words = [check_seed(seed), *(check_seed(i, "index") for i in index)]
    state = np.random.SeedSequence(words).generate_state(
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

    Raises:
        TypeError, ValueError: ``seed`` or an index is not a non-negative integer, or
            ``stream`` is not a non-empty string.
    """
    check_seed(seed)
    if not isinstance(stream, str) or not stream:
        raise ValueError(f"stream must be a non-empty string; got {stream!r}")
    word = int.from_bytes(hashlib.sha256(stream.encode("utf-8")).digest()[:8], "little")
    return sample_seed(seed, word >> 32, word & 0xFFFFFFFF, *index)


def draw_seed(generator: torch.Generator | None) -> int:
    """One 63-bit integer drawn from ``generator`` (torch's global generator when None).

    Raises:
        TypeError: ``generator`` is neither a ``torch.Generator`` nor None.
    """
    check_generator(generator)
    return int(
        torch.randint(0, 2**63 - 1, (1,), generator=generator, device=_device_of(generator)).item()
    )


def _device_of(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")
