"""Degradation API edges: empty sizes, parameters bounded by the image, generators, seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import degradations
from degradations.resolution import haar_lowres, max_level
from robustret.core.rng import make_generator, sample_seed, stream_seed

NAMES = degradations.available()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(1, 1, 0, 8), (2, 1, 8, 0), (0, 3, 0, 0)])
def test_empty_sizes_name_the_shape(name: str, shape: tuple[int, ...]) -> None:
    images = torch.rand(shape)
    with pytest.raises(ValueError, match=r"H and W >= 1.*" + str(shape).replace("(", r"\(")
                       .replace(")", r"\)")):
        degradations.apply(images, name, 3, generator=make_generator(0))
    with pytest.raises(ValueError, match="H and W >= 1"):
        degradations.apply_indexed(images, name, 3, seed=0, indices=list(range(shape[0])))


@pytest.mark.parametrize("name", NAMES)
def test_an_empty_batch_is_fine(name: str) -> None:
    images = torch.rand(0, 1, 16, 16)
    assert degradations.apply(images, name, 3, generator=make_generator(0)).shape == images.shape


@pytest.mark.parametrize("levels", [5, 20])
def test_lowres_levels_are_bounded_by_the_image(levels: int) -> None:
    images = torch.rand(2, 1, 16, 16)
    with pytest.raises(ValueError, match=r"levels must be at most.* = 4 for 16x16 images"):
        degradations.apply(images, "lowres", 3, levels=levels, generator=make_generator(0))
    with pytest.raises(ValueError, match=r"level must be at most.* = 4 for 16x16"):
        haar_lowres(images, levels)


def test_lowres_at_the_bound_runs_and_recorded_params_are_checked() -> None:
    images = torch.rand(2, 1, 16, 12)
    assert max_level(16, 12) == 3
    out = degradations.apply(images, "lowres", 3, levels=3, generator=make_generator(0))
    assert out.shape == images.shape
    module = degradations.build_module("lowres", 3)
    with pytest.raises(ValueError, match="level must be at most"):
        module.apply_params(images, {"level": torch.tensor([1, 9])})


def test_lowres_needs_room_for_the_highest_drawn_level() -> None:
    # severity 3 draws 1 or 2 levels, so 4 px images are the smallest it accepts
    degradations.apply(torch.rand(1, 1, 4, 4), "lowres", 3, generator=make_generator(0))
    with pytest.raises(ValueError, match="levels must be at most"):
        degradations.apply(torch.rand(1, 1, 3, 3), "lowres", 3, generator=make_generator(0))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("generator", [0, "seed", np.random.default_rng(0)])
def test_a_wrong_generator_is_a_type_error_naming_it(name: str, generator: object) -> None:
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        degradations.apply(torch.rand(1, 1, 8, 8), name, 3, generator=generator)


@pytest.mark.parametrize("name", NAMES)
def test_negative_seeds_name_seed(name: str) -> None:
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        degradations.apply_indexed(torch.rand(1, 1, 8, 8), name, 3, seed=-1, indices=[0])
    with pytest.raises(ValueError, match="index must be a non-negative integer"):
        degradations.apply_indexed(torch.rand(1, 1, 8, 8), name, 3, seed=0, indices=[-1])
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):  # no images
        degradations.apply_indexed(torch.rand(0, 1, 8, 8), name, 3, seed=-1, indices=[])


@pytest.mark.parametrize("call", [
    lambda: make_generator(-1),
    lambda: sample_seed(-1),
    lambda: sample_seed(-1, 3),
    lambda: stream_seed(-1, "degrade"),
])
def test_rng_rejects_negative_seeds(call) -> None:
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        call()


@pytest.mark.parametrize("seed", [1.5, "3", True, None])
def test_rng_rejects_seeds_that_are_not_integers(seed: object) -> None:
    with pytest.raises(TypeError, match="seed must be a non-negative integer"):
        make_generator(seed)  # type: ignore[arg-type]


def test_rng_accepts_numpy_integers_and_keeps_its_values() -> None:
    assert sample_seed(np.int64(7), 2) == sample_seed(7, 2)
    assert torch.equal(torch.rand(3, generator=make_generator(np.uint32(5))),
                       torch.rand(3, generator=make_generator(5)))
    with pytest.raises(ValueError, match="index must be"):
        sample_seed(0, -2)
