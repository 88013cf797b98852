"""One condition of the table (robustret.evaluation.pipeline) and the typed results
(robustret.evaluation.results)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from restoration import Restorer
from robustret.evaluation.pipeline import (
    DegradedQueries,
    degrade_queries,
    evaluate_condition,
)
from robustret.evaluation.results import Condition, ResultRow, accuracy_of, select, value_of
from robustret.experiment.config import ExperimentConfig
from robustret.experiment.plan import plan_conditions
from robustret.retrieval import GalleryIndex


def _flat(images: Tensor) -> Tensor:
    """A stand-in embedding: the pixels themselves (nearest neighbour in pixel space)."""
    return images.flatten(1).float()


@pytest.fixture
def gallery() -> tuple[Tensor, Tensor]:
    """Four 8x8 images of two classes: class 0 dark, class 1 bright, each with a texture."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(4, 1, 8, 8, generator=g) * 0.2
    images = base + torch.tensor([0.1, 0.1, 0.7, 0.7])[:, None, None, None]
    return images, torch.tensor([0, 0, 1, 1])


def _indexes(images: Tensor, labels: Tensor) -> dict[str, GalleryIndex]:
    return {m: GalleryIndex(_flat(images), labels, m) for m in ("l2", "cosine")}


def test_clean_queries_equal_to_the_gallery_find_themselves(gallery) -> None:
    images, labels = gallery
    result = evaluate_condition(Condition("clean"), queries=images, labels=labels, embed=_flat,
                                indexes=_indexes(images, labels), ks=(1, 2))
    assert [(r.metric, r.k) for r in result.rows] == [("l2", 1), ("l2", 2), ("cosine", 1),
                                                     ("cosine", 2)]
    assert all(r.accuracy == 1.0 and r.condition == Condition("clean") for r in result.rows)
    assert torch.equal(result.retrieved["l2"][:, 0], torch.arange(4))
    assert result.images is images


def test_degraded_condition_searches_with_the_degraded_images(gallery) -> None:
    images, labels = gallery
    swapped = images[[2, 3, 0, 1]]  # every query now looks like the other class
    degraded = DegradedQueries(swapped, {}, seed=0)
    condition = Condition("degraded", "noise", 3)
    result = evaluate_condition(condition, queries=images, labels=labels, embed=_flat,
                                indexes=_indexes(images, labels), ks=(1,), degraded=degraded)
    assert accuracy_of(result.rows, metric="l2", k=1) == 0.0
    with pytest.raises(ValueError, match="degraded queries"):
        evaluate_condition(condition, queries=images, labels=labels, embed=_flat,
                           indexes=_indexes(images, labels), ks=(1,))


class _Recorder(Restorer):
    """Returns fixed images and records the params it was handed per batch."""

    uses_params = ("a",)

    def __init__(self, answer: Tensor) -> None:
        super().__init__()
        self.answer, self.seen = answer, []

    def restore_raw(self, images: Tensor, **params: Tensor) -> Tensor:
        self.seen.append(params)
        return self.answer[: images.shape[0]]


def test_restored_condition_runs_the_restorer_with_the_params_it_declares(gallery) -> None:
    images, labels = gallery
    degraded = DegradedQueries(images[[2, 3, 0, 1]],
                               {"a": torch.arange(4.0), "kind": torch.zeros(4)}, seed=0)
    restorer = _Recorder(images)  # restores perfectly
    condition = Condition("restored", "noise", 3, "recorder")
    result = evaluate_condition(condition, queries=images, labels=labels, embed=_flat,
                                indexes=_indexes(images, labels), ks=(1,), degraded=degraded,
                                restorer=restorer)
    assert accuracy_of(result.rows, metric="l2", k=1) == 1.0
    assert len(restorer.seen) == 1 and set(restorer.seen[0]) == {"a"}
    assert torch.equal(restorer.seen[0]["a"], torch.arange(4.0))
    with pytest.raises(ValueError, match="restorer is required"):
        evaluate_condition(condition, queries=images, labels=labels, embed=_flat,
                           indexes=_indexes(images, labels), ks=(1,), degraded=degraded)


