"""Summary scores of a run: per family, corruption average (mPC / rPC), error ratio (mCE)."""

from __future__ import annotations

import pytest

from robustret.evaluation.results import Condition, ResultRow
from robustret.report.summary import ALL, summarise_run, summary_markdown


def _rows(shift: float = 0.0) -> list[ResultRow]:
    rows = [ResultRow(Condition("clean"), "l2", 1, 0.8)]
    values = {("gaussian_noise", 1): 0.6, ("gaussian_noise", 3): 0.4, ("lowres", 1): 0.5,
              ("lowres", 3): 0.3}
    for (name, severity), value in values.items():
        rows.append(ResultRow(Condition("degraded", name, severity), "l2", 1, value + shift))
        rows.append(ResultRow(Condition("restored", name, severity, "dae"), "l2", 1,
                              value + shift + 0.1))
    return rows


def test_family_means_corruption_average_and_ratio_to_clean() -> None:
    import degradations

    summary = summarise_run(_rows())
    degraded = {s.family: s for s in summary if s.method == "degraded"}
    noise, res = degradations.family("gaussian_noise"), degradations.family("lowres")
    assert degraded[noise].mean == pytest.approx(0.5)
    assert degraded[res].mean == pytest.approx(0.4)
    assert degraded[ALL].mean == pytest.approx(0.45)  # mPC
    assert degraded[ALL].relative == pytest.approx(0.45 / 0.8)  # rPC
    assert degraded[ALL].error_ratio is None  # no reference
    restored = {s.family: s for s in summary if s.method == "dae"}
    assert restored[ALL].mean == pytest.approx(0.55)
    assert [s.method for s in summary][0] == "degraded"


def test_error_ratio_against_a_reference_run() -> None:
    summary = summarise_run(_rows(shift=0.1), reference=_rows())
    degraded = {s.family: s for s in summary if s.method == "degraded" and s.scope != "group"}
    # noise: errors (0.3 + 0.5) vs (0.4 + 0.6); lowres: (0.4 + 0.6) vs (0.5 + 0.7)
    ratios = [0.8 / 1.0, 1.0 / 1.2]
    assert sorted(s.error_ratio for f, s in degraded.items() if f != ALL) == pytest.approx(
        sorted(ratios))
    assert degraded[ALL].error_ratio == pytest.approx(sum(ratios) / 2)  # mCE
    same = {s.family: s for s in summarise_run(_rows(), reference=_rows())
            if s.method == "degraded"}
    assert same[ALL].error_ratio == pytest.approx(1.0)
    text = summary_markdown(summary, metric="l2", measure="topk", k=1)
    assert "mCE ratio" in text and "| degraded |" in text and "| dae |" in text
    assert summary[0].to_dict()["method"] == "degraded"


def test_named_groups_are_summarised_where_they_differ_from_the_whole_run() -> None:
    """gaussian_noise is in the study's six and in ImageNet-C's fifteen, lowres only in the
    study's: an imagenet-c column (the noise alone), no study column (the whole run)."""
    summary = summarise_run(_rows(shift=0.1), reference=_rows())
    groups = {s.family: s for s in summary if s.method == "degraded" and s.scope == "group"}
    assert set(groups) == {"imagenet-c"}
    assert groups["imagenet-c"].mean == pytest.approx(0.6)
    assert groups["imagenet-c"].degradations == ["gaussian_noise"]
    assert groups["imagenet-c"].error_ratio == pytest.approx(0.8 / 1.0)
    text = summary_markdown(summary, metric="l2", measure="topk", k=1)
    header = next(line for line in text.splitlines() if line.startswith("| method"))
    assert "group imagenet-c" in header and "group study" not in header
    degraded_line = next(line for line in text.splitlines() if line.startswith("| degraded"))
    assert "| 60.00 |" in degraded_line
    old = {**groups["imagenet-c"].to_dict(), "family": ALL}
    del old["scope"]  # a record written before scope existed
    assert type(groups["imagenet-c"])(**old).scope == ALL


def test_seen_and_unseen_degradations_are_summarised_apart() -> None:
    """A restorer trained on the noise mixture, scored on a noise and on fog: the noise is
    seen, fog unseen; the degraded queries' retriever saw neither (no split for them)."""
    rows = [ResultRow(Condition("clean"), "l2", 1, 0.8)]
    for name, degraded, restored in (("gaussian_noise", 0.4, 0.7), ("fog", 0.5, 0.45)):
        rows.append(ResultRow(Condition("degraded", name, 3), "l2", 1, degraded))
        rows.append(ResultRow(Condition("restored", name, 3, "dae"), "l2", 1, restored,
                              knowledge="blind",
                              restorer_seen=("gaussian_noise", "noise", "salt_pepper")))
    summary = summarise_run(rows)
    parts = {(s.method, s.scope): s for s in summary if s.scope in ("seen", "unseen")}
    assert set(parts) == {("dae", "seen"), ("dae", "unseen")}
    assert parts["dae", "seen"].degradations == ["gaussian_noise"]
    assert parts["dae", "seen"].mean == pytest.approx(0.7)
    assert parts["dae", "unseen"].mean == pytest.approx(0.45)
    text = summary_markdown(summary, metric="l2", measure="topk", k=1)
    dae = next(line for line in text.splitlines() if line.startswith("| dae"))
    assert "| seen | unseen |" in text and "| 70.00 | 45.00 |" in dae
    with pytest.raises(ValueError, match="only a restored row"):
        ResultRow(Condition("degraded", "fog", 3), "l2", 1, 0.5, restorer_seen=("fog",))


