"""Retrieval data: one interface (:class:`ImageSet`, :class:`RetrievalData`) and :func:`load`.

Specs understood by :func:`load`:

* ``synthetic``: the built-in procedural multi-view set (:mod:`robustret.data.synthetic`);
* ``smallnorb:PATH``: the official smallNORB files in folder PATH (:mod:`robustret.data.smallnorb`);
* ``folder:PATH``: one sub-folder per class (:mod:`robustret.data.folder`; with
  ``decode='lazy'`` decoded one file at a time through a DataLoader with ``workers``,
  :mod:`robustret.data.lazy`).

The landmark benchmarks (``oxford5k:PATH``, ``paris6k:PATH``, ``roxford5k:PATH``,
``rparis6k:PATH``) have per-query ground truth instead of classes: they are read by
:func:`robustret.data.landmarks.load_landmarks`, not by :func:`load`.

Layer 2. May import: ``robustret.core``.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from robustret.data.base import ImageSet, RetrievalData
from robustret.data.class_folders import load_folder
from robustret.data.landmarks import LANDMARK_SCHEMES
from robustret.data.smallnorb import load_smallnorb, write_smallnorb_matrix
from robustret.data.splits import ImageSetDataset, to_loader
from robustret.data.synthetic import load_synthetic, load_synthetic_extra

__all__ = [
    "ImageSet",
    "ImageSetDataset",
    "LANDMARK_SCHEMES",
    "RetrievalData",
    "SCHEMES",
    "load",
    "load_extra_objects",
    "to_loader",
    "write_smallnorb_matrix",
]

SCHEMES = {"synthetic": load_synthetic, "smallnorb": load_smallnorb, "folder": load_folder}
EXTRA_OBJECTS = {"synthetic": load_synthetic_extra}
"""Schemes that can make more objects than their two splits hold (:func:`load_extra_objects`)."""
_USAGE = (
    "use 'synthetic', 'smallnorb:PATH' (folder of the official .mat/.mat.gz files) or "
    "'folder:PATH' (one sub-folder per class)"
)


def load(
    spec: str,
    *,
    image_size: int | None = None,
    channels: str | None = None,
    per_class: int | None = None,
    seed: int = 0,
    **reader_options: object,
) -> RetrievalData:
    """Load a data set by spec.

    Args:
        spec: ``'synthetic'``, ``'smallnorb:PATH'`` or ``'folder:PATH'``.
        image_size: resize every image to (image_size, image_size) (cv2 INTER_AREA when
            shrinking); None keeps the native size.
        channels: ``'gray'``, ``'rgb'`` or None (the source's native channel count).
        per_class: cap on images per class in each split (seeded, deterministic), for quick runs.
        seed: seed of the split / generator / per-class choice.
        **reader_options: reader-specific options, e.g. ``camera='both'`` (smallnorb),
            ``query_fraction``, ``split_file``, ``instance_pattern``, ``use_cache``, ``decode``,
            ``workers`` (folder), ``n_instances``,
            ``elevations``, ``azimuths``, ``lightings``, ``render_size`` (synthetic).
    Returns:
        :class:`RetrievalData` with gallery and query :class:`ImageSet` s, images
        (N, C, H, W) float32 in [0, 1].
    Raises:
        ValueError: unknown scheme, missing path, or an option the reader does not take.
        FileNotFoundError: PATH does not exist.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"dataset spec must be a non-empty string; {_USAGE}")
    scheme, sep, rest = spec.strip().partition(":")
    scheme = scheme.lower()
    if scheme in LANDMARK_SCHEMES:
        raise ValueError(f"{scheme} is a landmark benchmark with per-query ground truth, not a "
                         "class-labelled set: read it with robustret.data.landmarks."
                         "load_landmarks (python -m robustret.experiment.landmarks)")
    if scheme not in SCHEMES:
        raise ValueError(f"unknown dataset spec {spec!r}; {_USAGE}")
    reader = SCHEMES[scheme]
    accepted = set(inspect.signature(reader).parameters)
    unknown = sorted(set(reader_options) - accepted)
    if unknown:
        valid = ", ".join(
            sorted(accepted - {"path", "image_size", "channels", "per_class", "seed"})
        )
        raise ValueError(f"{scheme} does not take option(s) {', '.join(unknown)}; valid: {valid}")
    common = {"image_size": image_size, "channels": channels, "per_class": per_class, "seed": seed}
    if scheme == "synthetic":
        if rest:
            raise ValueError(f"'synthetic' takes no path (got {spec!r}); pass options as keywords")
        return reader(**common, **reader_options)
    if not sep or not rest:
        raise ValueError(f"{scheme} needs a path: '{scheme}:PATH'; {_USAGE}")
    path = Path(rest).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{scheme} path not found: {path}; {_USAGE}")
    return reader(path, **common, **reader_options)


def load_extra_objects(
    spec: str,
    extra_objects: int,
    *,
    image_size: int | None = None,
    channels: str | None = None,
    per_class: int | None = None,
    seed: int = 0,
    **reader_options: object,
) -> ImageSet | None:
    """``extra_objects`` more objects per class of the data set ``spec``, for training only.

    Only a scheme of :data:`EXTRA_OBJECTS` can make them (``synthetic`` renders more objects
    of its generator, disjoint from its gallery and queries: :func:`load_synthetic_extra`); a
    data set on disk holds what it holds.

    Args:
        spec, image_size, channels, per_class, seed, reader_options: as given to :func:`load`
            for the data set itself (checked there).
        extra_objects: objects per class (>= 1).
    Returns:
        :class:`ImageSet` (N, C, H, W) float32 in [0, 1] with the data set's classes, or None
        when the scheme cannot make more objects.
    """
    scheme = spec.strip().partition(":")[0].lower() if isinstance(spec, str) else ""
    reader = EXTRA_OBJECTS.get(scheme)
    if reader is None:
        return None
    return reader(extra_objects, image_size=image_size, channels=channels, per_class=per_class,
                  seed=seed, **reader_options)
