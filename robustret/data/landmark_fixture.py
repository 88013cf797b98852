"""A tiny landmark benchmark in the official file formats, for tests and the documented demo.

``write_landmark_fixture(out, "roxford5k")`` writes what :func:`robustret.data.landmarks.
load_landmarks` reads: ``landmarks`` landmarks of ``per_landmark`` photos each (64 x 48 JPEGs:
the landmark's colour, a "building" of its own shape at a jittered place, seeded noise) and
one query per landmark whose box frames the building. The lists of each query's landmark,
photos 1 .. per_landmark:

* classic (``oxford5k``, ``paris6k``): the query is a crop of photo 1 (a gallery image, in its
  own good list); good = photos 1, 2; ok = photo 3; junk = photo 4 and any further;
* revisited (``roxford5k``, ``rparis6k``): the query is a photo of its own outside the gallery;
  easy = photos 1, 2; hard = photo 3; junk = photo 4 and any further.

Paris images go to per-landmark sub-folders (``jpg/<landmark>/``) as the Paris archive has them;
the others to ``jpg/``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np

from robustret.core.io import atomic_write_bytes, atomic_write_text
from robustret.data.landmarks import LandmarkFormat

WIDTH, HEIGHT = 64, 48
NAMES = ("tower", "bridge", "hall", "gate", "dome", "arch", "spire", "court")
"""Landmark names, in order (at most this many landmarks)."""


def _photo(rng: np.random.Generator, landmark: int, landmarks: int) -> tuple[np.ndarray,
                                                                            tuple[int, ...]]:
    """(HEIGHT, WIDTH, 3) uint8 RGB and the building's box (x1, y1, x2, y2)."""
    hue = 180 * landmark // max(landmarks, 1)
    sky = np.full((HEIGHT, WIDTH, 3), (hue, 60, 200), np.uint8)
    image = cv2.cvtColor(sky, cv2.COLOR_HSV2RGB).astype(np.float32)
    w, h = 16 + 6 * (landmark % 3), 20 + 5 * (landmark % 2)
    x1 = int(rng.integers(4, WIDTH - w - 4))
    y1 = int(rng.integers(4, HEIGHT - h - 2))
    building = cv2.cvtColor(np.full((1, 1, 3), ((hue + 90) % 180, 200, 120), np.uint8),
                            cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
    image[y1:y1 + h, x1:x1 + w] = building
    image[y1 + h // 3:y1 + h // 3 + 3, x1:x1 + w] = 255 - building  # a band: the shape
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).round().astype(np.uint8), (x1, y1, x1 + w, y1 + h)


def _jpeg(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise OSError("OpenCV could not encode a JPEG")
    atomic_write_bytes(path, data.tobytes())


def write_landmark_fixture(out: str | Path, form: str | LandmarkFormat, *, landmarks: int = 3,
                           per_landmark: int = 4, seed: int = 0) -> Path:
    """Write the fixture benchmark into ``out`` (created) in format ``form``.

    Args:
        out: the benchmark's folder (the ``PATH`` of ``FORMAT:PATH``).
        form: ``oxford5k``, ``paris6k``, ``roxford5k`` or ``rparis6k``.
        landmarks: 1 .. 8 landmarks, one query each.
        per_landmark: photos per landmark, >= 4.
        seed: the photos' random placement and noise.
    Returns:
        ``out``.
    Raises:
        ValueError: bad counts or format.
    """
    form = LandmarkFormat(form)
    if not 1 <= landmarks <= len(NAMES) or per_landmark < 4:
        raise ValueError(f"landmarks must be 1..{len(NAMES)} and per_landmark >= 4; got "
                         f"{landmarks}, {per_landmark}")
    root = Path(out)
    rng = np.random.default_rng(seed)
    gallery: list[str] = []
    boxes: dict[str, tuple[int, ...]] = {}
    for landmark in range(landmarks):
        for photo in range(1, per_landmark + 1):
            name = f"{NAMES[landmark]}_{photo:06d}"
            if form is LandmarkFormat.PARIS6K:
                name = f"paris_{name}"
            image, boxes[name] = _photo(rng, landmark, landmarks)
            sub = name.split("_")[1] if form is LandmarkFormat.PARIS6K else ""
            _jpeg(root / "jpg" / sub / f"{name}.jpg", image)
            gallery.append(name)
    if form.revisited:
        _write_revisited(root, form, rng, gallery, landmarks, per_landmark)
    else:
        _write_classic(root, form, gallery, boxes, landmarks, per_landmark)
    return root


def _write_classic(root: Path, form: LandmarkFormat, gallery: list[str],
                   boxes: dict[str, tuple[int, ...]], landmarks: int, per_landmark: int) -> None:
    prefix = "oxc1_" if form is LandmarkFormat.OXFORD5K else ""
    for landmark in range(landmarks):
        photos = gallery[landmark * per_landmark:(landmark + 1) * per_landmark]
        query = f"{NAMES[landmark]}_1"
        box = " ".join(f"{v:.1f}" for v in boxes[photos[0]])
        gt = root / "gt"
        atomic_write_text(gt / f"{query}_query.txt", f"{prefix}{photos[0]} {box}\n")
        for which, names in (("good", photos[:2]), ("ok", photos[2:3]), ("junk", photos[3:])):
            atomic_write_text(gt / f"{query}_{which}.txt", "".join(f"{n}\n" for n in names))


def _write_revisited(root: Path, form: LandmarkFormat, rng: np.random.Generator,
                     gallery: list[str], landmarks: int, per_landmark: int) -> None:
    queries, gnd = [], []
    for landmark in range(landmarks):
        name = f"{NAMES[landmark]}_query"
        image, box = _photo(rng, landmark, landmarks)
        _jpeg(root / "jpg" / f"{name}.jpg", image)
        first = landmark * per_landmark
        queries.append(name)
        gnd.append({"bbx": [float(v) for v in box], "easy": [first, first + 1],
                    "hard": [first + 2], "junk": list(range(first + 3, first + per_landmark))})
    data = {"imlist": gallery, "qimlist": queries, "gnd": gnd}
    atomic_write_bytes(root / f"gnd_{form.value}.pkl", pickle.dumps(data, protocol=2))
