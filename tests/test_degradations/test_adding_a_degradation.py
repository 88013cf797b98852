"""A degradation is one registered class: it becomes a ``--degrade`` choice and a contract case.

The class below is registered only inside the tests that use it (the ``register`` fixture
removes it afterwards), so other tests see the built-ins alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from degradation_contract import check_contract

import degradations
from degradations import Degradation
from robustret.core.rng import make_generator


class Haze(Degradation):
    """g = (1 - s) f + s, s = strength (0.5 + u), u ~ U[0, 1) per image: a veil of light."""

    severities = tuple({"strength": s} for s in (0.1, 0.2, 0.3, 0.45, 0.6))
    family = "weather"

    def __init__(self, strength: float = 0.3, range_mode: str = "clip") -> None:
        super().__init__()
        self.strength, self.range_mode = strength, range_mode

    def sample_params(
        self, batch_size: int, generator: torch.Generator | None = None, *,
        size: tuple[int, int] | None = None,
    ) -> dict[str, torch.Tensor]:
        return {"veil": self.strength * (0.5 + torch.rand(batch_size, generator=generator))}

    def core(
        self, x: torch.Tensor, words: object, out: torch.Tensor, veil: torch.Tensor,
    ) -> torch.Tensor:
        s = veil.to(x.device, x.dtype).view(-1, 1, 1, 1)  # (B, 1, 1, 1)
        return torch.mul(x, 1 - s, out=out).add_(s)


@pytest.fixture
def register() -> Iterator[Callable[[str, type], type]]:
    """``register(name, cls)`` for the duration of one test."""
    names: list[str] = []

    def _register(name: str, cls: type) -> type:
        degradations.DEGRADATIONS.register(name)(cls)
        names.append(name)
        return cls

    yield _register
    for name in names:
        degradations.DEGRADATIONS.unregister(name)
    assert not set(names) & set(degradations.available())


def test_one_registered_class_passes_the_contract(
    register: Callable[[str, type], type], images: torch.Tensor,
) -> None:
    register("haze", Haze)
    assert "haze" in degradations.available()
    assert degradations.family("haze") == "weather"
    assert degradations.severity_params("haze", 3) == {"strength": 0.3}
    assert degradations.SEVERITIES["haze"][4] == {"strength": 0.6}
    check_contract("haze", images)
    out, params = degradations.apply(images, "haze", 5, generator=make_generator(0),
                                     return_params=True)
    assert float(out.mean()) > float(images.mean()) and params["veil"].shape == (4,)


def test_a_class_without_family_is_its_own_family(register: Callable[[str, type], type]) -> None:
    class Dim(Degradation):
        severities = tuple({"factor": f} for f in (0.9, 0.8, 0.7, 0.6, 0.5))

        def __init__(self, factor: float = 0.7) -> None:
            super().__init__()
            self.factor = factor

        def core(self, x: torch.Tensor, words: object, out: torch.Tensor) -> torch.Tensor:
            return torch.mul(x, self.factor, out=out)

    register("dim", Dim)
    assert degradations.family("dim") == "dim"
    x = torch.full((1, 1, 4, 4), 0.5)
    assert torch.equal(degradations.apply(x, "dim", 5), torch.full_like(x, 0.25))


def _class(**attributes: object) -> type:
    def __init__(self, strength: float = 0.3) -> None:  # type: ignore[no-untyped-def]
        Degradation.__init__(self)
        self.strength = strength

    return type("Bad", (Degradation,), {"__init__": __init__, **attributes})


LEVELS = tuple({"strength": s} for s in (0.1, 0.2, 0.3, 0.4, 0.5))


@pytest.mark.parametrize(
    ("name", "cls", "error", "match"),
    [
        ("bad", _class(), ValueError, "needs a class attribute severities with 5 levels"),
        ("bad", _class(severities=LEVELS[:4]), ValueError, "with 5 levels"),
        ("bad", _class(severities=({"strength": 1},) * 4 + ({"strenght": 2},)), ValueError,
         "severity 5 sets strenght, which Bad.__init__ does not take; valid: strength"),
        ("bad", _class(severities=LEVELS[:4] + (0.5,)), ValueError, "severity 5 must be a dict"),
        ("bad", _class(severities=LEVELS, family=""), ValueError, "family must be"),
        ("Bad", _class(severities=LEVELS), ValueError, "lowercase word"),
        ("all", _class(severities=LEVELS), ValueError, "other than all"),
        ("bad", torch.nn.Identity, TypeError, "subclass of degradations.Degradation"),
        ("speckle", _class(severities=LEVELS), KeyError, "already registered"),
    ],
)
def test_registration_checks_the_class(name: str, cls: type, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        degradations.DEGRADATIONS.register(name)(cls)
    assert name not in degradations.available() or name == "speckle"
    assert degradations.DEGRADATIONS.get("speckle") is degradations.SpeckleNoise


def test_a_registered_class_runs_through_the_experiment_cli(
    register: Callable[[str, type], type], tmp_path: Path, tiny_folder: Path,
) -> None:
    from robustret.cli.experiment import main

    register("haze", Haze)
    data, out = tiny_folder, tmp_path / "run"
    status = main([
        "--dataset", f"folder:{data}", "--out", str(out), "--image-size", "32",
        "--retriever-epochs", "1", "--restorer-epochs", "1", "--backbone", "resnet18",
        "--degrade", "haze", "--restore", "none", "-q", "--no-tensorboard",
    ])
    assert status == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    degraded = [row for row in rows if row["query"] == "degraded"]
    assert degraded and {row["degradation"] for row in degraded} == {"haze"}
    assert all(0.0 <= row["accuracy"] <= 1.0 for row in rows)
