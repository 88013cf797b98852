"""Lazy folder data: the same tensors as the eager reader, any workers, caches, clear errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from robustret.data import load
from robustret.data.lazy import (
    DecodedFolder,
    FolderDataset,
    folder_loader,
    index_folder,
    lazy_folder,
)
from robustret.retrieval import extract_embeddings, write_embeddings


def _mixed_tree(root: Path) -> Path:
    """3 classes x 6 files of three sizes, gray and RGB, one 16-bit file, one unreadable file
    and a class folder whose only file cannot be decoded."""
    rng = np.random.default_rng(0)
    for c in range(3):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(6):
            h, w = [(12, 10), (9, 14), (16, 16)][i % 3]
            shape = (h, w, 3) if i % 2 else (h, w)
            cv2.imwrite(str(root / f"c{c}" / f"{i}.png"), rng.integers(0, 256, shape, np.uint8))
    cv2.imwrite(str(root / "c0" / "deep.png"), rng.integers(0, 65536, (11, 13), np.uint16))
    (root / "c1" / "bad.png").write_bytes(b"not a png")
    (root / "empty").mkdir()
    (root / "empty" / "x.jpg").write_bytes(b"")
    return root


@pytest.mark.parametrize("options", [{}, {"image_size": 8, "channels": "gray"},
                                     {"image_size": 20, "channels": "rgb", "per_class": 3}])
@pytest.mark.parametrize("use_cache", [False, True])
def test_lazy_equals_eager_bit_for_bit(tmp_path: Path, options: dict, use_cache: bool) -> None:
    root = _mixed_tree(tmp_path / "data")
    eager = load(f"folder:{root}", use_cache=False, **options)
    lazy = load(f"folder:{root}", decode="lazy", use_cache=use_cache, **options)
    assert lazy.name == eager.name and lazy.class_names == eager.class_names == ["c0", "c1", "c2"]
    for side in ("gallery", "queries"):
        a, b = getattr(eager, side), getattr(lazy, side)
        assert a.images.dtype == b.images.dtype == torch.float32
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
        assert a.metadata == b.metadata
    if use_cache:  # a second pass reads the decoded-image cache: still identical
        again = load(f"folder:{root}", decode="lazy", **options)
        assert torch.equal(again.gallery.images, eager.gallery.images)


def test_dataset_items_and_shapes_follow_the_folder(tmp_path: Path) -> None:
    root = _mixed_tree(tmp_path / "data")
    index = index_folder(root, use_cache=False)
    assert index.colour and index.deep and index.unreadable == ["c1/bad.png", "empty/x.jpg"]
    assert len(index) == 19 and index.side(None) == 9  # the smallest shorter side
    source = DecodedFolder(index)
    assert source.shape == (3, 9, 9) and source[0].dtype == np.uint16
    dataset = FolderDataset(source, index.labels, np.array([4, 0]), channels="gray")
    image, label = dataset[0]
    assert dataset.image_shape == tuple(image.shape) == (1, 9, 9)
    assert label == int(index.labels[4]) and 0.0 <= image.min() <= image.max() <= 1.0


def test_workers_give_the_same_batches_and_embeddings(tiny_folder: Path, tmp_path: Path) -> None:
    data = lazy_folder(tiny_folder, image_size=16, use_cache=False)
    torch.manual_seed(0)  # a tiny network: the loader is under test, not the retriever
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.AdaptiveAvgPool2d(2),
                                torch.nn.Flatten())
    rows = {}
    for workers in (0, 2):
        loader = folder_loader(data.gallery, batch_size=5, workers=workers)
        rows[workers] = write_embeddings(model, loader, tmp_path / f"w{workers}.npy")
        labels = torch.cat([batch_labels for _, batch_labels in loader])
        assert torch.equal(labels, data.gallery.labels)
    assert rows[0].shape == (len(data.gallery), 16)
    assert torch.equal(rows[0], rows[2])
    eager = load(f"folder:{tiny_folder}", image_size=16, use_cache=False)
    expected = extract_embeddings(model, eager.gallery.images, batch_size=5)
    assert torch.equal(rows[0], expected)


def test_the_index_is_cached_and_a_damaged_one_rebuilt(tiny_folder: Path, caplog,
                                                      monkeypatch) -> None:
    first = index_folder(tiny_folder)
    import robustret.data.lazy as lazy

    calls = []
    real = lazy._ProbeFiles.__getitem__
    monkeypatch.setattr(lazy._ProbeFiles, "__getitem__",
                        lambda self, j: calls.append(j) or real(self, j))
    again = index_folder(tiny_folder)
    assert calls == [] and again.files == first.files and torch.equal(
        torch.from_numpy(again.labels), torch.from_numpy(first.labels))
    cached = next(p for p in Path(lazy.cache_dir("folders")).glob(f"{first.key}.index.json"))
    cached.write_text(json.dumps({"files": []}))  # no longer matches its sidecar
    with caplog.at_level(logging.WARNING):
        rebuilt = index_folder(tiny_folder)
    assert len(calls) == len(first) and rebuilt.files == first.files
    assert sum("folder index" in r.getMessage() for r in caplog.records) == 1


def test_a_file_changed_after_indexing_is_named(tiny_folder: Path) -> None:
    data = lazy_folder(tiny_folder, use_cache=False)
    victim = tiny_folder / data.index.files[int(data.gallery.positions[0])]
    victim.write_bytes(b"broken")
    with pytest.raises(ValueError, match=f"{victim.name} could not be decoded.*changed"):
        data.gallery[0]


def test_bad_folders_and_options_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        index_folder(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        index_folder(tmp_path / "flat")
    for c in ("a", "b"):
        (tmp_path / "junk" / c).mkdir(parents=True)
        (tmp_path / "junk" / c / "x.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="none of the 2 image files could be decoded"):
        index_folder(tmp_path / "junk", use_cache=False)
    cv2.imwrite(str(tmp_path / "junk" / "a" / "ok.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="single class"):
        index_folder(tmp_path / "junk", use_cache=False)
    root = _mixed_tree(tmp_path / "data")
    with pytest.raises(ValueError, match="workers must be an integer >= 0"):
        load(f"folder:{root}", decode="lazy", workers=-1)
    with pytest.raises(ValueError, match="decode must be one of eager, lazy"):
        load(f"folder:{root}", decode="later")
    with pytest.raises(ValueError, match="only with decode='lazy'"):
        load(f"folder:{root}", workers=2)


@pytest.mark.slow  # two tiny runs of the whole experiment
def test_the_experiment_gives_the_same_rows_with_lazy_decoding(tiny_folder: Path,
                                                               tmp_path: Path,
                                                               monkeypatch) -> None:
    import robustret.data.class_folders as loader
    from robustret.cli.experiment import main

    calls = []
    real = loader.lazy_folder
    monkeypatch.setattr(loader, "lazy_folder",
                        lambda *a, **k: calls.append(k) or real(*a, **k))

    def run(out: str, *extra: str) -> dict:
        assert main(["--dataset", f"folder:{tiny_folder}", "--out", str(tmp_path / out),
                     "--image-size", "16", "--retriever-epochs", "1", "--backbone", "resnet18",
                     "--restore", "none", "--metric", "l2", "--no-tensorboard", "-q",
                     "--cache-dir", str(tmp_path / "cache"), *extra]) == 0
        return json.loads((tmp_path / out / "results.json").read_text())

    eager = run("eager")
    assert calls == []
    lazy = run("lazy", "--decode", "lazy", "--workers", "2")
    assert [k["workers"] for k in calls] == [2]  # the lazy reader was used
    assert lazy["config"]["dataset_options"] == {"decode": "lazy", "workers": 2}
    assert lazy["resolved"]["data_key"] == eager["resolved"]["data_key"]  # the same tensors
    assert lazy["resolved"]["gallery_key"] == eager["resolved"]["gallery_key"]
    assert [r["value"] for r in lazy["rows"]] == [r["value"] for r in eager["rows"]]


@pytest.mark.slow  # imports torchvision and runs ResNet34 on 20 tiny images
def test_the_large_gallery_benchmark_runs_at_tiny_scale(tmp_path: Path, capsys) -> None:
    import importlib.util

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_large_gallery.py"
    spec = importlib.util.spec_from_file_location("bench_large_gallery", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    folder = tmp_path / "images"
    assert bench.main(["--n", "20", "--size", "16", "--classes", "2", "--workers", "0",
                       "--dir", str(folder)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 20 and result["embeddings_mb"] == round(20 * 512 * 4 / 2**20, 1)
    assert result["peak_rss_parent_mb"] > 0 and result["embed_img_s"] > 0
    assert len(list(folder.rglob("*.png"))) == 20  # --dir is kept; its images can be reused
