"""The page's restorer menu: trained restorers from verified checkpoints, their labels, which
query each can restore, and ``auto`` as the run used it (tiny networks, no run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from demo_fixtures import DAMAGES, damage_file, make_png, make_service

import degradations
import restoration
from restoration.routed import EstimateThenRestore
from robustret.core.checks import ConfigError
from robustret.core.checksums import file_digest
from robustret.demo.errors import DemoError
from robustret.demo.restorers import NONE, RestorerMenu, load_trained, untrained_choices
from robustret.demo.service import DemoService
from robustret.evaluation.pipeline import degradation_seed
from robustret.experiment.served import ServedExpert, ServedRestorer

CPU = torch.device("cpu")
NOISE_SEEN = ("gaussian_noise", "noise", "salt_pepper", "speckle")


def _served(tmp_path: Path, name: str, trained_on: str, knowledge: str,
            seen: tuple[str, ...], served: tuple[str, ...], network: str,
            **options: object) -> ServedRestorer:
    """A tiny ``network`` saved as a verified checkpoint, and the run's record of it."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = restoration.build(network, **options)
    path = restoration.save(model, tmp_path / f"{name}-{trained_on}" / "last.pt")
    return ServedRestorer(name, trained_on, served, knowledge, seen, str(path), file_digest(path))


@pytest.fixture
def oracle(tmp_path: Path) -> ServedRestorer:
    """A noise hybrid told each image's severity and noise kind (an oracle)."""
    return _served(tmp_path, "hybrid", "noise", "oracle", NOISE_SEEN, ("gaussian_noise",),
                   "hybrid", front="median", widths=(4, 4), condition=["severity", "kind"])


@pytest.fixture
def blind(tmp_path: Path) -> ServedRestorer:
    """A blind autoencoder trained on the study's mixture."""
    return _served(tmp_path, "blind", "mixture", "blind", (*NOISE_SEEN, "lowres", "motion_blur"),
                   ("motion_blur",), "dae", widths=(4, 4, 4, 4, 4))


def _menu(*served: ServedRestorer, restore: str = "blind") -> RestorerMenu:
    return RestorerMenu.of_run(list(served), restore, CPU, 1)


def test_trained_restorers_are_offered_with_their_family_and_knowledge(
        oracle: ServedRestorer, blind: ServedRestorer) -> None:
    menu = _menu(oracle, blind, ServedRestorer("median", None, ("gaussian_noise",), "blind"))
    labels = {choice["name"]: choice["label"] for choice in menu.to_json()}
    assert labels["hybrid:noise"] == "hybrid (noise, oracle)"
    assert labels["blind:mixture"] == "blind (blur+noise+resolution, blind)"
    assert labels["wiener"] == "wiener (oracle)" and labels["estimated"] == "estimated (estimated)"
    assert menu.names()[:1] == ["identity"] and "auto" not in menu.names()
    assert menu.names().count("median") == 1  # a filter the run used is the untrained one


def test_the_loaded_network_is_the_checkpoint(oracle: ServedRestorer) -> None:
    choice = load_trained(oracle, CPU, 1)
    saved = torch.load(oracle.checkpoint, weights_only=False)["model"]
    for name, tensor in choice.model.state_dict().items():
        assert torch.equal(tensor, saved[name])


def test_an_oracle_cannot_restore_an_image_as_it_is(oracle: ServedRestorer,
                                                    blind: ServedRestorer) -> None:
    menu = _menu(oracle, blind)
    with pytest.raises(DemoError, match=r"hybrid \(noise, oracle\) reads each image's drawn "
                                        r"parameters \(severity, kind\) and an image searched "
                                        "as it is"):
        menu.pick("hybrid:noise", NONE)
    with pytest.raises(DemoError, match="needs each image's kind, which motion_blur does not "
                                        "draw; pick a restorer that needs only what it draws "
                                        r"\(a, b, severity\) or nothing"):
        menu.pick("hybrid:noise", "motion_blur")
    assert menu.pick("hybrid:noise", "speckle").name == "hybrid:noise"
    assert menu.pick("blind:mixture", NONE).name == "blind:mixture"
    assert menu.pick("estimated", NONE).knowledge == "estimated"


