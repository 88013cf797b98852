"""The contract every registered degradation meets, as plain functions of its name.

``test_degradations_api.py`` runs each check for every name in ``degradations.available()``;
``test_adding_a_degradation.py`` runs :func:`check_contract` on a class registered in a test.
"""

from __future__ import annotations

import pytest
import torch

import degradations
from robustret.core.rng import make_generator, sample_seed

DEVICES = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


def texture(batch: int = 4, size: int = 32) -> torch.Tensor:
    """(batch, 1, size, size) float32 in [0.05, 0.95]: a sinusoid plus a 4-px checkerboard."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    wave = 0.25 * torch.sin(xx * 0.9) * torch.cos(yy * 0.7)
    base = 0.5 + wave + 0.15 * ((xx // 4 + yy // 4) % 2)
    return base.clamp(0.05, 0.95).float().expand(batch, 1, size, size).clone()


def color_texture(batch: int = 4, size: int = 32) -> torch.Tensor:
    """(batch, 3, size, size) in [0, 1]: :func:`texture` as the luminance, tinted by weak
    opposite ramps (HSV saturation below 1/2, as in most photographs)."""
    lum = texture(batch, size)
    ramp = 0.08 * (torch.arange(size, dtype=torch.float32) / max(1, size - 1) - 0.5)
    tint = ramp.view(1, 1, 1, size) + ramp.view(1, 1, size, 1)
    return torch.cat([lum + tint, lum, lum - tint], dim=1).clamp(0, 1)


def contract_batch(channels: int = 1, size: int = 32, batch: int = 4) -> torch.Tensor:
    """(batch, channels, size, size) float32 in [0, 1]: smooth gradients, a bright square and
    weak noise (the ``images`` fixture of tests/conftest.py at any size); RGB channels carry
    different gradients, so hue and saturation vary over the image."""
    generator = torch.Generator().manual_seed(1234)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size),
                            indexing="ij")
    planes = [0.25 + 0.5 * (0.6 * xx + 0.4 * yy), 0.25 + 0.5 * (0.3 * xx + 0.7 * yy),
              0.3 + 0.4 * (1 - xx)][:channels]
    images = torch.stack(planes).expand(batch, channels, size, size).clone()
    low, high = size // 4, (5 * size) // 8
    images[:, :, low:high, low + size // 16: high + size // 16] += 0.2
    images += 0.05 * torch.rand(images.shape, generator=generator)
    return images.clamp(0, 1)


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean())


def check_registered_with_their_family(families: dict[str, str]) -> None:
    """Each name of ``families`` is registered, of that family, with a ``range_mode``."""
    assert set(families) <= set(degradations.available())
    assert {name: degradations.family(name) for name in families} == families
    for name in families:
        assert "range_mode" in degradations.DEGRADATIONS.get(name).param_names()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (a - b).pow(2).mean()))


def check_shape_dtype_device_range(
    name: str, images: torch.Tensor, device: torch.device, severity: int,
) -> None:
    x = images.to(device)
    out = degradations.apply(x, name, severity, generator=make_generator(0))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    indexed = degradations.apply_indexed(x, name, severity, seed=0, indices=range(len(x)))
    assert indexed.shape == x.shape and indexed.dtype == x.dtype and indexed.device == x.device


def check_rgb_float64_and_odd_sizes(name: str) -> None:
    x = torch.rand(2, 3, 17, 23, dtype=torch.float64, generator=make_generator(1))
    out = degradations.apply(x, name, generator=make_generator(0))
    assert out.shape == x.shape and out.dtype == torch.float64
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def check_seeds(name: str, images: torch.Tensor) -> None:
    """Same seed, same bytes; another seed differs exactly when it draws something else.

    Something else: other parameters (blur a, b; lowres levels, which an integer ``levels``
    fixes) or pixel noise, which every seed changes.
    """
    for severity in degradations.SEVERITY_LEVELS:
        module = degradations.build_module(name, severity)
        pixel_noise = module.words_per_image(images[0].numel()) > 0
        a, pa = degradations.apply(images, name, severity, generator=make_generator(5),
                                   return_params=True)
        b, pb = degradations.apply(images, name, severity, generator=make_generator(5),
                                   return_params=True)
        c, pc = degradations.apply(images, name, severity, generator=make_generator(6),
                                   return_params=True)
        assert torch.equal(a, b) and pa.keys() == pb.keys() == pc.keys(), severity
        assert all(torch.equal(pa[key], pb[key]) for key in pa), severity
        other_draw = pixel_noise or not all(torch.equal(pa[key], pc[key]) for key in pa)
        assert torch.equal(a, c) != other_draw, severity


def check_per_index_seeding(name: str, images: torch.Tensor) -> None:
    indices = [7, 3, 11, 0]
    batch = degradations.apply_indexed(images, name, seed=9, indices=indices)
    singles = torch.cat([
        degradations.apply_indexed(images[i : i + 1], name, seed=9, indices=[indices[i]])
        for i in range(4)
    ])
    torch.testing.assert_close(batch, singles, atol=1e-6, rtol=0)
    for i in range(4):  # the documented definition
        generator = make_generator(sample_seed(9, indices[i]))
        one = degradations.apply(images[i : i + 1], name, generator=generator)
        torch.testing.assert_close(batch[i : i + 1], one, atol=1e-6, rtol=0)
    reordered = degradations.apply_indexed(images.flip(0), name, seed=9, indices=indices[::-1])
    torch.testing.assert_close(reordered.flip(0), batch, atol=1e-6, rtol=0)


def check_severity_orders_damage(name: str) -> None:
    """PSNR to the clean image falls strictly from severity 1 to 5 (fixed seed).

    On the gray :func:`texture`; a family declaring ``gray_is_identity`` (``saturate``) is
    checked to leave it unchanged at every level, and its order is checked on
    :func:`color_texture` instead.
    """
    x = texture(16)
    if degradations.DEGRADATIONS.get(name).gray_is_identity:
        for s in degradations.SEVERITY_LEVELS:
            assert torch.equal(degradations.apply(x, name, s, generator=make_generator(3)), x), s
        x = color_texture(16)
    values = [psnr(degradations.apply(x, name, s, generator=make_generator(3)), x)
              for s in degradations.SEVERITY_LEVELS]
    assert all(a > b for a, b in zip(values, values[1:])), values


def check_params_replay(name: str, images: torch.Tensor) -> None:
    """forward = sample_params then apply_params; drawn parameters come back and replay."""
    assert set(degradations.severity_params(name, 4)) <= set(
        degradations.DEGRADATIONS.get(name).param_names())
    module = degradations.build_module(name, 4)
    out, params = module(images, make_generator(2), return_params=True)
    generator = make_generator(2)
    drawn = module.sample_params(len(images), generator, size=tuple(images.shape[-2:]))
    assert drawn.keys() == params.keys()
    for key, value in params.items():
        assert value.shape == (len(images),) and torch.equal(drawn[key], value), key
    assert torch.equal(module.apply_params(images, drawn, generator=generator), out)
    if module.words_per_image(images[0].numel()) == 0:  # no pixel noise: params say it all
        assert torch.equal(module.apply_params(images, params), out)


def check_bad_arguments_raise(name: str) -> None:
    good = torch.rand(2, 1, 8, 8, generator=make_generator(0))
    bad_images = [
        (torch.rand(8, 8), "For a single image"),
        (torch.zeros(1, 1, 8, 8, dtype=torch.uint8), "floating"),
        (torch.full((1, 1, 8, 8), float("nan")), "NaN"),
        (torch.full((1, 1, 8, 8), 1.5), r"\[0, 1\]"),
        (torch.rand(1, 2, 8, 8), "C in"),
    ]
    for images, match in bad_images:
        with pytest.raises(ValueError, match=match):
            degradations.apply(images, name)
        with pytest.raises(ValueError, match=match):
            degradations.apply_indexed(images, name, seed=0, indices=range(len(images)))
    for severity in (0, 6, 2.0, True, "3"):
        with pytest.raises(ValueError, match="1..5"):
            degradations.apply(good, name, severity)
    valid = ", ".join(degradations.DEGRADATIONS.get(name).param_names())
    with pytest.raises(ValueError, match=f"valid: {valid}"):
        degradations.apply(good, name, no_such_parameter=1)
    with pytest.raises(ValueError, match="indices has 1 entries for 2 images"):
        degradations.apply_indexed(good, name, seed=0, indices=[0])


def check_bad_value_beyond_the_first_chunk(name: str) -> None:
    # values are checked chunk by chunk (64 images of 96x96): the last chunk is checked too
    for bad_value, match in ((1.5, r"\[0, 1\]"), (float("nan"), "NaN")):
        images = torch.rand(66, 1, 96, 96, generator=make_generator(0))
        images[65, 0, 5, 7] = bad_value
        with pytest.raises(ValueError, match=match):
            degradations.apply(images, name, generator=make_generator(1))
        with pytest.raises(ValueError, match=match):
            degradations.apply_indexed(images, name, seed=0, indices=range(66))


def check_minmax_spans_unit_range(name: str, images: torch.Tensor) -> None:
    out = degradations.apply(images, name, range_mode="minmax", generator=make_generator(0))
    flat = out.flatten(1)
    torch.testing.assert_close(flat.amin(1), torch.zeros(len(images)))
    torch.testing.assert_close(flat.amax(1), torch.ones(len(images)))


def check_contract(name: str, images: torch.Tensor) -> None:
    """Every check above, for one registered name (all severities, every device present)."""
    assert name in degradations.available()
    for device in DEVICES:
        for severity in degradations.SEVERITY_LEVELS:
            check_shape_dtype_device_range(name, images, device, severity)
    check_rgb_float64_and_odd_sizes(name)
    check_seeds(name, images)
    check_per_index_seeding(name, images)
    check_severity_orders_damage(name)
    check_params_replay(name, images)
    check_bad_arguments_raise(name)
    check_bad_value_beyond_the_first_chunk(name)
    if "range_mode" in degradations.DEGRADATIONS.get(name).param_names():
        check_minmax_spans_unit_range(name, images)
