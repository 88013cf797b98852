"""Tensor contracts shared by every module.

Between modules an image batch is a ``(B, C, H, W)`` floating tensor with values in
``[0, 1]`` and ``C`` in ``{1, 3}``. :func:`check_images` enforces that contract with errors
that say what was expected, what was received and what to do.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import torch
from torch import Tensor

_RANGE_TOLERANCE = 1e-6


class ConfigError(ValueError):
    """A name, path or value given by the user is wrong; the message says what to do.

    Raised before any work starts. The command-line tools catch this (and missing files) and
    print one line; any other exception is a bug and shows its traceback.
    """


class HostError(RuntimeError):
    """The machine stopped the work: not the user's input and not a bug (a worker process was
    killed, a disk is full or refuses writes). The command-line tools print one line naming
    the problem and what to do (exit 2); finished work is kept and re-running resumes."""


#: ``errno`` values of a disk that is full / of a path the process may not write
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
NOT_PERMITTED = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
#: ``errno`` values of a path the system cannot use at all, whatever is on the disk
BAD_PATH = frozenset({errno.ENAMETOOLONG, errno.ELOOP})


def host_refusal(exc: BaseException) -> str | None:
    """One line for an ``OSError`` that says the disk is full, a path is not writable or a
    path cannot be used at all (a name too long, a loop of symbolic links).

    Returns:
        ``"disk full: ..."``, ``"permission denied: ..."`` or ``"unusable path: ..."`` naming
        the file and what to do, or None for any other exception (a missing file, a bug: the
        caller decides).
    """
    if not isinstance(exc, OSError) or exc.errno is None:
        return None
    where = f"{exc.filename}" if exc.filename is not None else "a file"
    reason = exc.strerror or os.strerror(exc.errno)
    if exc.errno in DISK_FULL:
        return (f"disk full: cannot write {where} ({reason}); free space on that disk, or point "
                "--out, --cache-dir or $ROBUSTRET_CACHE at another one, then re-run the same "
                "command to resume")
    if exc.errno in NOT_PERMITTED:
        return (f"permission denied: {where} ({reason}); choose a folder you may write "
                "(--out, --cache-dir, $ROBUSTRET_CACHE) or fix its permissions, then re-run")
    if exc.errno in BAD_PATH:
        return f"unusable path: {where} ({reason}); pass a shorter or plain path"
    return None


def check_images(images: object, name: str = "images", *, check_values: bool = True) -> Tensor:
    """Validate an image batch and return it unchanged.

    Args:
        images: the candidate batch, expected ``(B, C, H, W)`` float in ``[0, 1]``.
        name: how the batch is called in error messages.
        check_values: also scan the values for NaN/inf and the ``[0, 1]`` range (one pass
            over the data, one ``aminmax``).

    Returns:
        ``images`` itself.

    Raises:
        TypeError: ``images`` is not a tensor.
        ValueError: wrong number of dimensions, channel count, dtype, NaN/inf values or
            values outside ``[0, 1]``.
    """
    if not isinstance(images, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (B, C, H, W); got {type(images).__name__}"
        )
    if images.ndim != 4:
        hint = (
            " For a single image use x[None] (C, H, W) or x[None, None] (H, W)."
            if images.ndim in (2, 3)
            else ""
        )
        raise ValueError(
            f"{name} must be (B, C, H, W) with C in {{1, 3}}; got shape "
            f"{tuple(images.shape)}.{hint}"
        )
    if images.shape[1] not in (1, 3):
        raise ValueError(
            f"{name} must be (B, C, H, W) with C in {{1, 3}}; got {images.shape[1]} channels "
            f"(shape {tuple(images.shape)}). Channels-last input (B, H, W, C) must be permuted "
            "first."
        )
    if not images.is_floating_point():
        raise ValueError(
            f"{name} must be a floating tensor with values in [0, 1]; got dtype {images.dtype}. "
            "For uint8 images use degradations.from_uint8() or x.float() / 255."
        )
    if check_values and images.numel() > 0:
        low, high = torch.aminmax(images.detach())
        low, high = float(low), float(high)
        if low != low or high != high:  # NaN propagates through aminmax
            raise ValueError(f"{name} contains NaN values")
        if low in (float("inf"), float("-inf")) or high in (float("inf"), float("-inf")):
            raise ValueError(f"{name} contains infinite values")
        if low < -_RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
            raise ValueError(
                f"{name} must have values in [0, 1]; got min {low:.4g}, max {high:.4g}. "
                "Scale 8-bit data by 1/255 first."
            )
    return images


def check_embeddings(embeddings: object, name: str = "embeddings") -> Tensor:
    """Validate a ``(N, D)`` floating embedding matrix (rows are items) and return it."""
    if not isinstance(embeddings, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (N, D); got {type(embeddings).__name__}"
        )
    if embeddings.ndim != 2:
        raise ValueError(f"{name} must be (N, D); got shape {tuple(embeddings.shape)}")
    if not embeddings.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor; got dtype {embeddings.dtype}")
    if embeddings.numel() and not bool(torch.isfinite(embeddings).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return embeddings


def check_labels(labels: object, length: int | None = None, name: str = "labels") -> Tensor:
    """Validate a ``(N,)`` integer label vector (optionally of a given length) and return it."""
    if not isinstance(labels, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N,); got {type(labels).__name__}")
    if labels.ndim != 1:
        raise ValueError(f"{name} must be (N,); got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
        raise ValueError(f"{name} must be an integer tensor; got dtype {labels.dtype}")
    if length is not None and labels.shape[0] != length:
        raise ValueError(f"{name} has {labels.shape[0]} entries but {length} were expected")
    return labels


def check_choice(value: str, choices: Sequence[str], name: str) -> str:
    """Return ``value`` or raise ValueError naming ``name`` and the valid ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


Entry = TypeVar("Entry")


def table_entry(table: Mapping[str, Entry], name: object, what: str) -> Entry:
    """The entry of a closed vocabulary ``table`` called ``name``.

    Raises:
        ValueError: ``unknown {what} {name!r}; choose from a, b, ...`` (every valid name).
    """
    try:
        return table[name]  # type: ignore[index]
    except (KeyError, TypeError):
        raise ValueError(f"unknown {what} {name!r}; choose from {', '.join(table)}") from None


def check_writable_folder(folder: Path, name: str, flag: str) -> None:
    """Raise :class:`ConfigError` unless ``folder`` can be created or written.

    Args:
        folder: the output folder (it need not exist yet).
        name: what it is called in the message (``out_dir``).
        flag: the command-line flag that sets it (``--out``).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{name} {folder} is a file, not a folder; choose another path "
                          f"with {flag}")
    existing = folder  # the folder, or the nearest parent that exists (made on demand)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{name} {folder} lies inside {existing}, which is a file; choose "
                          f"another path with {flag}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{name} {folder} cannot be written ({existing} is read-only); "
                          f"choose a writable folder with {flag}")
