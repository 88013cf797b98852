"""The experiment configuration: validation, resolution from the profile, file round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustret.core.checks import ConfigError
from robustret.experiment.config import ExperimentConfig, load_config_file


def test_defaults_are_the_study_and_validate() -> None:
    config = ExperimentConfig()
    assert config.degradations == ("noise",) and config.severities == (3,)
    assert config.metrics == ("l2", "cosine") and config.ks == (1, 5, 10)
    assert config.validate() is config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"severities": (6,)}, "severities"),
        ({"severities": (1.5,)}, "severities"),
        ({"ks": (1, 1, 5)}, "twice"),
        ({"ks": (0,)}, "ks"),
        ({"seed": 1.5}, "seed"),
        ({"seed": True}, "seed"),
        ({"image_size": True}, "image_size"),
        ({"image_size": 10**9}, "image_size must be an integer in 1..4096"),
        ({"seed": 2**64}, "seed must be an integer in 0.."),
        ({"tensorboard": "no"}, "tensorboard"),
        ({"device": 5}, "device"),
        ({"out_dir": 5}, "out_dir"),
        ({"metrics": ("manhattan",)}, "metric"),
        ({"profile": "slow"}, "profile"),
        ({"degradations": ()}, "degradation"),
    ],
)
def test_bad_values_are_config_errors_naming_the_field(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"degradations": ("blurr",)}, "unknown degradation 'blurr'; available: .*motion_blur"),
        ({"train_degrade": ("frost",)}, "unknown train_degrade"),
        ({"restore": "magic"}, "unknown restore mode 'magic'"),
        ({"backbone": "resnet1000"}, "unknown backbone"),
        ({"device": "tpu"}, "device"),
        ({"dataset": "imagenet"}, "unknown dataset"),
        ({"dataset": "folder:/no/such/folder"}, "does not exist"),
        ({"weights": "/no/such/weights.pth"}, "weights file"),
    ],
)
def test_validate_checks_names_and_paths_before_any_work(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig(**changes).validate()


def test_out_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "taken"
    file.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        ExperimentConfig(out_dir=file).validate()


def test_unknown_keys_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="valid keys: .*degradations"):
        ExperimentConfig.from_dict({"degradation": "noise"})
    with pytest.raises(ConfigError, match=r"\[retriever\].*valid: .*epochs"):
        ExperimentConfig.from_dict({"retriever": {"epoch": 3}})


def test_resolved_fills_the_profile_once_and_folds_in_the_epoch_shortcuts() -> None:
    from robustret.experiment.recipes import recipe, recipe_names

    config = ExperimentConfig(retriever_epochs=2, restorer_epochs=1).resolved()
    assert config.is_resolved and config.image_size == 64
    assert config.retriever is not None and config.retriever.epochs == 2
    assert config.restorers is not None and set(config.restorers) == set(recipe_names())
    assert all(section.epochs == 1 and section.model == recipe(name).model
               for name, section in config.restorers.items())
    assert config.retriever_epochs is None and config.restorer_epochs is None
    assert config.resolved() == config  # resolving twice changes nothing
    paper = ExperimentConfig(profile="paper").resolved()
    assert paper.image_size is None and paper.retriever.epochs > config.retriever.epochs


def test_derived_seeds_follow_the_run_seed() -> None:
    a, b = ExperimentConfig(seed=0).resolved(), ExperimentConfig(seed=1).resolved()
    assert a.retriever.seed != b.retriever.seed
    assert a.retriever.seed != a.restorers["dae"].seed  # distinct named streams
    assert ExperimentConfig(seed=0).resolved().retriever.seed == a.retriever.seed


def test_file_sections_override_the_preset_and_json_round_trips(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('degradations = ["lowres"]\nseed = 3\n[retriever]\nepochs = 3\n'
                    '[restorers.dae]\nlr = 0.0005\n', encoding="utf-8")
    config = ExperimentConfig.from_dict(load_config_file(toml)).resolved()
    assert config.retriever.epochs == 3 and config.restorers["dae"].lr == 0.0005
    assert config.restorers["dae"].epochs == ExperimentConfig().resolved().restorers["dae"].epochs
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()), encoding="utf-8")
    again = ExperimentConfig.from_dict(load_config_file(path))
    assert again == config and again.is_resolved


def test_bad_files_are_config_errors(tmp_path: Path) -> None:
    bad_toml, bad_json = tmp_path / "a.toml", tmp_path / "a.json"
    bad_toml.write_text("seed = = 1", encoding="utf-8")
    bad_json.write_text("{", encoding="utf-8")
    for path in (bad_toml, bad_json):
        with pytest.raises(ConfigError, match=str(path.name)):
            load_config_file(path)
    with pytest.raises(FileNotFoundError):
        load_config_file(tmp_path / "missing.toml")


def test_an_exported_query_set_cannot_stand_for_a_degraded_gallery(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="degraded queries only"):
        ExperimentConfig(queries_dir=tmp_path, degrade_side="gallery").validate()


def test_dataset_schemes_are_those_of_the_data_package(tmp_path: Path, monkeypatch) -> None:
    """A new reader is one entry of robustret.data.SCHEMES: validate takes it, with its path
    unless the reader takes none, and names it in the message for an unknown scheme."""
    import robustret.data

    def load_web(path: Path, image_size: int | None = None) -> None:  # a reader with a path
        raise NotImplementedError

    monkeypatch.setitem(robustret.data.SCHEMES, "web", load_web)
    ExperimentConfig(dataset=f"web:{tmp_path}", out_dir=tmp_path / "out").validate()
    message = "use 'synthetic', 'smallnorb:PATH', 'folder:PATH' or 'web:PATH'"
    for dataset in ("bogus", "web"):
        with pytest.raises(ConfigError, match=message):
            ExperimentConfig(dataset=dataset, out_dir=tmp_path / "out").validate()


def test_a_config_json_of_other_code_says_what_it_lacks(tmp_path: Path, caplog) -> None:
    """An old config.json (no code record, a setting added since) once ran today's defaults
    without a word; now it is read as written, with one warning naming the missing settings.
    One of today's code reads back silently, without its code record among the settings."""
    import logging

    from robustret.experiment.config import load_config_file
    from robustret.experiment.config_files import CODE_KEY, code_record

    today = {**ExperimentConfig().to_dict(), "world_size": 1, CODE_KEY: code_record()}
    (tmp_path / "today.json").write_text(json.dumps(today))
    with caplog.at_level(logging.WARNING):
        values = load_config_file(tmp_path / "today.json")
    assert CODE_KEY not in values and ExperimentConfig.from_dict(values) == ExperimentConfig()
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    old = {k: v for k, v in ExperimentConfig().to_dict().items() if k != "adapt"}
    (tmp_path / "old.json").write_text(json.dumps(old))
    with caplog.at_level(logging.WARNING):
        load_config_file(tmp_path / "old.json")
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "did not record itself" in warning and "today's defaults: adapt" in warning


def test_degradations_take_group_names_expanded_when_built(tmp_path: Path) -> None:
    import degradations
    from degradations.groups import GROUPS

    assert ExperimentConfig(degradations="study").degradations == GROUPS["study"]
    assert ExperimentConfig(degradations=["all"]).degradations == tuple(
        name for name in degradations.available() if name != "wild")  # a protocol, not in all
    mixed = ExperimentConfig(degradations=["fog", "held-out", "speckle"]).degradations
    assert mixed == ("fog", "speckle", "gaussian_blur", "spatter", "saturate")
    assert ExperimentConfig(degradations=["noise", "noise"]).degradations == ("noise", "noise")
    with pytest.raises(ConfigError, match="unknown degradation 'blurr'; available: .* or a "
                                          "group: study, imagenet-c, held-out, all"):
        ExperimentConfig(degradations=["study", "blurr"]).validate()
    toml = tmp_path / "suite.toml"
    toml.write_text('degradations = "imagenet-c"\nrestore = "none"\n')
    config = ExperimentConfig.from_dict(load_config_file(toml))
    assert config.degradations == GROUPS["imagenet-c"] and len(config.degradations) == 14
    assert config.to_dict()["degradations"] == list(GROUPS["imagenet-c"])  # config.json: names

