"""Approximate FAISS indexes: results against exact search, defaults, errors, and the run's
``--index`` with its recall file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("faiss", reason="faiss-cpu not installed (extra 'faiss')")

from robustret.core.checks import ConfigError  # noqa: E402
from robustret.experiment.config import ExperimentConfig  # noqa: E402
from robustret.retrieval import GalleryIndex, search  # noqa: E402
from robustret.retrieval.ann import (  # noqa: E402
    HNSWSpec,
    IVFPQSpec,
    IVFSpec,
    default_nlist,
    index_spec,
    recall_at_k,
)

KINDS = ("faiss-ivf", "faiss-ivfpq", "faiss-hnsw")
#: IVF-PQ on 16 dimensions keeps 2 bytes a vector: high recall needs the exact re-ranking
OPTIONS = {"faiss-ivf": {}, "faiss-ivfpq": {"refine": 8}, "faiss-hnsw": {}}


def _clustered(seed: int = 0, centres: int = 20, per: int = 30, dim: int = 16, queries: int = 60
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(G, D) gallery of Gaussian clusters (G = centres x per), its labels, (Q, D) queries."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(centres, dim, generator=g) * 4
    gallery = means.repeat_interleave(per, 0) + torch.randn(centres * per, dim, generator=g)
    pick = torch.randint(0, centres, (queries,), generator=g)
    return (gallery, torch.arange(centres).repeat_interleave(per),
            means[pick] + torch.randn(queries, dim, generator=g))


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("kind", KINDS)
def test_each_index_finds_what_exact_search_finds(kind: str, metric: str) -> None:
    gallery, labels, queries = _clustered()
    kept = gallery.clone(), queries.clone()
    index = GalleryIndex(gallery, labels, metric, backend=kind, options=OPTIONS[kind])
    scores, indices = index.search(queries, 10)
    assert torch.equal(gallery, kept[0]) and torch.equal(queries, kept[1])  # not normalised
    assert scores.shape == indices.shape == (60, 10)
    assert scores.dtype == torch.float32 and indices.dtype == torch.int64
    exact_scores, exact = search(queries, gallery, 10, metric)
    assert float(recall_at_k(indices, exact).mean()) >= 0.95
    rows = torch.arange(60)[:, None]
    assert (indices >= 0).all() and (indices < len(gallery)).all()
    # the scores are the metric's: distances (l2) or similarities (cosine) of those items
    truth = (torch.cdist(queries, gallery) if metric == "l2"
             else torch.nn.functional.normalize(queries, dim=1)
             @ torch.nn.functional.normalize(gallery, dim=1).T)[rows, indices]
    assert torch.allclose(scores, truth, atol=1e-3)
    ordered = scores.diff(dim=1) <= 0 if metric == "cosine" else scores.diff(dim=1) >= 0
    assert ordered.all()
    assert not index.is_exact and index.describe()["kind"] == kind
    assert index.describe()["metric"] == metric


def test_queries_are_searched_as_given_not_normalised_for_l2() -> None:
    gallery, labels, queries = _clustered()
    index = GalleryIndex(gallery, labels, "l2", backend="faiss-ivf")
    _, near = index.search(queries, 5)
    _, far = index.search(queries * 3, 5)  # a scaled query has other l2 neighbours
    assert not torch.equal(near, far)


def test_a_full_ranking_is_complete_and_keeps_the_approximate_head() -> None:
    gallery, labels, queries = _clustered()
    index = GalleryIndex(gallery, labels, "l2", backend="faiss-ivf",
                         options={"nlist": 15, "nprobe": 1})  # one cell holds ~40 items
    _, head = index.search(queries, 5)
    _, ranking = index.search(queries, len(gallery))
    assert torch.equal(ranking.sort(dim=1).values,
                       torch.arange(len(gallery)).expand(len(queries), -1))
    assert torch.equal(ranking[:, :5], head)


def test_ivf_is_deterministic_for_a_seed() -> None:
    gallery, labels, queries = _clustered()
    results = [GalleryIndex(gallery, labels, backend="faiss-ivfpq", seed=seed,
                            options={"train_size": 300}).search(queries, 10)
               for seed in (3, 3)]
    assert torch.equal(results[0][1], results[1][1])
    assert torch.equal(results[0][0], results[1][0])


def test_defaults_follow_the_gallery_size() -> None:
    assert default_nlist(1_000_000) == 4000
    assert default_nlist(20_000) == 20_000 // 39  # 4 sqrt(G) = 566 > G / 39
    assert default_nlist(10) == 1
    assert index_spec("faiss-ivf", 1_000_000, 512) == IVFSpec(nlist=4000, nprobe=63,
                                                               train_size=256_000)
    assert index_spec("faiss-ivfpq", 1_000_000, 512) == IVFPQSpec(
        nlist=4000, nprobe=63, train_size=256_000, m=64, nbits=8, refine=0)
    small = index_spec("faiss-ivfpq", 100, 24)  # too few vectors for 256 PQ centroids
    assert (small.nlist, small.nbits, small.m) == (2, 6, 3)
    assert index_spec("faiss-hnsw", 50, 8) == HNSWSpec(M=32, ef_construction=40, ef_search=64)
    assert index_spec("faiss-ivf", 1000, 8, {"nprobe": 2}).nprobe == 2


@pytest.mark.parametrize("kind, options, says", [
    ("faiss-ivf", {"nlist": 5000}, "use nlist <= 15"),
    ("faiss-ivf", {"nprobe": 99}, "use nprobe <= 15"),
    ("faiss-ivfpq", {"m": 5}, "use one of 1, 2, 4, 8, 16"),
    ("faiss-ivfpq", {"nbits": 12}, "use nbits <= 9"),
    ("faiss-hnsw", {"nlist": 8}, "valid: M, ef_construction, ef_search"),
    ("faiss-hnsw", {"M": 1}, "M must be an integer >= 2"),
])
def test_options_the_gallery_cannot_support_say_what_to_use(kind, options, says) -> None:
    gallery, labels, _ = _clustered()
    with pytest.raises(ValueError, match=says):
        GalleryIndex(gallery, labels, backend=kind, options=options)


def test_exact_paths_reject_approximate_arguments() -> None:
    gallery, labels, queries = _clustered()
    with pytest.raises(ValueError, match="GalleryIndex"):
        search(queries, gallery, 5, backend="faiss-hnsw")
    with pytest.raises(ValueError, match="take none|takes none"):
        GalleryIndex(gallery, labels, options={"nlist": 4})
    with pytest.raises(ValueError, match="unknown backend"):
        GalleryIndex(gallery, labels, backend="faiss-lsh")


def test_missing_faiss_says_how_to_install(monkeypatch) -> None:
    gallery, labels, _ = _clustered()
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match=r"pip install 'robustret\[faiss\]'"):
        GalleryIndex(gallery, labels, backend="faiss-ivf")
    with pytest.raises(ConfigError, match=r"pip install 'robustret\[faiss\]'"):
        ExperimentConfig(index="faiss-hnsw").validate()


def test_recall_at_k_counts_shared_items() -> None:
    approximate = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    exact = torch.tensor([[3, 2, 1, 0], [4, 9, 8, 7]])
    assert recall_at_k(approximate, exact).tolist() == [1.0, 0.5]
    with pytest.raises(ValueError, match=r"\(Q, k\)"):
        recall_at_k(approximate, exact[:, :2])


def test_config_validates_the_index_and_records_it() -> None:
    with pytest.raises(ConfigError, match="faiss-hnsw"):
        ExperimentConfig(index="hnsw")
    with pytest.raises(ConfigError, match="valid: nlist, nprobe"):
        ExperimentConfig(index="faiss-ivf", index_options={"ef_search": 8})
    with pytest.raises(ConfigError, match="takes none"):
        ExperimentConfig(index="exact", index_options={"nprobe": 8})
    config = ExperimentConfig(index="faiss-ivf", index_options={"nprobe": 8})
    assert config.to_dict()["index"] == "faiss-ivf"
    assert ExperimentConfig.from_dict(config.to_dict()) == config
    assert ExperimentConfig().index == "exact"


def test_cli_index_flags(capsys) -> None:
    from robustret.cli.experiment import build_parser, config_from_args, main

    with pytest.raises(SystemExit) as exit_info:
        main(["--index", "hnsw"])
    assert exit_info.value.code == 2 and "faiss-hnsw" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--index", "faiss-ivf", "--index-option", "nprobe"])
    assert exit_info.value.code == 2 and "KEY=INTEGER" in capsys.readouterr().err
    args = build_parser().parse_args(["--index", "faiss-ivf", "--index-option", "nprobe=4",
                                      "nlist=8"])
    config = config_from_args(args)
    assert (config.index, config.index_options) == ("faiss-ivf", {"nprobe": 4, "nlist": 8})


def _run_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--dataset", f"folder:{data}", "--out", str(out), "--image-size", "32",
            "--retriever-epochs", "1", "--backbone", "resnet18", "--restore", "none",
            "--degrade", "gaussian_noise", "--no-tensorboard", "--measures", "topk",
            "--topk", "1", "3", "-q", *extra]


def test_a_gallery_too_small_for_the_index_is_one_line_before_training(
        tiny_folder: Path, tmp_path: Path, capsys) -> None:
    from robustret.cli.experiment import main

    assert main(_run_args(tiny_folder, tmp_path / "run", "--index", "faiss-ivf",
                          "--index-option", "nlist=500", "--cache-dir",
                          str(tmp_path / "cache"))) == 2
    err = capsys.readouterr().err.strip()
    assert "nlist=500" in err and "use nlist <=" in err and "\n" not in err
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@pytest.mark.slow
def test_an_approximate_run_writes_its_recall_beside_the_results(
        tiny_folder: Path, tmp_path: Path, capsys) -> None:
    from robustret.cli.experiment import main

    out = tmp_path / "run"
    assert main(_run_args(tiny_folder, out, "--index", "faiss-hnsw", "--cache-dir",
                          str(tmp_path / "cache"))) == 0
    assert "index faiss-hnsw: recall@3 against exact search" in capsys.readouterr().out
    report = json.loads((out / "index.json").read_text())
    assert report["index"] == "faiss-hnsw" and report["k"] == report["searched"] == 3
    assert {(r["condition"], r["metric"]) for r in report["recalls"]} == {
        (c, m) for c in ("clean", "gaussian_noise-s3") for m in ("l2", "cosine")}
    assert report["min_recall"] == 1.0  # HNSW on 15 items visits them all
    assert report["indexes"]["l2"]["M"] == 32
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["index"] == "faiss-hnsw"
    assert results["resolved"]["index"]["cosine"]["kind"] == "faiss-hnsw"
    assert json.loads((out / "config.json").read_text())["index"] == "faiss-hnsw"
    # a second run reuses both conditions: nothing searched, nothing measured
    assert main(_run_args(tiny_folder, out, "--index", "faiss-hnsw", "--cache-dir",
                          str(tmp_path / "cache"))) == 0
    report = json.loads((out / "index.json").read_text())
    assert report["recalls"] == [] and report["not_measured"] == ["clean", "gaussian_noise-s3"]
    assert "not measured in this run" in capsys.readouterr().out


def test_tune_changes_the_search_without_a_rebuild() -> None:
    gallery, labels, queries = _clustered()
    gallery = torch.randn(gallery.shape, generator=torch.Generator().manual_seed(1))  # no cells
    index = GalleryIndex(gallery, labels, backend="faiss-ivf", options={"nlist": 15,
                                                                         "nprobe": 1})
    _, exact = search(queries, gallery, 10)
    narrow = float(recall_at_k(index.search(queries, 10)[1], exact).mean())
    index.tune(nprobe=15)  # every cell: exact
    assert narrow < 1.0 and float(recall_at_k(index.search(queries, 10)[1], exact).mean()) == 1.0
    assert index.describe()["nprobe"] == 15
    with pytest.raises(ValueError, match="needs a new index"):
        index.tune(nlist=4)
    with pytest.raises(ValueError, match="exceeds nlist"):
        index.tune(nprobe=16)
    with pytest.raises(ValueError, match="built with refine"):
        GalleryIndex(gallery, labels, backend="faiss-ivfpq").tune(refine=4)


def test_gpu_is_refused_clearly_when_absent_and_a_failed_copy_stays_on_the_cpu(
        monkeypatch, caplog) -> None:
    import faiss

    from robustret.retrieval import ann

    gallery, labels, queries = _clustered()
    monkeypatch.setattr(ann, "_gpu_resources", lambda faiss: None)
    with pytest.raises(ValueError, match="faiss-gpu"):
        GalleryIndex(gallery, labels, backend="faiss-ivf", gpu=True)

    def refuse(resources, device, index):
        raise RuntimeError("not on this GPU")

    monkeypatch.setattr(ann, "_gpu_resources", lambda faiss: object())
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", refuse, raising=False)
    index = GalleryIndex(gallery, labels, backend="faiss-ivf")
    assert "using the CPU" in caplog.text and index.describe()["gpu"] is False
    assert float(recall_at_k(index.search(queries, 10)[1], search(queries, gallery, 10)[1])
                 .mean()) >= 0.95
    hnsw = GalleryIndex(gallery, labels, backend="faiss-hnsw")  # no GPU HNSW: never tried
    assert hnsw.describe()["gpu"] is False
