"""Class-per-folder reader: splits, cache, clear errors, and the real COIL-20 copy."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from robustret.data import load
from robustret.data.folder import decode_folder


def _make_tree(root: Path, classes: int = 3, per_class: int = 10, objects: int = 2) -> Path:
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 256, (12, 10), dtype=np.uint8)
            ext = ".png" if i % 2 else ".jpg"
            cv2.imwrite(str(folder / f"obj{c}{i % objects}__{i}{ext}"), image)
    return root


def test_stratified_default(tmp_path) -> None:
    root = _make_tree(tmp_path / "data")
    data = load(f"folder:{root}", seed=1)
    assert data.class_names == ["class0", "class1", "class2"]
    assert data.gallery.class_counts() == [8, 8, 8]
    assert data.queries.class_counts() == [2, 2, 2]
    assert data.gallery.images.shape[1:] == (1, 12, 10)
    files = set(data.gallery.metadata["file"]) | set(data.queries.metadata["file"])
    assert len(files) == 30
    again = load(f"folder:{root}", seed=1)
    assert again.queries.metadata["file"] == data.queries.metadata["file"]
    other = load(f"folder:{root}", seed=2)
    assert other.queries.metadata["file"] != data.queries.metadata["file"]


def test_resize_channels_per_class(tmp_path) -> None:
    root = _make_tree(tmp_path / "data")
    data = load(f"folder:{root}", image_size=8, channels="rgb", per_class=3)
    assert data.gallery.images.shape == (9, 3, 8, 8)
    assert data.queries.class_counts() == [2, 2, 2]


def test_split_file(tmp_path) -> None:
    root = _make_tree(tmp_path / "data", classes=2, per_class=4)
    lines = [
        "class0/obj00__0.jpg,query",
        "class0/obj01__1.png,gallery",
        "class1/obj10__0.jpg,query",
        "class1/obj11__1.png,gallery",
        "class1/obj10__2.jpg,gallery",
    ]
    split = tmp_path / "split.csv"
    split.write_text("\n".join(lines) + "\n")
    data = load(f"folder:{root}", split_file=split)
    assert sorted(data.queries.metadata["file"]) == ["class0/obj00__0.jpg", "class1/obj10__0.jpg"]
    assert len(data.gallery) == 3
    split.write_text("class0/missing.png,query\n")
    with pytest.raises(ValueError, match="not in the data folder: class0/missing.png"):
        load(f"folder:{root}", split_file=split)


def test_instance_pattern_split(tmp_path) -> None:
    root = _make_tree(tmp_path / "data", objects=5)
    data = load(f"folder:{root}", instance_pattern=r"obj(\d+)__")
    gallery = set(zip(data.gallery.labels.tolist(), data.gallery.metadata["instance"]))
    query = set(zip(data.queries.labels.tolist(), data.queries.metadata["instance"]))
    assert gallery and query and gallery.isdisjoint(query)
    single = _make_tree(tmp_path / "single", objects=1)
    with pytest.raises(ValueError, match="single instance"):
        load(f"folder:{single}", instance_pattern=r"obj(\d+)__")


def test_empty_and_one_class_folders(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        load(f"folder:{empty}")
    (empty / "a").mkdir()
    (empty / "b").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        load(f"folder:{empty}")
    one = _make_tree(tmp_path / "one", classes=1)
    with pytest.raises(ValueError, match="single class"):
        load(f"folder:{one}")


def test_unreadable_file_warned_by_name_and_skipped(tmp_path, caplog) -> None:
    root = _make_tree(tmp_path / "data")
    (root / "class1" / "broken.png").write_bytes(b"not an image")
    with caplog.at_level(logging.WARNING, logger="robustret.data.folder"):
        data = load(f"folder:{root}")
    assert "class1/broken.png" in caplog.text and "unreadable" in caplog.text
    assert len(data.gallery) + len(data.queries) == 30


def test_no_readable_image(tmp_path) -> None:
    root = tmp_path / "bad"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        (root / name / "x.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="none of the 2 image files could be decoded"):
        load(f"folder:{root}")


def test_cache_hit_and_invalidation(tmp_path, caplog) -> None:
    root = _make_tree(tmp_path / "data")
    first = decode_folder(root)
    with caplog.at_level(logging.INFO, logger="robustret.data.folder"):
        second = decode_folder(root)
    assert "from cache" in caplog.text
    assert np.array_equal(first["images"], second["images"])
    target = root / "class0" / "obj00__0.jpg"
    cv2.imwrite(str(target), np.full((12, 10), 7, np.uint8))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="robustret.data.folder"):
        third = decode_folder(root)
    assert "from cache" not in caplog.text
    assert not np.array_equal(first["images"], third["images"])


def test_cache_key_knows_the_decoding_code(tmp_path, caplog, monkeypatch) -> None:
    from robustret.data import folder

    root = _make_tree(tmp_path / "data")
    decode_folder(root)
    monkeypatch.setattr(folder, "source_hash", lambda *modules: "edited decoder")
    with caplog.at_level(logging.INFO, logger="robustret.data.folder"):
        decode_folder(root)
    assert "from cache" not in caplog.text


def test_coil20_real(shared_data) -> None:
    root = shared_data / "coil-20"
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    data = load(f"folder:{root}", image_size=32)
    assert len(data.class_names) == 20
    assert len(data.gallery) + len(data.queries) == 1440
    assert data.gallery.class_counts() == [58] * 20  # 72 - round(0.2 * 72)
    assert data.queries.class_counts() == [14] * 20
    assert data.gallery.images.shape[1:] == (1, 32, 32)
    with pytest.raises(ValueError, match="single instance"):
        load(f"folder:{root}", image_size=32, instance_pattern=r"obj(\d+)__")


def test_class_without_readable_image_dropped(tmp_path, caplog) -> None:
    root = _make_tree(tmp_path / "data")
    (root / "class9").mkdir()
    (root / "class9" / "x.png").write_bytes(b"junk")
    (root / "aaa").mkdir()
    (root / "aaa" / "y.png").write_bytes(b"junk")
    with caplog.at_level(logging.WARNING, logger="robustret.data.folder"):
        data = load(f"folder:{root}")
    assert data.class_names == ["class0", "class1", "class2"]
    assert (
        "dropped class(es) with no readable image" in caplog.text and "aaa, class9" in caplog.text
    )
    assert sorted(set(data.gallery.labels.tolist())) == [0, 1, 2]
