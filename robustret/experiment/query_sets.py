"""Shareable degraded query sets: written by ``python -m robustret.data export``, read by
``python -m robustret.experiment --queries DIR``.

A set is the degraded queries of one (degradation, severity), exactly as the experiment makes
them on the fly (:func:`robustret.evaluation.pipeline.degrade_queries` with
:func:`robustret.evaluation.pipeline.degradation_seed`), frozen in a folder::

    DIR/manifest.json           what it is: data, degradation, severity, seeds, and per image its
                                label, drawn parameters and the SHA-256 of its files
    DIR/manifest.json.sha256    the manifest's own digest (``sha256sum -c`` reads it)
    DIR/queries.npy             the exact (Q, C, H, W) float32 images: rows come from this file
    DIR/images/00000_CLASS.png  each image for viewing: 8-bit, round(255 x), gray or RGB

Why two representations: the degraded values are float32 in [0, 1] (noise, blur and
resampling leave values between the 8-bit steps), and neither an 8-bit nor a 16-bit PNG holds a
float32 exactly (2**16 levels against float32's 24-bit mantissa). The PNGs are for looking at
and for other tools; ``queries.npy`` holds the float32 bytes, so ``--queries DIR`` reproduces
the on-the-fly rows exactly. The drawn parameters are JSON numbers with their torch dtypes in
the manifest (a float32 round-trips exactly through a JSON double).

Reading verifies everything: the manifest against its sidecar, ``queries.npy`` and every PNG
against the SHA-256 in the manifest, the shapes, labels and parameter columns. The runner then
refuses a set made for another (degradation, severity), seed or clean query split
(:func:`queries_key`). A failed check is one :class:`~robustret.core.checks.ConfigError` line
naming the file. Several sets (one per condition) may sit in sub-folders of one folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

import degradations
from robustret.core.checks import ConfigError, check_writable_folder
from robustret.core.io import CorruptFileError, atomic_write_bytes, atomic_write_text, read_verified
from robustret.data import ImageSet, RetrievalData, load
from robustret.evaluation.pipeline import DegradedQueries, degradation_seed, degrade_queries

FORMAT = "robustret-query-set/1"
MANIFEST = "manifest.json"
TENSOR_FILE = "queries.npy"
IMAGE_FOLDER = "images"


@dataclass(frozen=True)
class QueryImage:
    """One query of a set.

    Attributes:
        index: its position in the clean query split (its draw depends on ``(seed, index)``).
        file: the PNG, relative to the set's folder.
        sha256: the PNG file's SHA-256.
        tensor_sha256: SHA-256 of its float32 (C, H, W) bytes in ``queries.npy`` (C order).
        label: class index into the manifest's ``class_names``.
        params: the degradation's drawn parameters for this image (empty for plain noise).
    """

    index: int
    file: str
    sha256: str
    tensor_sha256: str
    label: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryManifest:
    """``manifest.json`` of a query set.

    Attributes:
        format: :data:`FORMAT`.
        dataset, dataset_options, image_size, per_class: how the data were loaded (as the
            experiment loads them, with ``seed`` as the data seed).
        seed: the experiment seed.
        degradation, severity: the condition.
        degradation_seed: ``degradation_seed(seed, severity)``, the seed of the draws.
        queries_key: :func:`queries_key` of the clean queries the set was made from.
        class_names: the data's classes.
        tensor_file, tensor_sha256: ``queries.npy`` and its SHA-256.
        dtype, shape: of the images in it.
        param_dtypes: torch dtype of each parameter column (``float32``, ``int64``, ...).
        images: one entry per query, in order.
    """

    format: str
    dataset: str
    dataset_options: dict[str, Any]
    image_size: int | None
    per_class: int | None
    seed: int
    degradation: str
    severity: int
    degradation_seed: int
    queries_key: str
    class_names: list[str]
    tensor_file: str
    tensor_sha256: str
    dtype: str
    shape: list[int]
    param_dtypes: dict[str, str]
    images: list[QueryImage]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> QueryManifest:
        """Raises ``KeyError`` / ``TypeError`` / ``ValueError`` for a malformed manifest."""
        if values.get("format") != FORMAT:
            raise ValueError(f"format is {values.get('format')!r}, expected {FORMAT!r}")
        values = dict(values)
        values["images"] = [QueryImage(**image) for image in values["images"]]
        return cls(**values)


@dataclass(frozen=True)
class QuerySet:
    """A verified query set.

    Attributes:
        root: its folder.
        manifest: its manifest.
        degraded: the images, parameters and seed, as the pipeline takes them.
        labels: (Q,) int64 labels.
    """

    root: Path
    manifest: QueryManifest
    degraded: DegradedQueries
    labels: Tensor

    @property
    def condition(self) -> tuple[str, int]:
        return self.manifest.degradation, self.manifest.severity


def queries_key(queries: ImageSet) -> str:
    """SHA-256 of the clean query split: its images' float32 bytes, shape and labels."""
    digest = hashlib.sha256()
    for part in (queries.images, queries.labels):
        tensor = part.detach().cpu().contiguous()
        digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _png(image: Tensor) -> bytes:
    """(C, H, W) float in [0, 1] -> 8-bit PNG bytes (gray or RGB)."""
    array = (image.detach().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    array = array[0] if array.shape[0] == 1 else cv2.cvtColor(array.transpose(1, 2, 0),
                                                              cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise OSError("OpenCV could not encode a PNG")
    return encoded.tobytes()


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def write_query_set(
    out: str | Path,
    data: RetrievalData,
    degradation: str,
    severity: int,
    seed: int,
    *,
    dataset: str,
    dataset_options: Mapping[str, Any] | None = None,
    image_size: int | None = None,
    per_class: int | None = None,
) -> QuerySet:
    """Degrade ``data.queries`` as the experiment does and write the set to ``out``.

    Args:
        out: the set's folder (created; an existing set there is overwritten, any other
            non-empty folder refused).
        data: the data, loaded as the experiment loads them (see :func:`export_query_set`).
        degradation, severity: the condition.
        seed: the experiment seed (the draws use ``degradation_seed(seed, severity)``).
        dataset, dataset_options, image_size, per_class: recorded in the manifest.
    Returns:
        The set as :func:`load_query_set` reads it back.
    Raises:
        ConfigError: ``out`` is a file, read-only, or a non-empty folder that is not a set.
    """
    root = Path(out)
    check_writable_folder(root, "query set folder", "--out")
    if root.is_dir() and any(root.iterdir()) and not (root / MANIFEST).is_file():
        raise ConfigError(f"--out {root} is a non-empty folder that holds no query set; "
                          "choose an empty or new folder")
    draw_seed = degradation_seed(seed, severity)
    made = degrade_queries(data.queries.images, degradation, severity, seed=draw_seed)
    images = made.images.detach().cpu().contiguous()
    params = {name: value.detach().cpu() for name, value in sorted(made.params.items())}
    buffer = io.BytesIO()
    np.save(buffer, images.numpy(), allow_pickle=False)
    tensor_bytes = buffer.getvalue()
    (root / IMAGE_FOLDER).mkdir(parents=True, exist_ok=True)
    entries = []
    labels = data.queries.labels.tolist()
    for i, label in enumerate(labels):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", data.class_names[label])
        rel = f"{IMAGE_FOLDER}/{i:05d}_{name}.png"
        png = _png(images[i])
        atomic_write_bytes(root / rel, png)
        entries.append(QueryImage(
            index=i, file=rel, sha256=_sha256(png),
            tensor_sha256=_sha256(images[i].numpy().tobytes()), label=int(label),
            params={key: value[i].tolist() for key, value in params.items()}))
    atomic_write_bytes(root / TENSOR_FILE, tensor_bytes)
    manifest = QueryManifest(
        format=FORMAT, dataset=dataset, dataset_options=dict(dataset_options or {}),
        image_size=image_size, per_class=per_class, seed=int(seed), degradation=degradation,
        severity=int(severity), degradation_seed=draw_seed, queries_key=queries_key(data.queries),
        class_names=list(data.class_names), tensor_file=TENSOR_FILE,
        tensor_sha256=_sha256(tensor_bytes), dtype=_dtype_name(images.dtype),
        shape=list(images.shape), param_dtypes={k: _dtype_name(v.dtype) for k, v in params.items()},
        images=entries)
    atomic_write_text(root / MANIFEST, json.dumps(manifest.to_dict(), indent=1) + "\n",
                      checksum=True)
    return load_query_set(root)


def export_query_set(
    out: str | Path,
    *,
    dataset: str,
    degradation: str,
    severity: int,
    seed: int = 0,
    image_size: int | None = 64,
    per_class: int | None = None,
    dataset_options: Mapping[str, Any] | None = None,
) -> QuerySet:
    """Load the data as the experiment does and write the degraded queries of one condition.

    The data are ``robustret.data.load(dataset, image_size=image_size, per_class=per_class,
    seed=seed, **dataset_options)``, as :func:`robustret.experiment.runner.run` loads them (the
    quick profile's ``image_size`` is 64, :data:`robustret.experiment.config.PROFILE_IMAGE_SIZE`).

    Raises:
        ConfigError: an unknown degradation or severity, data that cannot be read, or a bad
            ``out`` (see :func:`write_query_set`).
    """
    if degradation not in degradations.available():
        raise ConfigError(f"unknown degradation {degradation!r}; available: "
                          f"{', '.join(degradations.available())}")
    if not 1 <= int(severity) <= 5:
        raise ConfigError(f"severity must be 1..5; got {severity}")
    options = dict(dataset_options or {})
    try:
        data = load(dataset, image_size=image_size, per_class=per_class, seed=seed, **options)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"dataset {dataset!r}: {exc}") from exc
    return write_query_set(out, data, degradation, severity, seed, dataset=dataset,
                           dataset_options=options, image_size=image_size, per_class=per_class)


def _verified_bytes(path: Path, expected_sha256: str) -> bytes:
    """The bytes of ``path``, refused (one line naming it) when unreadable or when their
    SHA-256 is not the manifest's."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _refuse(path, f"cannot be read ({exc.strerror or exc})") from None
    if _sha256(data) != expected_sha256:
        raise _refuse(path, f"its SHA-256 does not match {MANIFEST} (the file was changed)")
    return data


def _refuse(path: Path, reason: str) -> ConfigError:
    return ConfigError(f"query set {path}: {reason}; export the set again "
                       "(python -m robustret.data export) or drop --queries")


def read_manifest(folder: str | Path) -> QueryManifest:
    """The manifest of the set in ``folder``, verified against its sidecar (the data files are
    checked by :func:`load_query_set`).

    Raises:
        ConfigError: no folder or manifest, or a manifest that was changed or cannot be read.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"query set folder {root} does not exist; pass a folder written by "
                          "python -m robustret.data export")
    path = root / MANIFEST
    try:
        return QueryManifest.from_dict(json.loads(read_verified(path).decode("utf-8")))
    except FileNotFoundError:
        raise ConfigError(f"query set {root} has no {MANIFEST}; pass a folder written by "
                          "python -m robustret.data export") from None
    except CorruptFileError as exc:
        raise _refuse(path, f"the manifest was changed or is incomplete ({exc.reason})") from None
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise _refuse(path, f"the manifest cannot be read ({exc})") from None


