"""Atomic, checksummed file writes and verified loading: one import for the whole toolkit.

The work is done in three modules, re-exported here so that callers need one import line:

* :mod:`robustret.core.atomic`: writes through a temporary file beside the target and a rename
  (an interrupted run never leaves half a file), with an optional ``NAME.sha256`` sidecar;
* :mod:`robustret.core.checksums`: the sidecar, verified reads (:func:`read_verified`,
  :func:`verified_load`, :func:`load_checkpoint`) raising :class:`CorruptFileError` naming the
  file, and :func:`move_aside` for a corrupt one;
* :mod:`robustret.core.interrupts`: the temporary files of interrupted writes
  (:func:`remove_stale_temps`) and :func:`sigterm_as_interrupt`.
"""

from __future__ import annotations

from robustret.core.atomic import (
    atomic_output,
    atomic_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    write_npy_blocks,
    write_optional_cache,
)
from robustret.core.checksums import (
    CHECKSUM_SUFFIX,
    CorruptFileError,
    checksum_path,
    file_digest,
    load_checkpoint,
    move_aside,
    read_verified,
    verified_load,
    verify_file,
)
from robustret.core.interrupts import STALE_TEMP_SECONDS, remove_stale_temps, sigterm_as_interrupt

__all__ = [
    "CHECKSUM_SUFFIX",
    "STALE_TEMP_SECONDS",
    "CorruptFileError",
    "atomic_output",
    "atomic_save",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "checksum_path",
    "file_digest",
    "load_checkpoint",
    "move_aside",
    "read_verified",
    "remove_stale_temps",
    "sigterm_as_interrupt",
    "verified_load",
    "verify_file",
    "write_npy_blocks",
    "write_optional_cache",
]
