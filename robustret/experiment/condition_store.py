"""Finished conditions of a run, kept in ``OUT/.conditions`` so a re-run continues where it
stopped. One JSON file per condition, named by the condition and its key, written atomically
with a ``.sha256`` sidecar. A file that does not match its checksum, cannot be read or does not
hold the condition's rows is reported in one warning and recomputed, never fatal or trusted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from robustret.core.io import CorruptFileError, atomic_write_json, read_verified, remove_stale_temps
from robustret.evaluation.results import Condition, ResultRow

log = logging.getLogger(__name__)


class ConditionStore:
    """The finished-condition cache of one output folder.

    Temporary files of interrupted writes in ``folder`` are removed when the store is made.

    Args:
        folder: where the files go (created on the first save).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        remove_stale_temps(self.folder)

    def path(self, condition: Condition, key: str) -> Path:
        """The file of ``condition`` under ``key``."""
        return self.folder / f"{condition.name}-{key}.json"

    def load(self, condition: Condition, key: str) -> list[ResultRow] | None:
        """The stored rows of ``condition`` under ``key`` (marked ``reused``), or None."""
        path = self.path(condition, key)
        if not path.is_file():
            return None
        try:
            stored = json.loads(read_verified(path).decode("utf-8"))
            rows = [ResultRow.from_dict({**row, "reused": True}) for row in stored["rows"]]
        except CorruptFileError as exc:
            log.warning("finished condition %s; recomputing it", exc)
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("finished condition %s is unreadable (%s); recomputing it", path, exc)
            return None
        if not rows or any(row.condition != condition for row in rows):
            log.warning("finished condition %s does not hold %s; recomputing it", path,
                        condition.name)
            return None
        return rows

    def save(self, condition: Condition, key: str, rows: list[ResultRow]) -> Path:
        """Store ``rows`` of ``condition`` under ``key`` (atomically, with its checksum)."""
        return atomic_write_json(self.path(condition, key),
                                 {"rows": [row.to_dict() for row in rows]}, checksum=True)