def load_query_set(folder: str | Path) -> QuerySet:
    """Read and verify the set in ``folder``.

    Raises:
        ConfigError: no folder or manifest, a manifest that does not match its sidecar or
            cannot be read, a file whose SHA-256 differs from the manifest, or arrays that do not
            fit the manifest; one line naming the file.
    """
    root = Path(folder)
    manifest = read_manifest(root)
    path = root / MANIFEST
    tensor_path = root / manifest.tensor_file
    tensor_bytes = _verified_bytes(tensor_path, manifest.tensor_sha256)
    array = np.load(io.BytesIO(tensor_bytes), allow_pickle=False)
    count = len(manifest.images)
    if list(array.shape) != manifest.shape or str(array.dtype) != manifest.dtype or (
            array.ndim != 4 or array.shape[0] != count):
        raise _refuse(tensor_path, f"holds {array.dtype} {list(array.shape)}, the manifest says "
                      f"{manifest.dtype} {manifest.shape} for {count} images")
    images = torch.from_numpy(array)
    for i, entry in enumerate(manifest.images):
        if entry.index != i or _sha256(array[i].tobytes()) != entry.tensor_sha256:
            raise _refuse(tensor_path, f"image {i} does not match its entry in {MANIFEST}")
        _verified_bytes(root / entry.file, entry.sha256)
    try:
        params = {name: torch.tensor([entry.params[name] for entry in manifest.images],
                                     dtype=getattr(torch, dtype))
                  for name, dtype in manifest.param_dtypes.items()}
        labels = torch.tensor([entry.label for entry in manifest.images], dtype=torch.int64)
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise _refuse(path, f"its parameters or labels cannot be read ({exc})") from None
    return QuerySet(root, manifest, DegradedQueries(images, params, manifest.degradation_seed),
                    labels)


