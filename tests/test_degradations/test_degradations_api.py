"""Contract tests run for every registered degradation, plus the public API around them."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import pytest
import torch
from degradation_contract import (
    check_bad_arguments_raise,
    check_bad_value_beyond_the_first_chunk,
    check_minmax_spans_unit_range,
    check_params_replay,
    check_per_index_seeding,
    check_rgb_float64_and_odd_sizes,
    check_seeds,
    check_severity_orders_damage,
    check_shape_dtype_device_range,
    contract_batch,
    texture,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import degradations
from robustret.core.rng import make_generator

#: every registered name, read at collection: a newly registered class is a case of every test
NAMES = degradations.available()
#: the degradations of the study, which must always be there
BUILT_IN = {
    "gaussian_noise": "noise", "salt_pepper": "noise", "speckle": "noise", "noise": "noise",
    "motion_blur": "blur", "lowres": "resolution",
}
#: each built-in module's public function: called with the module's parameters it accepts and
#: the drawn parameters, it must give the module's bytes
PUBLIC_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "gaussian_noise": degradations.gaussian_noise,
    "salt_pepper": degradations.salt_pepper_noise,
    "speckle": degradations.speckle_noise,
    "noise": degradations.noise_mixture,
    "lowres": degradations.haar_lowres,
    "motion_blur": degradations.motion_blur,
}


#: the images every contract check runs on, (channels, side): gray and RGB at 32 and 96 px
IMAGE_KINDS = [(1, 32), (3, 32), (1, 96), (3, 96)]


@pytest.fixture(params=IMAGE_KINDS, ids=[f"{'gray' if c == 1 else 'rgb'}{side}"
                                         for c, side in IMAGE_KINDS])
def kind_images(request: pytest.FixtureRequest) -> torch.Tensor:
    """(4, C, side, side) float32 in [0, 1] of each of :data:`IMAGE_KINDS`."""
    channels, side = request.param
    return contract_batch(channels, side)


def test_the_six_built_ins_are_registered_with_their_family() -> None:
    assert set(BUILT_IN) <= set(NAMES)
    assert {name: degradations.family(name) for name in BUILT_IN} == BUILT_IN
    assert degradations.available() == degradations.DEGRADATIONS.names() == sorted(NAMES)
    assert set(PUBLIC_FUNCTIONS) == set(BUILT_IN)
    for name in BUILT_IN:
        assert "range_mode" in degradations.DEGRADATIONS.get(name).param_names()
    module = degradations.DEGRADATIONS.build("lowres", levels=2)
    assert isinstance(module, degradations.Degradation)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_shape_dtype_device_range(
    name: str, severity: int, kind_images: torch.Tensor, device: torch.device,
) -> None:
    check_shape_dtype_device_range(name, kind_images, device, severity)


@pytest.mark.parametrize("name", NAMES)
def test_rgb_float64_and_odd_sizes(name: str) -> None:
    check_rgb_float64_and_odd_sizes(name)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_bytes_other_seed_differs(name: str, kind_images: torch.Tensor) -> None:
    check_seeds(name, kind_images)


@pytest.mark.parametrize("name", NAMES)
def test_per_index_seeding(name: str, kind_images: torch.Tensor) -> None:
    check_per_index_seeding(name, kind_images)


@pytest.mark.parametrize("name", NAMES)
def test_psnr_strictly_decreasing(name: str) -> None:
    check_severity_orders_damage(name)


@pytest.mark.parametrize("name", NAMES)
def test_drawn_params_come_back_and_replay(name: str, kind_images: torch.Tensor) -> None:
    check_params_replay(name, kind_images)


@pytest.mark.parametrize("name", NAMES)
def test_drawn_params_names_what_return_params_hands_back(
        name: str, kind_images: torch.Tensor) -> None:
    """degradations.drawn_params, which restorer policies read, without degrading anything."""
    _, params = degradations.apply(kind_images, name, 2, generator=make_generator(4),
                                   return_params=True)
    assert degradations.drawn_params(name) == tuple(sorted(params))


@pytest.mark.parametrize("name", NAMES)
def test_bad_arguments_raise(name: str) -> None:
    check_bad_arguments_raise(name)


@pytest.mark.parametrize("name", NAMES)
def test_bad_value_beyond_the_first_chunk_is_caught(name: str) -> None:
    check_bad_value_beyond_the_first_chunk(name)


@pytest.mark.parametrize(
    "name", [n for n in NAMES if "range_mode" in degradations.DEGRADATIONS.get(n).param_names()]
)
def test_minmax_spans_unit_range(name: str, images: torch.Tensor) -> None:
    check_minmax_spans_unit_range(name, images)


def _call_public_function(
    function: Callable[..., torch.Tensor], module: degradations.Degradation,
    images: torch.Tensor, params: dict[str, torch.Tensor], generator: torch.Generator,
) -> torch.Tensor:
    accepted = set(inspect.signature(function).parameters) - {"images"}
    kwargs = {n: getattr(module, n) for n in module.param_names() if n in accepted}
    kwargs.update(params)
    if "generator" in accepted:
        kwargs["generator"] = generator
    return function(images, **kwargs)


@pytest.mark.parametrize("name", sorted(PUBLIC_FUNCTIONS))
@pytest.mark.parametrize("severity", [1, 4])
def test_module_equals_its_public_function(
    name: str, severity: int, images: torch.Tensor,
) -> None:
    function = PUBLIC_FUNCTIONS[name]
    module = degradations.build_module(name, severity, range_mode="minmax")
    accepted = set(inspect.signature(function).parameters) - {"images", "generator"}
    generator = make_generator(2)
    params = module.sample_params(len(images), generator, size=tuple(images.shape[-2:]))
    # every argument of the function is a parameter of the module or a drawn parameter
    assert accepted <= set(module.param_names()) | set(params), accepted
    assert set(params) <= accepted
    expected = module(images, make_generator(2))
    got = _call_public_function(function, module, images, params, generator)
    assert torch.equal(got, expected)
    other = _call_public_function(function, module, images, params, make_generator(3))
    assert torch.equal(other, expected) == (module.words_per_image(images[0].numel()) == 0)


def test_plain_noise_functions_take_the_module_parameters() -> None:
    for name in ("gaussian_noise", "salt_pepper", "speckle"):
        accepted = set(inspect.signature(PUBLIC_FUNCTIONS[name]).parameters)
        cls = degradations.DEGRADATIONS.get(name)
        assert accepted - {"images", "generator"} == set(cls.param_names())


def test_noise_mixture_function_checks_kind(images: torch.Tensor) -> None:
    out = degradations.noise_mixture(images, 0, generator=make_generator(1))
    same = degradations.gaussian_noise(images, generator=make_generator(1))
    assert torch.equal(out, same)  # the Gaussian kind reads the same words
    with pytest.raises(ValueError, match="kind must be 0, 1 or 2"):
        degradations.noise_mixture(images, 3)


def test_overrides_and_unknown_override(images: torch.Tensor) -> None:
    _, params = degradations.apply(images, "lowres", levels=2, return_params=True,
                                   generator=make_generator(0))
    assert params["level"].tolist() == [2, 2, 2, 2]
    _, params = degradations.apply(images, "motion_blur", length=7, angle=30,
                                   return_params=True)
    expected = torch.tensor(7 * np.cos(np.pi / 6) / 32, dtype=torch.float32)
    assert torch.allclose(params["a"], expected)
    with pytest.raises(ValueError, match="valid: levels, range_mode, upsample"):
        degradations.apply(images, "lowres", factor=4)


def test_minmax_of_a_constant_image_is_finite() -> None:
    const = torch.full((2, 1, 16, 16), 0.5)
    out = degradations.apply(const, "motion_blur", length=0.0, range_mode="minmax")
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "blurr"}, "available: " + ", ".join(NAMES)),
        ({"range_mode": "stretch"}, "clip, minmax"),
        ({"name": "gaussian_noise", "sigma": -1.0}, "sigma"),
        ({"name": "salt_pepper", "p": 1.5}, "p must"),
        ({"name": "lowres", "upsample": "lanczos"}, "nearest"),
        ({"name": "motion_blur", "method": "dft"}, "rfft"),
    ],
)
def test_bad_names_and_values_raise_value_error(kwargs: dict, match: str) -> None:
    call = {"images": torch.rand(2, 1, 8, 8), "name": "speckle", "severity": 3}
    call.update(kwargs)
    with pytest.raises(ValueError, match=match):
        degradations.apply(call.pop("images"), call.pop("name"), call.pop("severity"), **call)


def test_unknown_name_is_a_config_error_everywhere() -> None:
    from robustret.core.checks import ConfigError

    for call in (degradations.family, degradations.severity_params, degradations.build_module):
        with pytest.raises(ConfigError, match="unknown degradation 'frost'; available: "):
            call("frost")


def test_severity_params_table() -> None:
    assert degradations.severity_params("gaussian_noise", 3) == {"sigma": 0.1}
    assert degradations.severity_params("salt_pepper", 3) == {"p": 0.1}
    assert degradations.severity_params("speckle", 3) == {"amplitude": 0.1}
    assert degradations.severity_params("lowres", 3) == {"levels": 1.5}
    assert degradations.severity_params("motion_blur", 3) == {"sigma": 0.05, "t": 1.0}
    assert degradations.severity_params("noise", 3) == {"sigma": 0.1, "p": 0.1, "amplitude": 0.1}
    assert degradations.severity_params("lowres", 5) == {"levels": 3.0}
    assert [degradations.severity_params("speckle", s)["amplitude"] for s in range(1, 6)] == [
        0.05, 0.075, 0.10, 0.25, 0.45]


def test_severities_view_follows_the_classes() -> None:
    table = degradations.SEVERITIES
    assert sorted(table) == NAMES and len(table) == len(NAMES)
    assert table["motion_blur"] == degradations.MotionBlur.severities
    table["speckle"][2]["amplitude"] = 9.0  # a copy: the class keeps its table
    assert degradations.severity_params("speckle", 3) == {"amplitude": 0.1}
    with pytest.raises(TypeError, match="set the class attribute severities"):
        table["frost"] = ()  # type: ignore[index]


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
    ones = degradations.from_uint8(torch.full((2,), 255, dtype=torch.uint8))
    assert ones.tolist() == [1.0, 1.0]


@settings(max_examples=20, deadline=None)
@given(
    name=st.sampled_from(NAMES), severity=st.integers(1, 5), seed=st.integers(0, 2**31),
    h=st.integers(8, 20), w=st.integers(8, 20), c=st.sampled_from([1, 3]),
)
def test_property_range_and_determinism(
    name: str, severity: int, seed: int, h: int, w: int, c: int,
) -> None:
    x = torch.rand(2, c, h, w, generator=make_generator(seed))
    a = degradations.apply(x, name, severity, generator=make_generator(seed))
    b = degradations.apply(x, name, severity, generator=make_generator(seed))
    assert torch.equal(a, b) and a.shape == x.shape
    assert float(a.min()) >= 0 and float(a.max()) <= 1


@pytest.mark.parametrize("side", [4, 7])
def test_lowres_refuses_images_too_small_for_its_levels(side: int) -> None:
    """Severity 5 (3 Haar levels) needs 8 px per side; smaller images get a clear error
    (the property test above therefore draws sides of at least 8)."""
    x = torch.rand(1, 1, side, side)
    with pytest.raises(ValueError, match=r"levels must be at most log2\(min\(H, W\)\)"):
        degradations.apply(x, "lowres", 5)
    assert degradations.apply(x, "lowres", 4).shape == x.shape  # 2 levels fit from 4 px
