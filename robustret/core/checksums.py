"""Checksum sidecars and verified reads: a file ``NAME`` has its SHA-256 in ``NAME.sha256``.

The sidecar is in ``sha256sum`` format and lists one digest, or, for the instant of a
replacement by :mod:`robustret.core.atomic`, the new digest first and the old ones after it.
:func:`read_verified`, :func:`verified_load` and :func:`load_checkpoint` check a file against
it and raise :class:`CorruptFileError` naming the file on a mismatch; :func:`move_aside` puts
a corrupt file out of the way.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import torch

CHECKSUM_SUFFIX = ".sha256"
"""A checksummed file ``NAME`` has its digest in ``NAME.sha256``."""


class CorruptFileError(ValueError):
    """A file whose bytes do not match its checksum, or that cannot be read as what it should be.

    Attributes:
        path: the file.
        reason: what is wrong with it.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path} is corrupt or incomplete: {reason}")


def checksum_path(path: str | os.PathLike) -> Path:
    """The sidecar ``NAME.sha256`` of ``path``."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_digests(path: Path) -> list[str] | None:
    """The digests listed in the sidecar of ``path`` (newest first), or None without one.

    Raises:
        CorruptFileError: the sidecar is unreadable, malformed or empty.
    """
    sidecar = checksum_path(path)
    try:
        text = sidecar.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptFileError(path, f"its checksum file {sidecar.name} is unreadable ({exc})")
    digests = []
    for line in text.splitlines():
        digest, _, _ = line.partition(" ")
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise CorruptFileError(path, f"its checksum file {sidecar.name} is malformed")
        digests.append(digest)
    if not digests:
        raise CorruptFileError(path, f"its checksum file {sidecar.name} is empty")
    return digests


def _check_digest(path: Path, digest: str, required: bool) -> None:
    listed = read_digests(path)
    if listed is None:
        if required:
            raise CorruptFileError(path, f"it has no checksum file {checksum_path(path).name}")
        return
    if digest not in listed:
        raise CorruptFileError(path, f"its SHA-256 does not match {checksum_path(path).name}")


def verify_file(path: str | os.PathLike, *, required: bool = True) -> None:
    """Check ``path`` against its ``.sha256`` sidecar.

    Args:
        path: the file.
        required: a missing sidecar is an error (for caches this code wrote); False accepts a
            file without one (a user's own weights).
    Raises:
        FileNotFoundError: no file at ``path``.
        CorruptFileError: the bytes do not match, or the sidecar is missing (``required``) or
            unreadable.
    """
    _check_digest(Path(path), file_digest(path), required)


def read_verified(path: str | os.PathLike, *, required: bool = True) -> bytes:
    """The bytes of ``path``, read once and checked against its sidecar (see :func:`verify_file`).

    Raises:
        FileNotFoundError: no file at ``path``.
        CorruptFileError: see :func:`verify_file`.
    """
    data = Path(path).read_bytes()
    _check_digest(Path(path), hashlib.sha256(data).hexdigest(), required)
    return data


def verified_load(
    path: str | os.PathLike,
    *,
    map_location: str | torch.device = "cpu",
    weights_only: bool = False,
    required: bool = True,
) -> Any:
    """``torch.load`` a file after checking it against its sidecar (see :func:`verify_file`).

    Raises:
        FileNotFoundError: no file at ``path``.
        CorruptFileError: a checksum mismatch, or bytes torch cannot read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    verify_file(path, required=required)
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as exc:  # torch raises several unrelated types for corrupt files
        raise CorruptFileError(path, f"torch cannot read it ({exc})") from exc


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", *, required: bool = False
) -> dict[str, Any]:
    """Load a checkpoint dict written by :func:`robustret.core.atomic.atomic_save`, verified
    when it has a sidecar.

    Args:
        path: the ``.pt`` file.
        map_location: where tensors go.
        required: also refuse a file without a ``.sha256`` sidecar.
    Raises:
        FileNotFoundError: no file at ``path``.
        CorruptFileError: (a ``ValueError``) a checksum mismatch, or the file is not a readable
            torch checkpoint dict; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = verified_load(path, map_location=map_location, required=required)
    except CorruptFileError as exc:
        raise CorruptFileError(path, f"{exc.reason}. Delete it or pass another file") from exc
    if not isinstance(obj, dict):
        raise CorruptFileError(path, f"it holds a {type(obj).__name__}, not a checkpoint dict")
    return obj


def move_aside(path: str | os.PathLike) -> Path | None:
    """Rename a corrupt ``path`` to ``NAME.corrupt`` (replacing an older one) and drop its sidecar.

    Returns:
        The new path, or None when there was no file.
    """
    path = Path(path)
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return None
    checksum_path(path).unlink(missing_ok=True)
    return aside