def set_folders(folder: str | Path) -> list[Path]:
    """The set folders under ``folder``: itself if it holds a manifest, else its sub-folders
    that do (one set per condition).

    Raises:
        ConfigError: ``folder`` is missing, or holds no set.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"query set folder {root} does not exist; pass a folder written by "
                          "python -m robustret.data export")
    if (root / MANIFEST).exists():
        return [root]
    found = sorted(p for p in root.iterdir() if (p / MANIFEST).is_file())
    if not found:
        raise ConfigError(f"query set folder {root} has no {MANIFEST} (nor sub-folders with "
                          "one); pass a folder written by python -m robustret.data export")
    return found


def load_query_sets(folder: str | Path) -> dict[tuple[str, int], QuerySet]:
    """Every set under ``folder`` (see :func:`set_folders`), verified, by (degradation,
    severity).

    Raises:
        ConfigError: see :func:`load_query_set`; two sets for one condition.
    """
    return {which: load_query_set(root) for which, (root, _) in _manifests(folder).items()}


def _manifests(folder: str | Path) -> dict[tuple[str, int], tuple[Path, QueryManifest]]:
    found: dict[tuple[str, int], tuple[Path, QueryManifest]] = {}
    for root in set_folders(folder):
        manifest = read_manifest(root)
        which = (manifest.degradation, manifest.severity)
        if which in found:
            raise ConfigError(f"query sets {found[which][0]} and {root} are both {which[0]} "
                              f"severity {which[1]}; keep one")
        found[which] = (root, manifest)
    return found


def check_query_sets(folder: str | Path, degradations: Iterable[str],
                     severities: Sequence[int], seed: int) -> None:
    """Verify the sets under ``folder`` and that every planned (degradation, severity) has
    one drawn with this run's seed (what the configuration alone can tell).

    Raises:
        ConfigError: see :func:`load_query_sets`; a planned condition without a set, or a set
            drawn with another seed.
    """
    manifests = _manifests(folder)
    for degradation in degradations:
        for severity in severities:
            root = _for_condition(folder, manifests, degradation, severity, seed)
            load_query_set(root)  # every file against its SHA-256


def _for_condition(folder: str | Path,
                   manifests: Mapping[tuple[str, int], tuple[Path, QueryManifest]],
                   degradation: str, severity: int, seed: int) -> Path:
    """The folder of the condition's set, drawn with ``seed``."""
    if (degradation, severity) not in manifests:
        held = ", ".join(f"{d} severity {s}" for d, s in sorted(manifests))
        raise ConfigError(f"query set folder {folder} holds {held}, not {degradation} severity "
                          f"{severity}; export that condition too (python -m robustret.data "
                          "export) or plan only the conditions it holds")
    root, manifest = manifests[(degradation, severity)]
    if manifest.degradation_seed != degradation_seed(seed, severity):
        raise ConfigError(f"query set {root} was drawn with seed {manifest.seed}; this "
                          f"run's seed is {seed}: pass --seed {manifest.seed} or export again")
    return root


def query_set_for(folder: str | Path, degradation: str, severity: int, *, seed: int,
                  queries: ImageSet) -> DegradedQueries:
    """The verified degraded queries of one condition from the sets under ``folder``.

    Raises:
        ConfigError: a set that fails verification, none for the condition, another seed, or
            one made from other clean queries than ``queries`` (other data, split, size or cap).
    """
    root = _for_condition(folder, _manifests(folder), degradation, severity, seed)
    query_set = load_query_set(root)
    manifest = query_set.manifest
    if manifest.queries_key != queries_key(queries):
        raise ConfigError(
            f"query set {query_set.root} was made from other clean queries than this run's "
            f"(the set: dataset {manifest.dataset}, image_size {manifest.image_size}, per_class "
            f"{manifest.per_class}, seed {manifest.seed}); load the data the same way or "
            "export again")
    return query_set.degraded
