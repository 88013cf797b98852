"""The input contract of every registered restorer (restorers added later are covered too)."""

from __future__ import annotations

import pytest
import torch

import restoration
from restoration.classical import bicubic_reupsample, median_filter, wiener_deconvolve

NAMES = restoration.available()
NETWORKS = restoration.networks()
PARAM_READERS = [name for name in NAMES if restoration.RESTORERS.get(name).uses_params]


def _images(shape: tuple[int, ...] = (2, 1, 16, 16), dtype: torch.dtype = torch.float32):
    generator = torch.Generator().manual_seed(0)
    return torch.rand(shape, generator=generator).to(dtype)


def _params(batch: int) -> dict[str, torch.Tensor]:
    """What the degradations draw (blur a, b; lowres level; noise kind; the wild set's member,
    here 0: Gaussian noise), for any restorer."""
    return {"a": torch.full((batch,), 0.05), "b": torch.zeros(batch),
            "level": torch.ones(batch, dtype=torch.long), "kind": torch.zeros(batch),
            "member": torch.zeros(batch, dtype=torch.long)}


@pytest.fixture(params=NAMES)
def restorer(request: pytest.FixtureRequest) -> restoration.Restorer:
    return restoration.build(request.param)


def test_nan_is_a_value_error(restorer: restoration.Restorer) -> None:
    x = _images()
    x[0, 0, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        restorer(x, _params(2))


@pytest.mark.parametrize("value", [1.5, -0.25])
def test_out_of_range_is_a_value_error(restorer: restoration.Restorer, value: float) -> None:
    x = _images()
    x[1, 0, 0, 0] = value
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        restorer(x, _params(2))


@pytest.mark.parametrize("shape, match", [((2, 2, 16, 16), "channels"),
                                          ((1, 16, 16), "shape"),
                                          ((2, 1, 0, 16), "shape")])
def test_bad_shape_is_a_value_error(restorer: restoration.Restorer, shape: tuple[int, ...],
                                    match: str) -> None:
    with pytest.raises(ValueError, match=match):
        restorer(torch.rand(shape), _params(shape[0]))


def test_uint8_is_a_value_error(restorer: restoration.Restorer) -> None:
    x = (_images() * 255).to(torch.uint8)
    with pytest.raises(ValueError, match="uint8"):
        restorer(x, _params(2))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtype_and_shape_are_kept(restorer: restoration.Restorer, dtype: torch.dtype) -> None:
    x = _images((2, 1, 16, 12), dtype)
    out = restorer(x, _params(2)).detach()
    assert out.dtype == dtype
    assert out.shape == x.shape
    assert bool(torch.isfinite(out).all())
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_low_precision_matches_float32(restorer: restoration.Restorer) -> None:
    # inside (0, 1): float16 rounds values within 2**-12 of 1 to exactly 1, which an impulse
    # detector (switching_median) rightly reads as salt; this test is about the arithmetic
    x = 0.01 + 0.98 * _images()
    full = restorer(x, _params(2))
    half = restorer(x.to(torch.float16), _params(2)).float()
    assert (half - full).abs().max() < 0.05


def test_empty_batch_keeps_its_shape(restorer: restoration.Restorer) -> None:
    x = torch.zeros(0, 1, 16, 16)
    out = restorer(x, _params(0))
    assert out.shape == x.shape and out.dtype == x.dtype


@pytest.mark.parametrize("name", PARAM_READERS)
def test_nan_params_are_a_value_error(name: str) -> None:
    restorer = restoration.build(name)
    params = _params(2)
    for name in restorer.uses_params:
        params[name] = torch.tensor([0.05, float("nan")])
    with pytest.raises(ValueError, match="NaN"):
        restorer(_images(), params)


@pytest.mark.parametrize("name", PARAM_READERS)
def test_params_of_the_wrong_shape_are_a_value_error(name: str) -> None:
    restorer = restoration.build(name)
    params = {name: torch.zeros(3) for name in restorer.uses_params}
    with pytest.raises(ValueError, match=r"\(2,\)"):
        restorer(_images(), params)


@pytest.mark.parametrize("name", PARAM_READERS)
def test_params_of_the_wrong_type_are_a_type_error(name: str) -> None:
    restorer = restoration.build(name)
    params = {name: "0.1" for name in restorer.uses_params}
    with pytest.raises(TypeError, match="params"):
        restorer(_images(), params)


def test_too_small_for_min_size_is_a_value_error(restorer: restoration.Restorer) -> None:
    restorer.min_size = 8  # instance override of the class attribute
    with pytest.raises(ValueError, match="at least 8 px"):
        restorer(_images((1, 1, 8, 7)))


@pytest.mark.parametrize("name", NETWORKS)
def test_network_names_both_channel_counts(name: str) -> None:
    model = restoration.build(name, channels=1)
    with pytest.raises(ValueError, match=r"1-channel.*3 channels"):
        model(_images((1, 3, 16, 16)))


@pytest.mark.parametrize("name", NETWORKS)
def test_network_cast_to_float64_computes_in_float64(name: str) -> None:
    model = restoration.build(name).double()
    out = model(_images(dtype=torch.float32))
    assert out.dtype == torch.float32
    assert model.compute_dtype() == torch.float64


@pytest.mark.parametrize("fn, args", [
    (median_filter, ()),
    (bicubic_reupsample, (2,)),
    (wiener_deconvolve, (torch.ones(1, 1, 8, 8, dtype=torch.complex64),)),
])
def test_classical_functions_check_images(fn, args: tuple) -> None:
    with pytest.raises(ValueError, match="channels"):
        fn(torch.rand(1, 2, 8, 8), *args)
    with pytest.raises(ValueError, match="uint8"):
        fn(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), *args)
