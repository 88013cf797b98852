"""The bottom layer: contracts, registry, seeds, atomic writes, device resolution."""

from __future__ import annotations

import json

import pytest
import torch

from robustret.checks import check_choice, check_embeddings, check_images, check_labels
from robustret.device import resolve_device
from robustret.io import atomic_save, atomic_write_json, load_checkpoint
from robustret.registry import Registry
from robustret.rng import draw_seed, make_generator, sample_seed


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