def test_auto_is_what_the_run_used(oracle: ServedRestorer, blind: ServedRestorer) -> None:
    menu = _menu(oracle, ServedRestorer("wiener", None, ("motion_blur",), "oracle"),
                 restore="auto")
    assert menu.names()[0] == "auto"
    assert menu.pick("auto", "gaussian_noise").name == "hybrid:noise"
    assert menu.pick("auto", "salt_pepper").name == "hybrid:noise"  # the same family
    assert menu.pick("auto", "motion_blur").name == "wiener"
    with pytest.raises(DemoError, match="no degradation of the resolution family"):
        menu.pick("auto", "lowres")
    with pytest.raises(DemoError, match="auto cannot choose for degradation none.*all read"):
        menu.pick("auto", NONE)
    (choice,) = [c for c in menu.to_json() if c["name"] == "auto"]
    assert choice["label"] == "auto (the run's choice: hybrid (noise, oracle), wiener (oracle))"
    assert choice["knowledge"] == "oracle" and choice["trained"]  # greyed out under none
    with_blind = _menu(oracle, blind, restore="auto")
    assert with_blind.pick("auto", NONE).name == "blind:mixture"
    assert with_blind.to_json()[0]["knowledge"] is None  # an oracle and a blind one
    today = _menu(ServedRestorer("estimated", None, ("noise", "wild"), "estimated"),
                  restore="auto")  # --restore auto: estimate, then restore, for everything
    assert today.pick("auto", NONE).name == today.pick("auto", "lowres").name == "estimated"
    assert today.to_json()[0]["knowledge"] == "estimated" and not today.to_json()[0]["trained"]


def test_an_upload_as_it_is_is_restored_by_a_trained_restorer(blind: ServedRestorer) -> None:
    base = make_service()
    service = DemoService(base.retriever, base.gallery_images, base.gallery_labels,
                          base.query_images, base.query_labels, base.class_names,
                          restorers=_menu(blind))
    result = service.search(service.parse({"degradation": NONE, "restorer": "blind:mixture",
                                           "k": "3"}, make_png()))
    original, degraded, restored = (row.image for row in result.rows)
    assert torch.equal(original, degraded) and not torch.equal(original, restored)
    assert result.to_json()["restorer"] == {"name": "blind:mixture", "knowledge": "blind",
                                            "label": "blind (blur+noise+resolution, blind)"}
    expected = load_trained(blind, CPU, 1).model(original[None])[0]
    assert torch.allclose(restored, expected.clamp(0, 1), atol=1e-6)


@pytest.mark.parametrize("damage", [*DAMAGES, "another run's file"])
def test_a_damaged_checkpoint_is_refused_in_one_line(oracle: ServedRestorer, tmp_path: Path,
                                                     damage: str) -> None:
    path = Path(oracle.checkpoint)
    if damage in DAMAGES:
        damage_file(path, damage)
    else:  # a valid checkpoint with its sidecar, but not the file the rows came from
        restoration.save(restoration.build("hybrid", front="median", widths=(4, 4),
                                           condition=["severity", "kind"]), path)
    with pytest.raises(ConfigError) as caught:
        _menu(oracle)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "hybrid:noise" in message
    assert ("is missing" if damage == "missing" else "cannot be trusted") in message


def test_a_checkpoint_for_other_channels_is_refused(oracle: ServedRestorer) -> None:
    with pytest.raises(ConfigError, match="restores 1-channel images but the run's data has 3"):
        load_trained(oracle, CPU, 3)


def test_the_untrained_choices_say_what_they_know() -> None:
    knowledge = {choice.name: choice.knowledge for choice in untrained_choices(CPU)}
    assert knowledge["identity"] == "blind" and knowledge["bicubic"] == "oracle"
    assert set(knowledge) == {"identity", *restoration.classical()}


def test_drawn_values_a_restorer_cannot_read_are_a_422(oracle: ServedRestorer) -> None:
    """The wild set draws a noise kind for every image (-1 where it is not noisy): a noise
    hybrid can be picked for it, but not restore a wild image that is not noisy."""
    base = make_service()
    service = DemoService(base.retriever, base.gallery_images, base.gallery_labels,
                          base.query_images, base.query_labels, base.class_names,
                          restorers=_menu(oracle))
    kinds = [degradations.apply_indexed(base.query_images[i:i + 1], "wild", 5,
                                        seed=degradation_seed(0, 5), indices=torch.tensor([i]),
                                        return_params=True)[1]["kind"].item()
             for i in range(len(base.query_labels))]
    assert -1 in kinds and any(kind >= 0 for kind in kinds)
    for index, kind in enumerate(kinds):
        request = service.parse({"query_index": str(index), "degradation": "wild",
                                 "severity": "5", "restorer": "hybrid:noise"})
        if kind >= 0:
            assert service.search(request).restorer.name == "hybrid:noise"
            continue
        with pytest.raises(DemoError, match=r"hybrid \(noise, oracle\) cannot restore this "
                                            r"query: params\['kind'\] must hold") as caught:
            service.search(request)
        assert caught.value.status == 422


def _expert(tmp_path: Path, family: str, recipe: str, trained_on: str, seed: int,
            **options: object) -> ServedExpert:
    """A tiny hybrid saved as a verified checkpoint, and the run's record of it as an expert;
    its weights drawn at random (a new hybrid's residual is zero: it would be its front)."""
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        model = restoration.build("hybrid", widths=(4, 4), **options)
        for parameter in model.parameters():
            parameter.normal_(0, 0.1)
    path = restoration.save(model, tmp_path / f"{recipe}-{trained_on}" / "last.pt")
    return ServedExpert(family, recipe, trained_on, str(path), file_digest(path))


