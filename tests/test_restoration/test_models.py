"""Restorer networks and the registry: shapes, range, sizes, build/available, save/load."""

from __future__ import annotations

import pytest
import torch

import restoration
from restoration.dae import pad_to_multiple

TINY = {"dae": {"widths": (4, 4, 4, 4, 4)}, "srcnn": {"widths": (4, 4, 4, 4)}}
OTHER_OPTIONS = {
    "identity": {"channels": 3}, "dae": {"widths": (4, 4, 4, 4, 4), "skips": True},
    "srcnn": {"widths": (4, 4, 4, 4), "residual": True}, "median": {"size": 5},
    "nlm": {"h": 10.0}, "bilateral": {"diameter": 3}, "wiener": {"a": 0.05, "k": 0.02},
    "bicubic": {"factor": 4},
}
"""Non-default (tiny) options per restorer, so a round trip shows that options are kept."""


def _required(model: restoration.Restorer, batch: int) -> dict[str, torch.Tensor]:
    """Zeros for every parameter ``model`` cannot work without (oracle_route's ``member`` and
    ``kind``: 0, Gaussian noise)."""
    return {name: torch.zeros(batch, dtype=torch.long) for name in model.required_params()}


def test_available_lists_networks_baselines_and_identity() -> None:
    names = restoration.available()
    assert names == sorted(names)
    for name in ("identity", "dae", "srcnn", "median", "nlm", "bilateral", "wiener", "bicubic"):
        assert name in names


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(KeyError, match="unknown restorer 'daee'.*available: .*dae"):
        restoration.build("daee")


@pytest.mark.parametrize("name", restoration.available())
@pytest.mark.parametrize("channels", [1, 3])
def test_every_restorer_keeps_shape_dtype_and_range(name: str, channels: int) -> None:
    options = dict(TINY.get(name, {}))
    if restoration.RESTORERS.is_trainable(name) or name == "identity":
        options["channels"] = channels
    model = restoration.build(name, **options)
    x = torch.rand(2, channels, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # what a restorer cannot work without (oracle_route: the member)
        y = model(x, _required(model, 2))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


@pytest.mark.parametrize("size", [(32, 32), (30, 45), (7, 33), (64, 96)])
def test_dae_handles_any_size(size: tuple[int, int]) -> None:
    model = restoration.build("dae", **TINY["dae"])
    x = torch.rand(2, 1, *size)
    assert model(x).shape == x.shape


def test_pad_to_multiple_pads_evenly_and_reflects() -> None:
    x = torch.arange(30 * 45, dtype=torch.float32).view(1, 1, 30, 45)
    padded, (left, right, top, bottom) = pad_to_multiple(x, 32)
    assert padded.shape[-2:] == (32, 64)
    assert (left, right, top, bottom) == (9, 10, 1, 1)
    assert torch.equal(padded[..., top:top + 30, left:left + 45], x)
    assert torch.equal(padded[..., 0, left:left + 45], x[..., 1, :])  # reflect, not replicate


def test_dae_default_matches_study_structure() -> None:
    model = restoration.build("dae")
    convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    tconvs = [m for m in model.decoder if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(convs) == 5 and all(c.stride == (2, 2) and c.kernel_size == (3, 3) for c in convs)
    assert len(tconvs) == 5 and all(t.output_padding == (1, 1) for t in tconvs)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(0.79e6, rel=0.01)


@pytest.mark.parametrize("residual", [False, True])
def test_srcnn_keeps_size_and_layers(residual: bool) -> None:
    model = restoration.build("srcnn", **TINY["srcnn"], residual=residual)
    convs = [m for m in model.body if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size[0] for c in convs] == [5, 5, 5, 3, 3]
    x = torch.rand(3, 1, 33, 21)
    assert model(x).shape == x.shape


def test_identity_returns_input(images: torch.Tensor) -> None:
    assert torch.equal(restoration.build("identity")(images), images)


def test_raw_output_is_unclamped_for_training() -> None:
    model = restoration.build("srcnn", **TINY["srcnn"], residual=True)
    with torch.no_grad():
        model.body[-1].bias.fill_(2.0)
    x = torch.rand(1, 1, 16, 16)
    assert float(model.restore(x, clamp=False).detach().min()) > 1.0
    assert float(model(x).detach().max()) == 1.0


def test_networks_and_classical_come_from_the_trainable_attribute() -> None:
    assert {"dae", "srcnn"} <= set(restoration.networks())
    assert restoration.classical() == ["bicubic", "bilateral", "estimated", "kind_denoise",
                                       "median", "nlm", "oracle_route", "switching_median",
                                       "tv", "wiener"]
    for name in restoration.available():
        cls = restoration.RESTORERS.get(name)
        assert (name in restoration.networks()) == cls.trainable
    assert sorted([*restoration.networks(), *restoration.classical(), "identity"]) == \
        restoration.available()


@pytest.mark.parametrize("built_with", ["restoration.build", "RESTORERS.build"])
@pytest.mark.parametrize("name", restoration.available())
def test_save_load_round_trip(name: str, built_with: str, tmp_path, images: torch.Tensor) -> None:
    options = OTHER_OPTIONS.get(name, {})
    build = restoration.build if built_with == "restoration.build" else restoration.RESTORERS.build
    model = build(name, **options)
    assert not model.training and model.restorer_name == name
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = restoration.save(model, tmp_path / "m.pt", degradation="noise")
    loaded = restoration.load(path)
    assert type(loaded) is type(model) and loaded.restorer_name == name
    assert loaded.restorer_options == restoration.checkpoint_meta(model)["options"]
    assert loaded.checkpoint_info["degradation"] == "noise"
    x = images.expand(-1, 3, -1, -1) if options.get("channels") == 3 else images
    params = _required(model, len(x))
    with torch.no_grad():
        assert torch.equal(loaded(x, params), model(x, params))
        assert torch.equal(restoration.load(tmp_path / "m.pt")(x, params), loaded(x, params))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_a_directly_constructed_model_cannot_be_saved_silently(tmp_path) -> None:
    from restoration.dae import DenoisingAutoencoder

    with pytest.raises(ValueError, match=r"build it with restoration.build\(name"):
        restoration.save(DenoisingAutoencoder(widths=(4, 4, 4, 4, 4)), tmp_path / "m.pt")


def test_registry_build_rejects_a_factory_that_is_not_a_restorer() -> None:
    with restoration.RESTORERS.temporarily("not_a_restorer", lambda: torch.nn.Identity()):
        with pytest.raises(TypeError, match="not a restoration.base.Restorer"):
            restoration.build("not_a_restorer")
    assert "not_a_restorer" not in restoration.RESTORERS


def test_unregister_removes_and_returns_the_factory() -> None:
    restoration.RESTORERS.register("tmp_identity")(restoration.base.Identity)
    assert restoration.RESTORERS.unregister("tmp_identity") is restoration.base.Identity
    assert "tmp_identity" not in restoration.available()
    with pytest.raises(KeyError, match="unknown restorer 'tmp_identity'"):
        restoration.RESTORERS.unregister("tmp_identity")


def test_load_rejects_non_restorer_checkpoint(tmp_path) -> None:
    torch.save({"model": {}}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a restorer checkpoint"):
        restoration.load(tmp_path / "x.pt")
    with pytest.raises(FileNotFoundError):
        restoration.load(tmp_path / "missing.pt")
