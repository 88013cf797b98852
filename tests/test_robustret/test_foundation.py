"""The bottom layer: contracts, registry, seeds, atomic writes, device resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from robustret.core import keys
from robustret.core.batching import map_batches
from robustret.core.checks import check_choice, check_embeddings, check_images, check_labels
from robustret.core.device import resolve_device
from robustret.core.io import atomic_save, atomic_write_json, load_checkpoint
from robustret.core.registry import Registry
from robustret.core.rng import draw_seed, make_generator, sample_seed, stream_seed


def test_check_images_accepts_valid_batch(images: torch.Tensor) -> None:
    assert check_images(images) is images


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.rand(8, 8), "single image"),
        (torch.rand(1, 2, 8, 8), "channels"),
        (torch.zeros(1, 1, 8, 8, dtype=torch.uint8), "floating"),
        (torch.full((1, 1, 4, 4), float("nan")), "NaN"),
        (torch.full((1, 1, 4, 4), 255.0), "1/255"),
    ],
)
def test_check_images_rejects_with_useful_message(bad: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_images(bad, "queries")


def test_check_images_rejects_non_tensor() -> None:
    with pytest.raises(TypeError, match="torch.Tensor"):
        check_images([[0.0]])


def test_check_embeddings_and_labels() -> None:
    check_embeddings(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        check_embeddings(torch.zeros(3))
    check_labels(torch.tensor([0, 1, 2]), length=3)
    with pytest.raises(ValueError, match="integer"):
        check_labels(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="2 were expected"):
        check_labels(torch.tensor([0, 1, 2]), length=2)


def test_check_choice_returns_valid_and_lists_choices() -> None:
    assert check_choice("b", ("a", "b"), "mode") == "b"
    with pytest.raises(ValueError, match=r"mode must be one of a, b; got 'c'"):
        check_choice("c", ("a", "b"), "mode")


def test_registry_lists_names_and_rejects_unknown_and_duplicates() -> None:
    registry: Registry[int] = Registry("widget")
    registry.register("b")(lambda scale=1: 2 * scale)
    registry.register("a")(lambda: 1)
    assert registry.names() == ["a", "b"]
    assert registry.build("b", scale=3) == 6
    with pytest.raises(KeyError, match="unknown widget 'c'; available: a, b"):
        registry.get("c")
    with pytest.raises(KeyError, match="already registered"):
        registry.register("a")(lambda: 0)


def test_sample_seed_depends_only_on_arguments() -> None:
    assert sample_seed(0, 5) == sample_seed(0, 5)
    assert sample_seed(0, 5) != sample_seed(0, 6)
    assert sample_seed(0, 5) != sample_seed(1, 5)
    assert 0 <= sample_seed(3, 1, 2) < 2**63


def test_stream_seed_separates_named_streams() -> None:
    assert stream_seed(0, "data/split", 3) == stream_seed(0, "data/split", 3)
    names = ["data/split", "data/split/instance", "retriever/init", "retriever/epoch", "degrade"]
    assert len({stream_seed(0, name, 1) for name in names}) == len(names)
    assert stream_seed(0, "retriever/epoch", 1) != stream_seed(0, "retriever/epoch", 2)
    assert stream_seed(0, "retriever/epoch", 1, 2) != stream_seed(0, "retriever/epoch", 2, 1)
    assert stream_seed(0, "retriever/epoch", 1) != stream_seed(0, "retriever/epoch", 1, 0)
    assert stream_seed(0, "degrade", 4) != stream_seed(1, "degrade", 4)
    assert stream_seed(0, "degrade", 4) != sample_seed(0, 4)  # not a bare-integer stream
    assert 0 <= stream_seed(5, "x") < 2**63
    with pytest.raises(ValueError, match="non-empty string"):
        stream_seed(0, "")


def test_fingerprint_is_stable_and_order_free() -> None:
    key = keys.fingerprint("run", {"b": 1, "a": [1, 2]}, Path("x/y"))
    assert key == keys.fingerprint("run", {"a": [1, 2], "b": 1}, Path("x/y"))
    assert len(key) == 16 and int(key, 16) >= 0
    assert key != keys.fingerprint("run", {"b": 2, "a": [1, 2]}, Path("x/y"))
    assert keys.fingerprint(1, 2) != keys.fingerprint(12)


def _package(root: Path, name: str, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _fresh_source_hash(*modules: str) -> str:
    keys.clear_source_cache()  # the hash is read once per process; a test edits files
    return keys.source_hash(*modules)


def test_source_hash_changes_with_the_code(tmp_path, monkeypatch) -> None:
    _package(tmp_path, "tinypkg_a", {"__init__.py": "from .Sub import mod\nX = 1\n",
                                     "Sub/mod.py": "Y = 2\n", "Sub/other.py": "Z = 4\n"})
    _package(tmp_path, "tinypkg_b", {"__init__.py": "Z = 3\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    first = _fresh_source_hash("tinypkg_a")
    assert first == _fresh_source_hash("tinypkg_a") and len(first) == 16
    assert _fresh_source_hash("tinypkg_a", "tinypkg_b") == _fresh_source_hash(
        "tinypkg_b", "tinypkg_a"
    )
    assert _fresh_source_hash("tinypkg_a", "tinypkg_b") != first
    (tmp_path / "tinypkg_a" / "Sub" / "mod.py").write_text("Y = 3\n")  # imported: counts
    edited = _fresh_source_hash("tinypkg_a")
    assert edited != first
    (tmp_path / "tinypkg_a" / "Sub" / "other.py").write_text("Z = 5\n")  # not imported
    assert _fresh_source_hash("tinypkg_a") == edited
    assert _fresh_source_hash("tinypkg_a.Sub.mod") != _fresh_source_hash("tinypkg_a")
    with pytest.raises(ValueError, match="no such module"):
        keys.source_hash("tinypkg_missing")
    keys.clear_source_cache()


def test_map_batches_batching_changes_nothing() -> None:
    images = torch.rand(7, 1, 4, 4, generator=make_generator(0))
    shift = torch.arange(7, dtype=torch.float32)

    def fn(batch: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        return batch * 2 + shift[:, None, None, None]

    expected = fn(images, shift)
    for batch_size in (1, 3, 7, 100):
        out = map_batches(fn, images, batch_size=batch_size, per_item={"shift": shift})
        assert torch.equal(out, expected) and out.device.type == "cpu"
    empty = map_batches(fn, images[:0], per_item={"shift": shift[:0]})
    assert empty.shape == (0, 1, 4, 4)
    with pytest.raises(ValueError, match="batch_size"):
        map_batches(fn, images, batch_size=0)
    with pytest.raises(ValueError, match=r"per_item\['shift'\] has 3 entries for 7 images"):
        map_batches(fn, images, per_item={"shift": shift[:3]})


def test_draw_seed_is_reproducible() -> None:
    assert draw_seed(make_generator(7)) == draw_seed(make_generator(7))
    assert draw_seed(make_generator(7)) != draw_seed(make_generator(8))


def test_atomic_json_and_checkpoint_roundtrip(tmp_path) -> None:
    path = atomic_write_json(tmp_path / "sub" / "a.json", {"x": 1, "p": tmp_path})
    assert json.loads(path.read_text())["x"] == 1
    atomic_save({"w": torch.arange(3)}, tmp_path / "c.pt")
    assert torch.equal(load_checkpoint(tmp_path / "c.pt")["w"], torch.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "sub"]  # no temporaries left


def test_load_checkpoint_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt.pt"):
        load_checkpoint(corrupt)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_a_closed_vocabulary_names_its_entries_when_asked_for_another() -> None:
    from robustret.core.checks import table_entry

    table = {"l2": 1, "cosine": 2}
    assert table_entry(table, "cosine", "metric") == 2
    with pytest.raises(ValueError, match=r"unknown metric 'hamming'; choose from l2, cosine"):
        table_entry(table, "hamming", "metric")
    with pytest.raises(ValueError, match=r"unknown metric \['l2'\]"):  # unhashable
        table_entry(table, ["l2"], "metric")
