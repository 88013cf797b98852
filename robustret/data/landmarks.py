"""Readers of the landmark benchmarks' own files: Oxford5k / Paris6k and ROxford5k / RParis6k.

Nothing is downloaded: ``--dataset FORMAT:PATH`` points at a local copy laid out as the
benchmarks ship (the revisited layout is revisitop's ``data/datasets/NAME/``):

* ``oxford5k:PATH`` / ``paris6k:PATH``, the classic ground-truth folder::

      PATH/gt/<query>_query.txt   one line "<image> x1 y1 x2 y2" (Oxford writes the image as
                                  "oxc1_<image>"; the prefix is dropped)
      PATH/gt/<query>_good.txt    image names, one a line; also _ok.txt and _junk.txt
      PATH/jpg/**/<image>.jpg     every image of the benchmark (sub-folders allowed, as Paris
                                  ships them); the gallery is all of them, in sorted name order

  (``gt_dir`` and ``image_dir`` point elsewhere). Queries are in sorted ``<query>`` order; the
  query image is a gallery image, and sits in its own good list, as the protocol has it.
* ``roxford5k:PATH`` / ``rparis6k:PATH``, the revisited ground truth::

      PATH/gnd_roxford5k.pkl      (gnd_rparis6k.pkl) a dict: imlist (gallery names), qimlist
                                  (query names), gnd (per query a dict bbx [x1, y1, x2, y2],
                                  easy, hard, junk: indices into imlist)
      PATH/jpg/<name>.jpg         gallery and query images

  The pickle is read by :class:`PlainUnpickler`, which admits only the built-in containers and
  scalars (dict, list, tuple, str, int, float, bool, None): a pickle that names any class or
  function is refused, so a crafted file cannot run code.
* distractors (revisitop1m, "R1M"): ``distractors=DIR`` adds images after the benchmark's
  gallery (their indices come last, so the ground truth is unchanged): the names listed in
  ``DIR/revisitop1m.txt`` under ``DIR/jpg/`` when that list exists, else every image file
  under ``DIR`` in sorted order.

What a reader returns is a :class:`LandmarkBenchmark`: gallery files, the queries with their
boxes and ground-truth lists (:class:`ClassicTruth` good / ok / junk or
:class:`RevisitedTruth` easy / hard / junk, indices into the gallery). Turning these into
per-setup positives and junk is :mod:`robustret.retrieval.relevance`'s job; decoding, cropping
and resizing is :mod:`robustret.data.landmark_images`'.
"""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
LISTS = ("good", "ok", "junk")
"""The classic ground truth's list files, ``<query>_<list>.txt``."""
DISTRACTOR_LIST = "revisitop1m.txt"


class LandmarkFormat(StrEnum):
    """A benchmark's file format, the scheme of its ``--dataset`` spec."""

    OXFORD5K = "oxford5k"
    PARIS6K = "paris6k"
    ROXFORD5K = "roxford5k"
    RPARIS6K = "rparis6k"

    @property
    def revisited(self) -> bool:
        """The revisited protocol (E / M / H setups, ``gnd_*.pkl``)."""
        return self in (LandmarkFormat.ROXFORD5K, LandmarkFormat.RPARIS6K)


#: the ``--dataset`` schemes of the landmark benchmarks
LANDMARK_SCHEMES: tuple[str, ...] = tuple(f.value for f in LandmarkFormat)


@dataclass(frozen=True)
class ClassicTruth:
    """One classic query's lists (gallery indices): ``good``, ``ok`` and ``junk``."""

    good: tuple[int, ...]
    ok: tuple[int, ...]
    junk: tuple[int, ...]


@dataclass(frozen=True)
class RevisitedTruth:
    """One revisited query's lists (gallery indices): ``easy``, ``hard`` and ``junk``."""

    easy: tuple[int, ...]
    hard: tuple[int, ...]
    junk: tuple[int, ...]


@dataclass(frozen=True)
class LandmarkQuery:
    """One query.

    Attributes:
        name: the query's name (classic: the ``<query>`` of its files, e.g. ``all_souls_1``;
            revisited: its image name).
        file: its image file (the whole photo; :attr:`box` is cropped from it).
        box: ``(x1, y1, x2, y2)`` in pixels of the photo, as the ground truth gives it.
        truth: its ground-truth lists.
    """

    name: str
    file: Path
    box: tuple[float, float, float, float]
    truth: ClassicTruth | RevisitedTruth


@dataclass(frozen=True)
class LandmarkBenchmark:
    """A landmark benchmark read from its own files.

    Attributes:
        format: which benchmark format.
        root: the folder of the spec.
        gallery_names: (N,) image names, benchmark images first, then distractors.
        gallery_files: (N,) their files.
        queries: the queries, in the ground truth's order.
        distractors: how many of the gallery's last items are distractors.
    """

    format: LandmarkFormat
    root: Path
    gallery_names: tuple[str, ...]
    gallery_files: tuple[Path, ...]
    queries: tuple[LandmarkQuery, ...]
    distractors: int = 0

    def describe(self) -> str:
        """One line: format, gallery size, queries."""
        return (f"{self.format.value}: {len(self.gallery_files)} gallery images "
                f"({self.distractors} distractors), {len(self.queries)} queries, from {self.root}")


