"""Contract tests shared by every degradation: shapes, seeds, per-index seeding, validation."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import degradations
from robustret.rng import make_generator, sample_seed

NAMES = ["gaussian_noise", "lowres", "motion_blur", "noise", "salt_pepper", "speckle"]


def texture(batch: int = 4, size: int = 32) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    base = 0.5 + 0.25 * torch.sin(xx * 0.9) * torch.cos(yy * 0.7) + 0.15 * ((xx // 4 + yy // 4) % 2)
    return base.clamp(0.05, 0.95).float().expand(batch, 1, size, size).clone()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (a - b).pow(2).mean()))


def test_available_and_registry() -> None:
    assert degradations.available() == NAMES
    assert degradations.DEGRADATIONS.names() == NAMES
    module = degradations.DEGRADATIONS.build("lowres", levels=2)
    assert isinstance(module, torch.nn.Module)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_shape_dtype_device_range(name: str, severity: int, images: torch.Tensor, device: torch.device) -> None:
    x = images.to(device)
    out = degradations.apply(x, name, severity, generator=make_generator(0))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert float(out.min()) >= 0 and float(out.max()) <= 1


@pytest.mark.parametrize("name", NAMES)
def test_rgb_float64_and_odd_sizes(name: str) -> None:
    x = torch.rand(2, 3, 17, 23, dtype=torch.float64, generator=make_generator(1))
    out = degradations.apply(x, name, generator=make_generator(0))
    assert out.shape == x.shape and out.dtype == torch.float64
    assert float(out.min()) >= 0 and float(out.max()) <= 1


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_bytes_other_seed_differs(name: str, images: torch.Tensor) -> None:
    a = degradations.apply(images, name, generator=make_generator(5))
    b = degradations.apply(images, name, generator=make_generator(5))
    c = degradations.apply(images, name, 5, generator=make_generator(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", NAMES)
def test_per_index_seeding(name: str, images: torch.Tensor) -> None:
    indices = [7, 3, 11, 0]
    batch = degradations.apply_indexed(images, name, seed=9, indices=indices)
    singles = torch.cat([
        degradations.apply_indexed(images[i : i + 1], name, seed=9, indices=[indices[i]]) for i in range(4)
    ])
    torch.testing.assert_close(batch, singles, atol=1e-6, rtol=0)
    for i in range(4):  # the documented definition
        one = degradations.apply(images[i : i + 1], name, generator=make_generator(sample_seed(9, indices[i])))
        torch.testing.assert_close(batch[i : i + 1], one, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_psnr_strictly_decreasing(name: str) -> None:
    x = texture(16)
    values = [psnr(degradations.apply(x, name, s, generator=make_generator(3)), x) for s in range(1, 6)]
    assert all(a > b for a, b in zip(values, values[1:])), values


@pytest.mark.parametrize("name", NAMES)
def test_module_equals_functional_and_signature(name: str, images: torch.Tensor) -> None:
    module = degradations.build_module(name, 4)
    out_m, params_m = module(images, make_generator(2), return_params=True)
    out_f, params_f = degradations.apply(images, name, 4, generator=make_generator(2), return_params=True)
    assert torch.equal(out_m, out_f)
    assert params_m.keys() == params_f.keys()
    assert set(degradations.severity_params(name, 4)) <= set(module.param_names())
    replayed = module.apply_params(images, params_m, generator=make_generator(2))
    if not params_m:  # pure noise: apply_params draws the same words
        assert torch.equal(replayed, out_m)
    elif name in ("lowres", "motion_blur"):  # fully determined by the params
        assert torch.equal(replayed, out_m)


def test_functions_match_modules(images: torch.Tensor) -> None:
    pairs = [(degradations.gaussian_noise, "gaussian_noise", {"sigma": 0.2}),
             (degradations.salt_pepper_noise, "salt_pepper", {"p": 0.2}),
             (degradations.speckle_noise, "speckle", {"amplitude": 0.3})]
    for fn, name, kw in pairs:
        cls = degradations.DEGRADATIONS.get(name)
        fn_kw = set(inspect.signature(fn).parameters) - {"images", "generator"}
        assert fn_kw == set(cls.param_names())
        assert torch.equal(fn(images, **kw, generator=make_generator(1)),
                           degradations.DEGRADATIONS.build(name, **kw)(images, make_generator(1)))


def test_overrides_and_unknown_override(images: torch.Tensor) -> None:
    out, params = degradations.apply(images, "lowres", levels=2, return_params=True, generator=make_generator(0))
    assert params["level"].tolist() == [2, 2, 2, 2]
    _, params = degradations.apply(images, "motion_blur", length=7, angle=30, return_params=True)
    assert torch.allclose(params["a"], torch.tensor(7 * np.cos(np.pi / 6) / 32, dtype=torch.float32))
    with pytest.raises(ValueError, match="valid: levels, range_mode, upsample"):
        degradations.apply(images, "lowres", factor=4)


def test_minmax_spans_unit_range_and_constant_is_safe(images: torch.Tensor) -> None:
    for name in NAMES:
        out = degradations.apply(images, name, range_mode="minmax", generator=make_generator(0))
        flat = out.flatten(1)
        torch.testing.assert_close(flat.amin(1), torch.zeros(4))
        torch.testing.assert_close(flat.amax(1), torch.ones(4))
    const = torch.full((2, 1, 16, 16), 0.5)
    out = degradations.apply(const, "motion_blur", length=0.0, range_mode="minmax")
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"images": torch.rand(32, 32)}, "For a single image"),
        ({"images": torch.zeros(1, 1, 8, 8, dtype=torch.uint8)}, "floating"),
        ({"images": torch.full((1, 1, 8, 8), float("nan"))}, "NaN"),
        ({"images": torch.rand(1, 2, 8, 8)}, "C in"),
        ({"name": "blurr"}, "available: gaussian_noise, lowres, motion_blur, noise, salt_pepper, speckle"),
        ({"severity": 0}, "1..5"),
        ({"severity": 6}, "1..5"),
        ({"severity": 2.0}, "1..5"),
        ({"range_mode": "stretch"}, "clip, minmax"),
        ({"name": "gaussian_noise", "sigma": -1.0}, "sigma"),
        ({"name": "salt_pepper", "p": 1.5}, "p must"),
        ({"name": "lowres", "upsample": "lanczos"}, "nearest"),
    ],
)
def test_bad_inputs_raise_value_error(kwargs: dict, match: str) -> None:
    call = {"images": torch.rand(2, 1, 8, 8), "name": "speckle", "severity": 3}
    call.update(kwargs)
    with pytest.raises(ValueError, match=match):
        degradations.apply(call.pop("images"), call.pop("name"), call.pop("severity"), **call)


def test_severity_params_table() -> None:
    assert degradations.severity_params("gaussian_noise", 3) == {"sigma": 0.1}
    assert degradations.severity_params("salt_pepper", 3) == {"p": 0.1}
    assert degradations.severity_params("speckle", 3) == {"amplitude": 0.1}
    assert degradations.severity_params("lowres", 3) == {"levels": 1.5}
    assert degradations.severity_params("motion_blur", 3) == {"sigma": 0.05, "t": 1.0}
    assert degradations.severity_params("noise", 3) == {"sigma": 0.1, "p": 0.1, "amplitude": 0.1}


def test_degrade_transform_and_numpy_bridge() -> None:
    x = texture(1)[0]  # (1, 32, 32)
    t1, t2 = degradations.Degrade("noise", 3, seed=4), degradations.Degrade("noise", 3, seed=4)
    assert torch.equal(t1(x), t2(x)) and t1(x).shape == x.shape
    img = (np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)
    out = degradations.apply_numpy(img, "gaussian_noise", seed=1)
    assert out.dtype == np.uint8 and out.shape == img.shape
    gray = img[:, :, 0].astype(np.float32) / 255
    out = degradations.apply_numpy(gray, "lowres", levels=1)
    assert out.dtype == np.float32 and out.shape == gray.shape
    assert degradations.to_tensor(img).shape == (1, 3, 20, 24)
    assert degradations.from_uint8(torch.full((2,), 255, dtype=torch.uint8)).tolist() == [1.0, 1.0]


@settings(max_examples=20, deadline=None)
@given(
    name=st.sampled_from(NAMES), severity=st.integers(1, 5), seed=st.integers(0, 2**31),
    h=st.integers(4, 20), w=st.integers(4, 20), c=st.sampled_from([1, 3]),
)
def test_property_range_and_determinism(name: str, severity: int, seed: int, h: int, w: int, c: int) -> None:
    x = torch.rand(2, c, h, w, generator=make_generator(seed))
    a = degradations.apply(x, name, severity, generator=make_generator(seed))
    b = degradations.apply(x, name, severity, generator=make_generator(seed))
    assert torch.equal(a, b) and a.shape == x.shape
    assert float(a.min()) >= 0 and float(a.max()) <= 1


@pytest.mark.parametrize("name", degradations.available())
@pytest.mark.parametrize(("bad_value", "match"), [(1.5, r"\[0, 1\]"), (float("nan"), "NaN")])
def test_bad_value_beyond_the_first_chunk_is_caught(name: str, bad_value: float, match: str) -> None:
    # values are checked chunk by chunk (64 images of 96x96): the last chunk must be checked too
    images = torch.rand(66, 1, 96, 96, generator=make_generator(0))
    images[65, 0, 5, 7] = bad_value
    with pytest.raises(ValueError, match=match):
        degradations.apply(images, name, generator=make_generator(1))
    with pytest.raises(ValueError, match=match):
        degradations.apply_indexed(images, name, seed=0, indices=range(66))