@pytest.fixture
def composite(tmp_path: Path) -> ServedRestorer:
    """estimated_hybrid with a noise and a low-resolution expert (blur: the default route)."""
    experts = (_expert(tmp_path, "noise", "oracle_hybrid", "noise", 1, front="median",
                       condition=["severity", "kind"]),
               _expert(tmp_path, "resolution", "oracle_hybrid-long", "lowres", 2,
                       front="identity", condition=["level", "severity"]))
    return ServedRestorer("estimated_hybrid", None, ("gaussian_noise", "lowres"), "estimated",
                          (*NOISE_SEEN, "lowres"), experts=experts)


def test_a_composite_is_built_from_its_experts_checkpoints(composite: ServedRestorer) -> None:
    menu = _menu(composite, restore="auto")
    choice = menu.pick("estimated_hybrid", NONE)  # it reads nothing drawn
    assert choice.label == "estimated_hybrid (noise+resolution, estimated)"
    assert choice.knowledge == "estimated" and choice.trained
    (listed,) = [c for c in menu.to_json() if c["name"] == "estimated_hybrid"]
    assert listed["experts"] == {"noise": "oracle_hybrid:noise",
                                 "resolution": "oracle_hybrid-long:lowres"}
    noise, resolution = (restoration.load(expert.checkpoint) for expert in composite.experts)
    direct = EstimateThenRestore(noise=noise, resolution=resolution).eval()
    noisy = degradations.apply(make_service().query_images, "gaussian_noise", 5,
                               generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = direct(noisy)
        assert torch.equal(choice.model(noisy), expected)
        assert not torch.equal(EstimateThenRestore().eval()(noisy), expected)  # experts used
    # the run's auto was the composite: the page's auto is it, for any query
    assert menu.pick("auto", NONE) is menu.pick("auto", "motion_blur") is choice
    auto = menu.to_json()[0]
    assert auto["label"] == f"auto (the run's choice: {choice.label})"
    assert auto["knowledge"] == "estimated"


@pytest.mark.parametrize("damage", [*DAMAGES, "another run's file"])
def test_a_composite_with_a_damaged_expert_is_refused_in_one_line(
        composite: ServedRestorer, damage: str) -> None:
    path = Path(composite.experts[1].checkpoint or "")
    if damage in DAMAGES:
        damage_file(path, damage)
    else:  # a valid checkpoint with its sidecar, but not the file the rows came from
        restoration.save(restoration.build("hybrid", widths=(4, 4), front="identity",
                                           condition=["level", "severity"]), path)
    with pytest.raises(ConfigError) as caught:
        _menu(composite)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert "estimated_hybrid's resolution expert oracle_hybrid-long:lowres" in message
    assert ("is missing" if damage == "missing" else "cannot be trusted") in message


def test_a_composite_with_an_expert_without_weights_is_not_offered(
        composite: ServedRestorer) -> None:
    """An expert trained for zero epochs wrote no checkpoint: nothing to load, as for a
    network; an expert of a family the page cannot route is refused."""
    unsaved = ServedExpert("resolution", "oracle_hybrid-long", "lowres")
    zero = ServedRestorer("estimated_hybrid", None, ("lowres",), "estimated",
                          experts=(composite.experts[0], unsaved))
    assert "estimated_hybrid" not in _menu(zero).names()
    unknown = ServedRestorer("estimated_hybrid", None, ("fog",), "estimated", experts=(
        ServedExpert("weather", *composite.experts[0].choice.split(":"),
                     composite.experts[0].checkpoint, composite.experts[0].sha256),))
    with pytest.raises(ConfigError, match="routes 'weather' to its expert oracle_hybrid:noise, "
                                          "but the page routes only noise, blur, resolution"):
        _menu(unknown)


def test_two_restorers_of_one_label_are_told_apart_by_what_they_learned(
        tmp_path: Path) -> None:
    options = dict(front="median", widths=(4, 4), condition=["severity", "kind"])
    first, second = (_served(tmp_path, "hybrid", target, "oracle", (target,), (target,),
                             "hybrid", **options) for target in ("gaussian_noise", "speckle"))
    listed = {choice["name"]: choice for choice in _menu(first, second).to_json()}
    assert listed["hybrid:gaussian_noise"]["label"] == (
        "hybrid (noise, oracle, trained on gaussian_noise)")
    assert listed["hybrid:speckle"]["label"] == "hybrid (noise, oracle, trained on speckle)"
    assert listed["hybrid:speckle"]["served"] == ["speckle"]  # the rest of the choice kept
