"""The descriptor and loss settings in the run's configuration and cache keys: the keys of the
defaults keep their earlier parts; pooling and loss change the retriever's key; whitening and
dim change the embeddings' and results' keys (never the checkpoint's)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from robustret.cli.experiment import build_parser, config_from_args
from robustret.core.checks import ConfigError
from robustret.core.keys import fingerprint, source_hash
from robustret.experiment.config import ExperimentConfig
from robustret.experiment.descriptors import whitened
from robustret.experiment.trained import RETRIEVER_CODE, TrainedModel, retriever_key
from robustret.models import build_retriever


def _key(**changes: object) -> str:
    return retriever_key(ExperimentConfig(**changes).resolved(), "data")


def test_default_retriever_key_has_the_parts_of_earlier_releases() -> None:
    config = ExperimentConfig().resolved()
    settings = dataclasses.asdict(config.retriever)
    for name in ("loss", "margin", "images_per_class"):  # the settings this issue added
        settings.pop(name)
    assert _key() == fingerprint("retriever", "data", "resnet34", None, settings, [],
                                 source_hash(*RETRIEVER_CODE))


def test_pooling_and_loss_change_the_retriever_key_and_whitening_does_not() -> None:
    keys = {_key(), _key(pooling="gem"), _key(pooling="gem", gem_p=4.0),
            _key(pooling="gem", gem_learn=False), _key(retriever_loss="triplet"),
            _key(retriever_loss="arcface")}
    assert len(keys) == 6
    assert _key(whiten="pca", dim=16) == _key()


def test_flags_enter_the_configuration_and_are_checked() -> None:
    args = build_parser().parse_args(["--pooling", "gem", "--gem-p", "2.5", "--gem-fixed",
                                      "--whiten", "pca", "--dim", "64",
                                      "--retriever-loss", "triplet"])
    config = config_from_args(args)
    assert (config.pooling, config.gem_p, config.gem_learn) == ("gem", 2.5, False)
    assert (config.whiten, config.dim) == ("pca", 64)
    resolved = config.resolved()
    assert resolved.retriever.loss == "triplet" and resolved.retriever_loss is None
    assert resolved.to_dict()["whiten"] == "pca"
    with pytest.raises(ConfigError, match="--whiten pca --dim N"):
        ExperimentConfig(dim=64)
    with pytest.raises(ConfigError, match="retriever_loss must be one of"):
        ExperimentConfig(retriever_loss="hinge")


def test_whitening_changes_the_embedding_keys_and_whitens_the_gallery(tmp_path) -> None:
    torch.manual_seed(0)
    model = build_retriever("resnet18", num_classes=2).eval()
    images = torch.rand(30, 1, 32, 32)
    with torch.no_grad():
        gallery = model.embed(images)
    trained = TrainedModel(model, "k", tmp_path / "last.pt", "content")
    plain = ExperimentConfig().resolved()
    assert whitened(plain, trained, gallery, "gallery") == (trained, gallery, "gallery")
    keys = set()
    for dim in (None, 8):
        config = ExperimentConfig(whiten="pca", dim=dim).resolved()
        out, rows, key = whitened(config, trained, gallery, "gallery")
        keys |= {out.content_key, key}
        assert out.key == "k" and out.checkpoint == trained.checkpoint
        with torch.no_grad():
            assert torch.allclose(rows, model.embed(images), atol=1e-5)  # queries alike
    assert len(keys) == 4 and not keys & {"content", "gallery"}
    with pytest.raises(ConfigError, match="needs at least"):
        whitened(ExperimentConfig(whiten="pca", dim=40).resolved(), trained, gallery, "g")


def test_whitening_from_too_few_embeddings_warns(tmp_path, caplog) -> None:
    torch.manual_seed(0)
    model = build_retriever("resnet18", num_classes=2).eval()
    gallery = torch.rand(40, 512)
    trained = TrainedModel(model, "k", tmp_path / "last.pt", "content")
    with caplog.at_level("WARNING", logger="robustret.experiment.descriptors"):
        whitened(ExperimentConfig(whiten="pca", dim=4).resolved(), trained, gallery, "g")
        assert not caplog.records  # 10 embeddings per direction
        whitened(ExperimentConfig(whiten="pca").resolved(), trained, gallery, "g")
    assert "39 directions learned from only 40 embeddings" in caplog.text
    assert "--dim (<= 4)" in caplog.text


def test_a_task_term_through_a_pair_loss_retriever_is_refused(tmp_path) -> None:
    from robustret.experiment.recipes import recipe_names
    from robustret.experiment.trained import trained_restorer

    name = recipe_names()[0]
    config = ExperimentConfig.from_dict({"retriever_loss": "triplet",
                                         "restorers": {name: {"class_weight": 0.5}}}).resolved()
    with pytest.raises(ConfigError, match="untrained; use --retriever-loss classifier"):
        trained_restorer(name, "noise", [3], config, None, "d", torch.device("cpu"), tmp_path,
                         None, None)