def test_degrade_queries_is_seeded_and_records_params(gallery) -> None:
    images, _ = gallery
    a = degrade_queries(images, "motion_blur", 3, seed=5)
    b = degrade_queries(images, "motion_blur", 3, seed=5)
    c = degrade_queries(images, "motion_blur", 3, seed=6)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert set(a.params) == {"a", "b", "severity"} and a.params["a"].shape == (4,) and a.seed == 5
    assert a.params["severity"].tolist() == [3.0] * 4  # what a conditioned restorer reads


def test_plan_lists_clean_then_each_degradation_and_its_restorers() -> None:
    config = ExperimentConfig(degradations=("noise", "lowres"), severities=(1, 3),
                              restore="oracle")
    plan = plan_conditions(config)
    assert plan[0] == Condition("clean")
    assert plan[1:4] == [
        Condition("degraded", "noise", 1),
        Condition("restored", "noise", 1, "oracle_hybrid-objects"),
        Condition("degraded", "noise", 3),
    ]
    assert Condition("restored", "lowres", 3, "oracle_hybrid-long") in plan and len(plan) == 9
    study = plan_conditions(config.replace(restore="study"))
    assert Condition("restored", "noise", 1, "dae") in study
    assert Condition("restored", "lowres", 3, "srcnn") in study
    assert plan_conditions(config.replace(restore="none")) == [
        c for c in plan if c.query != "restored"]
    auto = plan_conditions(config.replace(restore="auto"))  # one restorer for every query
    assert {c.restorer for c in auto if c.query == "restored"} == {"estimated"}
    assert len(set(plan)) == len(plan)


def test_condition_contract_name_and_key() -> None:
    assert Condition("restored", "noise", 3, "dae").name == "noise-s3-dae"
    assert Condition("clean").name == "clean"
    with pytest.raises(ValueError):
        Condition("degraded")  # needs a degradation and severity
    with pytest.raises(ValueError):
        Condition("clean", restorer="dae")
    with pytest.raises(ValueError):
        Condition("blurry", "noise", 3)
    condition = Condition("degraded", "noise", 3)
    assert condition.key("a") == Condition("degraded", "noise", 3).key("a")
    assert condition.key("a") != condition.key("b") != Condition("degraded", "noise", 2).key("b")


def test_rows_round_trip_and_select() -> None:
    rows = [ResultRow(Condition("clean"), "l2", 1, 0.5),
            ResultRow(Condition("degraded", "noise", 3), "l2", 1, 0.25, reused=True)]
    assert [ResultRow.from_dict(r.to_dict()) for r in rows] == rows
    assert rows[1].to_dict()["reused"] is True
    assert select(rows, query="degraded") == rows[1:]
    assert accuracy_of(rows, query="clean", metric="l2", k=1) == 0.5
    with pytest.raises(ValueError, match="unknown row field"):
        select(rows, querry="clean")
    with pytest.raises(LookupError):
        accuracy_of(rows, metric="l2")
    with pytest.raises(ValueError, match="accuracy"):
        ResultRow(Condition("clean"), "l2", 1, 1.5)
    with pytest.raises(ValueError, match="lacks"):
        ResultRow.from_dict({"query": "clean"})


def test_adapted_conditions_name_their_side() -> None:
    condition = Condition("adapted", "noise", 3, adaptation="both")
    assert condition.name == "noise-s3-adapted-both"
    with pytest.raises(ValueError, match="adaptation"):
        Condition("adapted", "noise", 3)
    with pytest.raises(ValueError, match="adaptation"):
        Condition("degraded", "noise", 3, adaptation="queries")
    with pytest.raises(ValueError, match="adaptation must be"):
        Condition("adapted", "noise", 3, adaptation="gallery")
    plan = plan_conditions(ExperimentConfig(restore="none", adapt=("queries", "both")))
    assert plan[-2:] == [Condition("adapted", "noise", 3, adaptation="queries"),
                         Condition("adapted", "noise", 3, adaptation="both")]


