"""The data interface: ImageSet, RetrievalData, load() spec parsing and shared options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustret.data import ImageSet, RetrievalData, load
from robustret.data.base import cap_per_class, to_float_images
from robustret.data.splits import read_split_file, stratified_split

TINY = {"n_instances": 2, "elevations": 1, "azimuths": 2, "lightings": 1, "render_size": 32}


def _set(n: int = 6, classes: int = 3) -> ImageSet:
    images = torch.rand(n, 1, 4, 4)
    labels = torch.arange(n) % classes
    return ImageSet(
        images,
        labels,
        [f"c{i}" for i in range(classes)],
        {"file": [f"f{i}" for i in range(n)], "instance": torch.arange(n)},
    )


def test_imageset_len_subset_keeps_metadata() -> None:
    s = _set()
    sub = s.subset([4, 1])
    assert len(sub) == 2
    assert sub.labels.tolist() == [1, 1]
    assert sub.metadata["file"] == ["f4", "f1"]
    assert sub.metadata["instance"].tolist() == [4, 1]
    assert torch.equal(sub.images[0], s.images[4])
    assert len(s.subset(np.arange(6) % 2 == 0)) == 3
    assert sub.labels.dtype == torch.int64


def test_imageset_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="metadata column"):
        ImageSet(torch.rand(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), ["a"], {"file": ["x"]})
    with pytest.raises(ValueError):
        ImageSet(torch.rand(2, 4, 4), torch.zeros(2, dtype=torch.long), ["a"])


def test_describe_lists_classes_counts_shape() -> None:
    data = RetrievalData("toy", _set(6), _set(3), ["c0", "c1", "c2"])
    text = data.describe()
    assert "classes: 3" in text and "(1, 4, 4)" in text
    assert "gallery: 6 images" in text and "queries: 3 images" in text
    assert any(line.split() == ["c0", "2", "1"] for line in text.splitlines())


def test_load_unknown_scheme_and_missing_path(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown dataset spec.*'synthetic'"):
        load("mnist")
    with pytest.raises(ValueError, match="needs a path"):
        load("folder:")
    with pytest.raises(FileNotFoundError, match="path not found"):
        load(f"folder:{tmp_path / 'nope'}")
    with pytest.raises(FileNotFoundError, match="path not found"):
        load(f"smallnorb:{tmp_path / 'nope'}")
    with pytest.raises(ValueError, match="does not take option"):
        load("synthetic", bogus=1)
    with pytest.raises(ValueError, match="channels"):
        load("synthetic", channels="cmyk", **TINY)


def test_load_options_size_channels_per_class() -> None:
    data = load("synthetic", image_size=16, channels="rgb", per_class=1, seed=3, **TINY)
    assert data.gallery.images.shape == (5, 3, 16, 16)
    assert data.queries.labels.tolist() == [0, 1, 2, 3, 4]
    assert data.gallery.images.dtype == torch.float32


def test_cap_per_class_is_seeded_and_capped() -> None:
    labels = np.repeat(np.arange(3), 10)
    a = cap_per_class(labels, 4, seed=1, side="gallery")
    assert np.bincount(labels[a]).tolist() == [4, 4, 4]
    assert np.array_equal(a, cap_per_class(labels, 4, seed=1, side="gallery"))
    assert not np.array_equal(a, cap_per_class(labels, 4, seed=2, side="gallery"))
    assert not np.array_equal(a, cap_per_class(labels, 4, seed=1, side="queries"))
    assert np.array_equal(cap_per_class(labels, None, 0, "gallery"), np.arange(30))
    with pytest.raises(ValueError, match="side must be one of"):
        cap_per_class(labels, 4, seed=1, side="query")


def test_to_float_images_resize_and_gray() -> None:
    array = np.zeros((2, 3, 8, 8), np.uint8)
    array[:, 0] = 255
    out = to_float_images(array, image_size=4, channels="gray")
    assert out.shape == (2, 1, 4, 4)
    assert torch.allclose(out, torch.full_like(out, 0.299), atol=1e-3)


def test_stratified_split_disjoint_and_fraction() -> None:
    labels = np.repeat(np.arange(4), 10)
    gallery, query = stratified_split(labels, 0.2, seed=0)
    assert set(gallery).isdisjoint(query) and len(gallery) + len(query) == 40
    assert np.bincount(labels[query]).tolist() == [2, 2, 2, 2]


def test_read_split_file_errors(tmp_path) -> None:
    path = tmp_path / "split.csv"
    path.write_text("path,split\na/1.png,gallery\n\n# note\na/2.png,query\n")
    assert read_split_file(path) == {"a/1.png": "gallery", "a/2.png": "query"}
    path.write_text("a/1.png,train\n")
    with pytest.raises(ValueError, match=r"split.csv:1: side must be"):
        read_split_file(path)