def test_a_restored_row_has_seen_what_its_retriever_saw() -> None:
    """``auto`` learned nothing, but its retriever was robust-trained on Gaussian noise: the
    restored noise row is seen, fog unseen, for the degraded and the restored queries alike."""
    rows = [ResultRow(Condition("clean"), "l2", 1, 0.8)]
    for name, degraded, restored in (("gaussian_noise", 0.6, 0.7), ("fog", 0.5, 0.5)):
        rows.append(ResultRow(Condition("degraded", name, 3), "l2", 1, degraded,
                              retriever_seen=("gaussian_noise",)))
        rows.append(ResultRow(Condition("restored", name, 3, "auto"), "l2", 1, restored,
                              knowledge="estimated", retriever_seen=("gaussian_noise",)))
    parts = {(s.method, s.scope): s for s in summarise_run(rows)
             if s.scope in ("seen", "unseen")}
    assert set(parts) == {(m, p) for m in ("degraded", "auto") for p in ("seen", "unseen")}
    assert parts["auto", "seen"].degradations == ["gaussian_noise"]
    assert parts["auto", "seen"].mean == pytest.approx(0.7)
    assert parts["auto", "unseen"].degradations == ["fog"]


def _run(clean: float, values: dict[tuple[str, int], float]) -> list[ResultRow]:
    return [ResultRow(Condition("clean"), "l2", 1, clean),
            *(ResultRow(Condition("degraded", name, severity), "l2", 1, value)
              for (name, severity), value in values.items())]


def test_relative_corruption_error_counts_only_the_loss_from_clean() -> None:
    """Hendrycks & Dietterich's relative CE: per family sum(clean - value) over its pairs,
    divided by the reference's sum(clean_ref - value_ref); relative mCE their mean. This run
    is better clean (0.9 vs 0.8) and loses as much as the reference on the noise."""
    run = _run(0.9, {("gaussian_noise", 1): 0.7, ("gaussian_noise", 3): 0.5,
                     ("lowres", 1): 0.6, ("lowres", 3): 0.3})
    reference = _run(0.8, {("gaussian_noise", 1): 0.6, ("gaussian_noise", 3): 0.4,
                           ("lowres", 1): 0.5, ("lowres", 3): 0.3})
    summary = summarise_run(run, reference=reference)
    scores = {s.family: s for s in summary if s.scope in ("family", ALL)}
    import degradations

    noise, res = degradations.family("gaussian_noise"), degradations.family("lowres")
    # noise: (0.2 + 0.4) / (0.2 + 0.4) = 1; lowres: (0.3 + 0.6) / (0.3 + 0.5) = 1.125
    assert scores[noise].relative_error_ratio == pytest.approx(1.0)
    assert scores[res].relative_error_ratio == pytest.approx(1.125)
    assert scores[ALL].relative_error_ratio == pytest.approx(1.0625)  # relative mCE
    # mCE on the same rows: noise (0.3 + 0.5) / (0.4 + 0.6), lowres (0.4 + 0.7) / (0.5 + 0.7)
    assert scores[ALL].error_ratio == pytest.approx((0.8 + 1.1 / 1.2) / 2)
    group = next(s for s in summary if s.scope == "group" and s.family == "imagenet-c")
    assert group.relative_error_ratio == pytest.approx(1.0)  # the noise alone
    text = summary_markdown(summary, metric="l2", measure="topk", k=1)
    header = next(line for line in text.splitlines() if line.startswith("| method"))
    assert header.endswith("| mCE ratio | relative mCE |")
    line = next(line for line in text.splitlines() if line.startswith("| degraded"))
    assert line.endswith("| 0.858 | 1.062 |")


def test_relative_corruption_error_needs_both_clean_rows_and_a_reference_loss() -> None:
    values = {("gaussian_noise", 3): 0.5}
    no_clean = _run(0.8, {("gaussian_noise", 3): 0.4})[1:]  # a reference without its clean row
    total = next(s for s in summarise_run(_run(0.9, values), reference=no_clean)
                 if s.family == ALL)
    assert total.error_ratio == pytest.approx(0.5 / 0.6) and total.relative_error_ratio is None
    lossless = _run(0.8, {("gaussian_noise", 3): 0.8})  # the reference loses nothing
    total = next(s for s in summarise_run(_run(0.9, values), reference=lossless)
                 if s.family == ALL)
    assert total.relative_error_ratio is None
    old = total.to_dict()
    del old["relative_error_ratio"]  # a record written before the field existed
    assert type(total)(**old).relative_error_ratio is None
