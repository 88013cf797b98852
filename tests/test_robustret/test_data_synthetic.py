"""The built-in synthetic set on a tiny configuration (well under a second)."""

from __future__ import annotations

import logging

import pytest
import torch

from robustret.data import load, load_extra_objects
from robustret.data.synthetic import SyntheticConfig, gallery_instances, generate

TINY = {"n_instances": 4, "elevations": 2, "azimuths": 2, "lightings": 1, "render_size": 32}


def test_counts_range_metadata() -> None:
    data = load("synthetic", **TINY)
    views = 2 * 2 * 1
    assert len(data.gallery) == len(data.queries) == 5 * 2 * views
    assert data.class_names == ["animal", "human", "airplane", "truck", "car"]
    for side in (data.gallery, data.queries):
        assert side.images.shape[1:] == (1, 32, 32)
        assert side.images.dtype == torch.float32
        assert 0.0 <= float(side.images.min()) and float(side.images.max()) <= 1.0
        assert side.class_counts() == [2 * views] * 5
        for column in ("instance", "elevation", "azimuth", "lighting"):
            assert len(side.metadata[column]) == len(side)
    assert float(data.gallery.images.std()) > 0.05  # not blank


def test_instance_disjoint_split() -> None:
    data = load("synthetic", **TINY)
    assert set(data.gallery.metadata["instance"].tolist()) == {2, 3}
    assert set(data.queries.metadata["instance"].tolist()) == {0, 1}
    assert gallery_instances(10) == [4, 6, 7, 8, 9]


def test_extra_objects_are_new_objects_and_leave_the_splits_alone() -> None:
    data = load("synthetic", seed=3, **TINY)
    extra = load_extra_objects("synthetic", 2, seed=3, **TINY)
    assert extra is not None and len(extra) == 5 * 2 * 4  # two objects per class, four views
    assert set(extra.metadata["instance"].tolist()) == {4, 5}  # after the splits' 0..3
    assert extra.class_counts() == [8] * 5 and extra.images.shape[1:] == (1, 32, 32)
    known = torch.cat([data.gallery.images, data.queries.images]).flatten(1)
    assert not (extra.images.flatten(1)[:, None] == known[None]).all(-1).any()  # none repeats
    # rendering more objects does not change the data set's own (per-object seed streams)
    bigger = load("synthetic", seed=3, **{**TINY, "n_instances": 6})
    first = [side.images[side.metadata["instance"] == 0] for side in (bigger.queries,
                                                                        data.queries)]
    assert len(first[0]) == 5 * 4 and torch.equal(*first)  # instance 0: a query of both
    capped = load_extra_objects("synthetic", 1, seed=3, per_class=2, image_size=16, **TINY)
    assert capped is not None and capped.class_counts() == [2] * 5
    assert capped.images.shape[1:] == (1, 16, 16)
    assert load_extra_objects("folder:/nowhere", 2) is None  # a data set on disk has no more
    with pytest.raises(ValueError, match="extra_objects"):
        load_extra_objects("synthetic", 0, **TINY)


def test_deterministic_bytes_and_seed_changes_output() -> None:
    config = SyntheticConfig(seed=5, **TINY)
    a, b = generate(config), generate(config)
    assert a["images"].tobytes() == b["images"].tobytes()
    other = generate(SyntheticConfig(seed=6, **TINY))
    assert a["images"].tobytes() != other["images"].tobytes()


def test_cache_roundtrip_equals_fresh() -> None:
    first = load("synthetic", seed=9, **TINY)
    cached = load("synthetic", seed=9, **TINY)
    fresh = load("synthetic", seed=9, use_cache=False, **TINY)
    assert torch.equal(first.gallery.images, cached.gallery.images)
    assert torch.equal(first.queries.images, fresh.queries.images)


def test_cache_key_knows_the_renderer_code(caplog, monkeypatch) -> None:
    from robustret.data import synthetic

    load("synthetic", seed=11, **TINY)
    with caplog.at_level(logging.INFO, logger="robustret.data.synthetic"):
        load("synthetic", seed=11, **TINY)
    assert "from cache" in caplog.text
    caplog.clear()
    monkeypatch.setattr(synthetic, "source_hash", lambda *modules: "edited renderer")
    with caplog.at_level(logging.INFO, logger="robustret.data.synthetic"):
        load("synthetic", seed=11, **TINY)
    assert "from cache" not in caplog.text


def test_default_configuration_counts() -> None:
    config = SyntheticConfig()
    assert config.views == 4 * 12 * 2
    assert 5 * len(gallery_instances(config.n_instances)) * config.views == 2400


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="n_instances must be >= 2"):
        load("synthetic", n_instances=1)
    with pytest.raises(ValueError, match="takes no path"):
        load("synthetic:/tmp")
