"""Class-per-folder reader: splits, cache, clear errors, and the real COIL-20 copy."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

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


def _mixed_photos(root: Path, per_class: int = 6) -> Path:
    """A Corel-style folder: JPEGs of 96x64 and 64x96 (width x height), RGB and gray, and one
    unreadable file."""
    rng = np.random.default_rng(3)
    for c in range(3):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            h, w = (64, 96) if i % 2 else (96, 64)
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            image[..., c] = 255  # a class colour
            if i % 3 == 0:
                image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            cv2.imwrite(str(folder / f"photo{i}.jpg"), image)
    (root / "class0" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def test_crop_resize_square_takes_the_middle() -> None:
    from robustret.data.base import crop_resize_square

    image = np.arange(4 * 8, dtype=np.uint8).reshape(4, 8)
    assert np.array_equal(crop_resize_square(image, 4), image[:, 2:6])
    tall = np.arange(6 * 2 * 3, dtype=np.uint8).reshape(6, 2, 3)
    assert np.array_equal(crop_resize_square(tall, 2), tall[2:4])
    assert crop_resize_square(tall, 5).shape == (5, 5, 3)


def test_mixed_sizes_orientations_and_modes_load_with_the_default(tmp_path, caplog) -> None:
    root = _mixed_photos(tmp_path / "photos")
    with caplog.at_level(logging.INFO, logger="robustret.data.folder"):
        data = load(f"folder:{root}")
    assert "smallest shorter side" in caplog.text and "broken.jpg" in caplog.text
    assert data.gallery.images.shape[1:] == (3, 64, 64)  # gray repeated, cropped to 64 x 64
    assert len(data.gallery) + len(data.queries) == 18
    sized = load(f"folder:{root}", image_size=32, channels="gray")
    assert sized.queries.images.shape[1:] == (1, 32, 32)
    # a landscape image (96 x 64): its centre square, not the squashed whole
    landscape = cv2.cvtColor(cv2.imread(str(root / "class1" / "photo1.jpg")), cv2.COLOR_BGR2RGB)
    files = data.gallery.metadata["file"] + data.queries.metadata["file"]
    images = torch.cat([data.gallery.images, data.queries.images])
    got = images[files.index("class1/photo1.jpg")]
    expected = torch.from_numpy(landscape[:, 16:80].transpose(2, 0, 1).astype(np.float32) / 255)
    assert torch.equal(got, expected)


def test_survey_describes_a_mixed_folder(tmp_path) -> None:
    from robustret.data.folder import survey_folder

    survey = survey_folder(_mixed_photos(tmp_path / "photos"))
    assert survey.counts == [6, 6, 6] and survey.unreadable == ["class0/broken.jpg"]
    assert survey.sizes == {(96, 64): 9, (64, 96): 9}
    assert survey.modes == {"RGB 8-bit": 12, "gray 8-bit": 6}
    assert survey.shape == (3, 64, 64)
    text = survey.describe()
    assert "96x64: 9" in text and "gray 8-bit: 6" in text
    assert "unreadable: class0/broken.jpg" in text


def test_the_experiment_runs_on_mixed_photos_without_extra_flags(tmp_path) -> None:
    from robustret.cli.experiment import main

    root = _mixed_photos(tmp_path / "photos")
    out = tmp_path / "run"
    assert main(["--dataset", f"folder:{root}", "--out", str(out), "--degrade", "gaussian_noise",
                 "--restore", "none", "--retriever-epochs", "1", "--backbone", "resnet18",
                 "--no-tensorboard", "--cache-dir", str(tmp_path / "cache"), "-q"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["image_size"] == 64  # the quick profile's size
    assert json.loads((out / "results.json").read_text())["rows"]
