"""The cluster executor of ``--executor submitit``: built from the run's output folder and
``executor_options``, checked before anything runs.

Optional dependency: ``submitit`` is imported lazily, only when a cluster run is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from robustret.core.checks import ConfigError

#: the folder of submitit's job files, inside ``OUT``
SUBMITIT_FOLDER = ".submitit"


def submitit_executor(out_dir: Path, executor_options: Mapping[str, Any]) -> Any:
    """The ``submitit.AutoExecutor`` of a run writing to ``out_dir`` (its job files in
    ``out_dir/.submitit``), with ``executor_options`` (``cluster`` and submitit's parameters).

    Raises:
        ConfigError: submitit is not installed, or it rejects the cluster or an option.
    """
    try:
        # lazy: optional dependency (extra 'cluster')
        import submitit
    except ImportError as exc:
        raise ConfigError("executor submitit needs the submitit package: pip install "
                          "'robustret[cluster]' (or pip install submitit)") from exc
    options = dict(executor_options)
    cluster = options.pop("cluster", None)
    try:
        executor = submitit.AutoExecutor(folder=Path(out_dir) / SUBMITIT_FOLDER,
                                         cluster=cluster)
        executor.update_parameters(**options)
    except (ValueError, NameError, TypeError, AssertionError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"executor_options {dict(executor_options)}: {first}") from exc
    return executor


def check_submitit(out_dir: Path, executor_options: Mapping[str, Any]) -> None:
    """Raise a :class:`ConfigError` now for a submitit executor that cannot be made."""
    submitit_executor(out_dir, executor_options)