def parse_landmark_spec(spec: str) -> tuple[LandmarkFormat, Path]:
    """``FORMAT:PATH`` -> ``(format, path)``.

    Raises:
        ValueError: not a landmark scheme, or no path.
    """
    scheme, _, location = spec.strip().partition(":")
    if scheme.lower() not in LANDMARK_SCHEMES or not location:
        raise ValueError(f"landmark dataset spec {spec!r} must be FORMAT:PATH with FORMAT one of "
                         f"{', '.join(LANDMARK_SCHEMES)}")
    return LandmarkFormat(scheme.lower()), Path(location).expanduser()


def load_landmarks(spec: str, *, distractors: str | Path | None = None,
                   gt_dir: str | Path | None = None,
                   image_dir: str | Path | None = None) -> LandmarkBenchmark:
    """Read the benchmark of ``spec`` (``oxford5k:PATH``, ``paris6k:PATH``,
    ``roxford5k:PATH``, ``rparis6k:PATH``; the layouts are the module's).

    Args:
        spec: the format and the folder.
        distractors: a folder of distractor images (R1M) added to the gallery.
        gt_dir: the classic ground-truth folder when it is not ``PATH/gt``.
        image_dir: the image folder when it is not ``PATH/jpg``.
    Returns:
        The :class:`LandmarkBenchmark`. No image is decoded here.
    Raises:
        FileNotFoundError: a folder, ground-truth file or image that is missing (named).
        ValueError: a malformed ground-truth file (named, with the line), a refused pickle.
    """
    form, root = parse_landmark_spec(spec)
    if not root.is_dir():
        raise FileNotFoundError(f"{form.value} folder {root} does not exist; pass the folder "
                                "that holds the benchmark (docs/landmarks.md, 'Layouts')")
    images = Path(image_dir) if image_dir is not None else root / "jpg"
    if not images.is_dir():
        raise FileNotFoundError(f"{form.value}: image folder {images} does not exist; put the "
                                "images in PATH/jpg/ or pass the image folder")
    if form.revisited:
        if gt_dir is not None:
            raise ValueError(f"{form.value} reads PATH/gnd_{form.value}.pkl; gt_dir is for the "
                             "classic formats (oxford5k, paris6k)")
        bench = read_revisited(form, root, images)
    else:
        bench = read_classic(form, root, Path(gt_dir) if gt_dir is not None else root / "gt",
                             images)
    if distractors is None:
        return bench
    names, files = distractor_files(Path(distractors))
    return LandmarkBenchmark(bench.format, bench.root, bench.gallery_names + names,
                             bench.gallery_files + files, bench.queries, len(files))


# --- classic: the ground-truth folder ------------------------------------------------------

def _image_files(images: Path) -> dict[str, Path]:
    """Every image under ``images`` by name without suffix; a name found twice is an error."""
    found: dict[str, Path] = {}
    for path in sorted(images.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES \
                and not path.name.startswith("."):
            if path.stem in found:
                raise ValueError(f"image name {path.stem!r} is in the image folder twice "
                                 f"({found[path.stem]} and {path}); keep one")
            found[path.stem] = path
    if not found:
        raise FileNotFoundError(f"no .jpg images under {images}")
    return found


def _read_list(path: Path, index: dict[str, int]) -> tuple[int, ...]:
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth list {path} is missing; every <query>_query.txt "
                                "needs its _good.txt, _ok.txt and _junk.txt")
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        name = line.strip()
        if not name:
            continue
        if name not in index:
            raise ValueError(f"{path}:{number}: image {name!r} is not in the image folder")
        out.append(index[name])
    return tuple(out)


def _read_query_line(path: Path, prefix: str) -> tuple[str, tuple[float, float, float, float]]:
    words = path.read_text(encoding="utf-8").split()
    if len(words) != 5:
        raise ValueError(f"{path}: expected one line '<image> x1 y1 x2 y2'; got {len(words)} "
                         "words")
    try:
        box = tuple(float(w) for w in words[1:])
    except ValueError:
        raise ValueError(f"{path}: the box {' '.join(words[1:])!r} is not four numbers") from None
    return words[0].removeprefix(prefix), box  # type: ignore[return-value]


def read_classic(form: LandmarkFormat, root: Path, gt: Path, images: Path) -> LandmarkBenchmark:
    """Read the classic format (see the module's layout)."""
    if not gt.is_dir():
        raise FileNotFoundError(f"{form.value}: ground-truth folder {gt} does not exist; put the "
                                "<query>_query.txt files in PATH/gt/ or pass the folder")
    files = _image_files(images)
    names = tuple(sorted(files))
    index = {name: i for i, name in enumerate(names)}
    query_files = sorted(gt.glob("*_query.txt"))
    if not query_files:
        raise FileNotFoundError(f"{form.value}: no <query>_query.txt in {gt}")
    prefix = "oxc1_" if form is LandmarkFormat.OXFORD5K else ""
    queries = []
    for path in query_files:
        query = path.name.removesuffix("_query.txt")
        image, box = _read_query_line(path, prefix)
        if image not in files:
            raise FileNotFoundError(f"{path}: query image {image!r} is not in {images}")
        good, ok, junk = (_read_list(gt / f"{query}_{which}.txt", index) for which in LISTS)
        queries.append(LandmarkQuery(query, files[image], box, ClassicTruth(good, ok, junk)))
    return LandmarkBenchmark(form, root, names, tuple(files[n] for n in names), tuple(queries))


