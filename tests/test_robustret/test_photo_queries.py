"""Real photos as queries (--query-folder, robustret/experiment/photos.py), end to end on a
tiny class-folder gallery and a folder of photos taken of its classes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from robustret.cli.experiment import main
from tests.conftest import write_class_folders


def _photos(root: Path, classes: tuple[str, ...] = ("class0", "class2")) -> Path:
    """Photos of the gallery's classes as a camera might give them: a few of the tiny data
    set's images, noisy and at another size (so they are cropped and resized like the data)."""
    source = write_class_folders(root.parent / "source", classes=3, per_class=3, size=48)
    rng = np.random.default_rng(3)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i, path in enumerate(sorted((source / name).glob("*.png"))):
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(float)
            noisy = (image + rng.normal(0, 25, image.shape)).clip(0, 255).astype(np.uint8)
            cv2.imwrite(str(root / name / f"photo{i}.jpg"), noisy)
    return root


def _args(gallery: Path, photos: Path, out: Path, *extra: str) -> list[str]:
    return ["--dataset", f"folder:{gallery}", "--query-folder", str(photos), "--out", str(out),
            "--image-size", "32", "--retriever-epochs", "1", "--backbone", "resnet18",
            "--topk", "1", "3", "--metric", "l2", "--no-tensorboard", "-q",
            "--cache-dir", str(out.parent / "cache"), *extra]


def test_photos_are_searched_as_they_are_and_restored_with_their_estimates(
        tiny_folder: Path, tmp_path: Path, capsys) -> None:
    photos = _photos(tmp_path / "photos")
    out = tmp_path / "run"
    assert main(_args(tiny_folder, photos, out)) == 0
    printed = capsys.readouterr().out
    assert "Real photos as queries" in printed and "photo_queries.json" in printed
    result = json.loads((out / "photo_queries.json").read_text())
    rows = {row["row"]: row for row in result["rows"]}
    assert set(rows) == {"as they are", "estimated"}
    assert rows["as they are"]["knowledge"] is None
    assert rows["estimated"]["knowledge"] == "estimated"
    for row in rows.values():
        assert set(row["accuracy"]) == {"1", "3"} and 0 <= row["accuracy"]["1"] <= 1
    queries = result["queries"]
    assert len(queries) == 6  # three photos of each of two classes
    assert {q["class_name"] for q in queries} == {"class0", "class2"}
    assert {q["file"].split("/")[0] for q in queries} == {"class0", "class2"}
    for query in queries:
        assert query["family"] in {"clean", "noise", "blur", "resolution"}
        assert set(query["top"]) == {"as they are", "estimated"}
        assert all(len(found) == 3 and set(found) <= {"class0", "class1", "class2"}
                   for found in query["top"].values())
    # sigma 25 of 255 is heavy noise: the estimator calls most of the photos noisy
    assert sum(q["family"] == "noise" for q in queries) >= 4
    assert (out / "photo_queries.md").is_file()


def test_a_class_the_gallery_lacks_is_one_line(tiny_folder: Path, tmp_path: Path,
                                               capsys) -> None:
    photos = _photos(tmp_path / "photos", classes=("class0",))
    (photos / "zebra").mkdir()
    cv2.imwrite(str(photos / "zebra" / "z.png"), np.zeros((32, 32), np.uint8))
    assert main(_args(tiny_folder, photos, tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert "zebra" in err and "class0, class1, class2" in err


@pytest.mark.parametrize("problem", ["missing", "with --queries"])
def test_a_bad_query_folder_is_refused_before_any_work(tiny_folder: Path, tmp_path: Path,
                                                       capsys, problem: str) -> None:
    extra = ["--queries", str(tmp_path)] if problem == "with --queries" else []
    photos = tmp_path / ("nowhere" if problem == "missing" else "")
    assert main(_args(tiny_folder, photos, tmp_path / "run", *extra)) == 2
    err = capsys.readouterr().err
    assert ("not a directory" if problem == "missing" else "pass one") in err