def test_batchnorm_adaptation_takes_the_statistics_of_the_new_images() -> None:
    from robustret.models.adaptation import adapt_batchnorm

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.norm = nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)

        def embed(self, x: Tensor) -> Tensor:
            return self.norm(self.conv(x)).mean(dim=(2, 3))

    model = Tiny().eval()
    images = torch.rand(16, 1, 4, 4) * 0.5 + 0.5
    adapted = adapt_batchnorm(model, images, batch_size=4)
    with torch.no_grad():
        features = model.conv(images)
    assert torch.allclose(adapted.norm.running_mean, features.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.equal(model.norm.running_mean, torch.zeros(2))  # the original is untouched
    assert not adapted.training and torch.equal(adapted.conv.weight, model.conv.weight)
    with pytest.raises(ValueError, match="no BatchNorm"):
        adapt_batchnorm(nn.Conv2d(1, 1, 1), images)


def test_measures_of_a_condition_are_chunked_over_queries(gallery, monkeypatch) -> None:
    import robustret.evaluation.pipeline as pipeline
    from robustret.retrieval.metrics import MEASURES, mean_average_precision

    images, labels = gallery
    g = torch.Generator().manual_seed(1)
    queries = (images + torch.rand(images.shape, generator=g) * 0.5).clamp(0, 1)
    index = _indexes(images, labels)
    whole = evaluate_condition(Condition("clean"), queries=queries, labels=labels, embed=_flat,
                               indexes=index, ks=(1, 2), measures=MEASURES)
    monkeypatch.setattr(pipeline, "SCORE_CHUNK", 1)  # one query per chunk: the same figures
    chunked = evaluate_condition(Condition("clean"), queries=queries, labels=labels,
                                 embed=_flat, indexes=index, ks=(1, 2), measures=MEASURES)
    assert chunked.rows == whole.rows
    _, full = index["l2"].search(_flat(queries), 4)  # the (Q, G) reference
    reference = mean_average_precision(labels[full], labels, torch.bincount(labels))
    assert select(whole.rows, metric="l2", measure="map")[0].value == pytest.approx(reference)
    assert select(whole.rows, metric="l2", measure="map")[0].k is None
    assert (select(whole.rows, metric="l2", measure="precision", k=1)[0].value
            == accuracy_of(whole.rows, metric="l2", measure="topk", k=1))
    assert set(whole.per_query) == {(r.metric, r.measure, r.k) for r in whole.rows}
    assert all(v.shape == (4,) for v in whole.per_query.values())


def test_gallery_side_searches_the_clean_queries(gallery) -> None:
    images, labels = gallery
    condition = Condition("degraded", "noise", 3)
    swapped = images[[2, 3, 0, 1]]  # a "degraded" gallery: every item looks like the other class
    result = evaluate_condition(condition, queries=images, labels=labels, embed=_flat,
                                indexes=_indexes(swapped, labels), ks=(1,),
                                degrade_side="gallery")
    assert result.images is images
    assert accuracy_of(result.rows, metric="l2", k=1) == 0.0
    assert all(row.degrade_side == "gallery" for row in result.rows)


def test_rows_of_other_measures_round_trip() -> None:
    clean = Condition("clean")
    rows = [ResultRow(clean, "l2", None, 0.7, measure="map", degrade_side="both"),
            ResultRow(clean, "l2", 5, 0.4, measure="precision")]
    assert [ResultRow.from_dict(r.to_dict()) for r in rows] == rows
    assert rows[0].to_dict()["value"] == rows[0].to_dict()["accuracy"] == 0.7
    with_precision = [ResultRow(clean, "l2", 5, 0.9), *rows]
    assert accuracy_of(with_precision, metric="l2", k=5) == 0.9  # top-k unless asked
    assert value_of(with_precision, measure="precision", k=5) == 0.4
    assert rows[0].value == 0.7 and select(rows, measure="map") == rows[:1]
    old = {"query": "clean", "degradation": None, "severity": None, "restorer": None,
           "metric": "l2", "k": 1, "accuracy": 0.5}  # a row of a run before measures
    assert ResultRow.from_dict(old) == ResultRow(clean, "l2", 1, 0.5)
    with pytest.raises(ValueError, match="has no k"):
        ResultRow(clean, "l2", 1, 0.5, measure="map")
    with pytest.raises(ValueError, match="measure"):
        ResultRow(clean, "l2", 1, 0.5, measure="ndcg")


@pytest.mark.parametrize(("fields", "valid"), [
    ({"measure": "mAP"}, "topk, precision, recall, map, map_at_r, r_precision"),
    ({"query": "restore"}, "clean, degraded, restored, adapted"),
    ({"metric": "L2"}, "l2, cosine"),
    ({"degrade_side": "queries"}, "query, gallery, both"),
    ({"adaptation": "gallery"}, "None, queries, both"),
])
def test_select_refuses_a_value_outside_a_closed_vocabulary(fields: dict, valid: str) -> None:
    rows = [ResultRow(Condition("clean"), "l2", 1, 0.9)]
    field = next(iter(fields))
    for read in (select, accuracy_of, value_of):
        with pytest.raises(ValueError, match=f"unknown {field} .*valid values: {valid}"):
            read(rows, **fields)


def test_select_takes_every_value_of_the_vocabularies() -> None:
    from robustret.evaluation.results import ADAPTATION_SIDES, DEGRADE_SIDES, QUERY_KINDS
    from robustret.retrieval.metrics import MEASURES
    from robustret.retrieval.ranking import METRIC_NAMES

    rows = [ResultRow(Condition("clean"), "l2", 1, 0.9)]
    for field, values in (("query", QUERY_KINDS), ("metric", METRIC_NAMES),
                          ("measure", MEASURES), ("degrade_side", DEGRADE_SIDES),
                          ("adaptation", (None, *ADAPTATION_SIDES))):
        for value in values:
            assert select(rows, **{field: value}) == [r for r in rows if getattr(r, field) == value]
    assert accuracy_of(rows, metric="l2", adaptation=None) == 0.9


class _Blind(_Recorder):
    uses_params = ()


class _Estimating(_Blind):
    knowledge = "estimated"


@pytest.mark.parametrize(("restorer_class", "knowledge"),
                         [(_Recorder, "oracle"), (_Blind, "blind"), (_Estimating, "estimated")])
def test_restored_rows_say_what_the_restorer_knew(gallery, restorer_class: type,
                                                  knowledge: str) -> None:
    """(rows did not say whether the restorer was told the drawn parameters)"""
    images, labels = gallery
    degraded = DegradedQueries(images, {"a": torch.arange(4.0)}, seed=0)
    restored = evaluate_condition(Condition("restored", "noise", 3, "r"), queries=images,
                                  labels=labels, embed=_flat, indexes=_indexes(images, labels),
                                  ks=(1,), degraded=degraded, restorer=restorer_class(images))
    assert {row.knowledge for row in restored.rows} == {knowledge}
    assert all(ResultRow.from_dict(row.to_dict()) == row for row in restored.rows)
    plain = evaluate_condition(Condition("degraded", "noise", 3), queries=images, labels=labels,
                               embed=_flat, indexes=_indexes(images, labels), ks=(1,),
                               degraded=degraded)
    assert {row.knowledge for row in plain.rows} == {None}


def test_knowledge_is_a_closed_vocabulary_of_restored_rows() -> None:
    restored = Condition("restored", "noise", 3, "median")
    with pytest.raises(ValueError, match="knowledge must be one of"):
        ResultRow(restored, "l2", 1, 0.5, knowledge="psychic")
    with pytest.raises(ValueError, match="only a restored row"):
        ResultRow(Condition("degraded", "noise", 3), "l2", 1, 0.5, knowledge="oracle")
    old = {**ResultRow(restored, "l2", 1, 0.5, knowledge="blind").to_dict()}
    del old["knowledge"]  # a row written before the field existed: not recorded
    assert ResultRow.from_dict(old).knowledge is None
    assert select([ResultRow(restored, "l2", 1, 0.5, knowledge="oracle")], knowledge="oracle")


def test_the_table_and_the_summary_name_what_each_restorer_knew() -> None:
    from robustret.report.files import table_lines
    from robustret.report.summary import summarise_run, summary_markdown

    rows = [ResultRow(Condition("clean"), "l2", 1, 0.9),
            ResultRow(Condition("degraded", "motion_blur", 3), "l2", 1, 0.5),
            ResultRow(Condition("restored", "motion_blur", 3, "wiener"), "l2", 1, 0.8,
                      knowledge="oracle"),
            ResultRow(Condition("restored", "motion_blur", 3, "estimated"), "l2", 1, 0.6,
                      knowledge="estimated")]
    table = "\n".join(table_lines(rows))
    assert "| wiener (oracle) |" in table and "| estimated (estimated) |" in table
    summary = summary_markdown(summarise_run(rows), metric="l2", k=1)
    assert "| wiener (oracle) |" in summary and "| estimated (estimated) |" in summary