# --- revisited: gnd_NAME.pkl ---------------------------------------------------------------

class PlainUnpickler(pickle.Unpickler):
    """An unpickler that builds only the built-in containers and scalars (dict, list, tuple,
    set, str, bytes, int, float, bool, None): every global a pickle names (a class, a function,
    numpy's array constructor) is refused."""

    def find_class(self, module: str, name: str) -> object:
        raise pickle.UnpicklingError(
            f"refused global {module}.{name}: a ground-truth file holds only plain lists, dicts, "
            "numbers and strings")


def read_plain_pickle(path: Path) -> object:
    """The object of a pickle of plain built-in values (see :class:`PlainUnpickler`).

    Raises:
        ValueError: the file names a global, or is not a readable pickle; one line naming it.
    """
    try:
        return PlainUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        raise ValueError(f"{path} is not a readable pickle ({type(exc).__name__}: {exc})") from None


def _indices(values: object, where: str, size: int) -> tuple[int, ...]:
    if not isinstance(values, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{where} must be a list of integers")
    bad = [v for v in values if not 0 <= v < size]
    if bad:
        raise ValueError(f"{where} holds index {bad[0]}, outside imlist's 0..{size - 1}")
    return tuple(values)


def _names(values: object, where: str) -> tuple[str, ...]:
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{where} must be a list of image names (strings)")
    return tuple(values)


def read_revisited(form: LandmarkFormat, root: Path, images: Path) -> LandmarkBenchmark:
    """Read the revisited format (see the module's layout)."""
    path = root / f"gnd_{form.value}.pkl"
    if not path.is_file():
        raise FileNotFoundError(f"{form.value}: {path} is missing; put the revisited ground "
                                f"truth gnd_{form.value}.pkl in the folder")
    cfg = read_plain_pickle(path)
    if not isinstance(cfg, dict) or not {"imlist", "qimlist", "gnd"} <= set(cfg):
        raise ValueError(f"{path} must hold a dict with imlist, qimlist and gnd")
    names = _names(cfg["imlist"], f"{path}: imlist")
    qnames = _names(cfg["qimlist"], f"{path}: qimlist")
    gnd = cfg["gnd"]
    if not isinstance(gnd, list) or len(gnd) != len(qnames):
        raise ValueError(f"{path}: gnd must be a list with one entry per qimlist name "
                         f"({len(qnames)})")
    queries = []
    for i, (qname, entry) in enumerate(zip(qnames, gnd)):
        where = f"{path}: gnd[{i}]"
        if not isinstance(entry, dict) or not {"bbx", "easy", "hard", "junk"} <= set(entry):
            raise ValueError(f"{where} must be a dict with bbx, easy, hard and junk")
        box = entry["bbx"]
        if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
            raise ValueError(f"{where}['bbx'] must be four numbers x1, y1, x2, y2")
        truth = RevisitedTruth(*(_indices(entry[key], f"{where}['{key}']", len(names))
                                 for key in ("easy", "hard", "junk")))
        queries.append(LandmarkQuery(qname, images / f"{qname}.jpg",
                                     tuple(float(v) for v in box), truth))  # type: ignore[arg-type]
    files = tuple(images / f"{name}.jpg" for name in names)
    _check_exist([*files, *(q.file for q in queries)], images)
    return LandmarkBenchmark(form, root, names, files, tuple(queries))


def _check_exist(files: Sequence[Path], images: Path) -> None:
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image(s) of the ground truth are missing from "
                                f"{images}, e.g. {missing[0].name}")


# --- distractors -------------------------------------------------------------------------------

def distractor_files(folder: Path) -> tuple[tuple[str, ...], tuple[Path, ...]]:
    """The distractor images of ``folder``: the list ``revisitop1m.txt`` (names under
    ``folder/jpg/``) when present, else every image file under ``folder``, sorted.

    Raises:
        FileNotFoundError: no folder, no images, or a listed image that is missing.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"distractor folder {folder} does not exist")
    listing = folder / DISTRACTOR_LIST
    if listing.is_file():
        names = tuple(line.strip() for line in listing.read_text(encoding="utf-8").splitlines()
                      if line.strip())
        files = tuple(folder / "jpg" / name for name in names)
        _check_exist(files, folder / "jpg")
    else:
        files = tuple(p for p in sorted(folder.rglob("*")) if p.is_file()
                      and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        names = tuple(re.sub(r"\.[^.]*$", "", p.relative_to(folder).as_posix()) for p in files)
    if not files:
        raise FileNotFoundError(f"no distractor images in {folder}")
    return names, files
