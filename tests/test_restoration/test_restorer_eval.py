"""robustret.cli.restorer_eval: PSNR / SSIM rows of degraded and restored queries, and its CLI."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import restoration
import restoration.evaluate
from robustret.cli import restorer_eval
from robustret.cli.restorer_eval import QualityRow, evaluate, find_models, format_table
from robustret.core.checks import ConfigError


def _images(n: int = 8, size: int = 32) -> torch.Tensor:
    low = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    return F.interpolate(low, size=size, mode="bilinear", align_corners=False).clamp(0.1, 0.9)


class _Half(restoration.Restorer):
    """Every pixel 0.5, whatever the input: a restorer with a known PSNR (test only)."""

    def restore_raw(self, images: torch.Tensor) -> torch.Tensor:
        return torch.full_like(images, 0.5)


def test_identity_keeps_the_degraded_quality_and_median_cleans_salt_and_pepper() -> None:
    rows = evaluate(_images(), ["salt_pepper"], ["identity", "median"])
    assert [(r.degradation, r.restorer) for r in rows] == [("salt_pepper", "identity"),
                                                          ("salt_pepper", "median")]
    identity, median = rows
    assert identity.psnr_restored == identity.psnr_degraded
    assert identity.ssim_restored == identity.ssim_degraded
    assert median.psnr_degraded == identity.psnr_degraded
    assert median.psnr_gain > 5 and median.ssim_restored > median.ssim_degraded


def test_a_known_case_constant_images_against_a_constant_restorer() -> None:
    clean = torch.full((8, 1, 32, 32), 0.3)
    with restoration.RESTORERS.temporarily("test_half", _Half):
        (row,) = evaluate(clean, ["lowres"], ["test_half"])
    # block means of a constant image are that constant: the degraded queries are exact
    assert math.isinf(row.psnr_degraded) and row.ssim_degraded == pytest.approx(1.0, abs=1e-6)
    # MSE (0.5 - 0.3)^2 = 0.04 -> 10 log10(1 / 0.04) dB; SSIM's luminance term only (the
    # float32 variances of constant windows are off by ~1e-8 against C2 = 9e-4: abs 1e-4)
    assert row.psnr_restored == pytest.approx(10 * math.log10(1 / 0.04), abs=1e-4)
    c1 = 0.01 ** 2
    assert row.ssim_restored == pytest.approx((2 * 0.5 * 0.3 + c1) / (0.5 ** 2 + 0.3 ** 2 + c1),
                                              abs=1e-4)


def test_a_degradation_gives_the_same_queries_whatever_else_is_evaluated() -> None:
    alone = evaluate(_images(), ["speckle"], ["median"], seed=3)
    after = evaluate(_images(), ["lowres", "speckle"], ["median"], seed=3)
    assert alone == after[1:]
    assert evaluate(_images(), ["speckle"], ["median"], seed=4) != alone


def test_wiener_gets_the_drawn_blur() -> None:
    (row,) = evaluate(_images(), ["motion_blur"], ["wiener"], severity=5)
    assert row.psnr_gain > 1


def test_networks_run_on_the_degradations_they_serve(tmp_path) -> None:
    dae = restoration.build("dae", widths=(4, 4, 4, 4, 4))
    restoration.save(dae, tmp_path / "dae_noise" / "last.pt", degradation="noise")
    srcnn = restoration.build("srcnn", widths=(4, 4, 4, 4))
    restoration.save(srcnn, tmp_path / "srcnn_lowres" / "last.pt", degradation="lowres")
    models = find_models([tmp_path])
    assert [p.parent.name for p in models] == ["dae_noise", "srcnn_lowres"]
    rows = evaluate(_images(), ["gaussian_noise", "lowres", "motion_blur"], [], models)
    assert [(r.degradation, r.restorer) for r in rows] == [
        ("gaussian_noise", "dae[dae_noise]"), ("lowres", "srcnn[srcnn_lowres]")]
    every = evaluate(_images(), ["motion_blur"], [], models, all_pairs=True)
    assert [r.restorer for r in every] == ["dae[dae_noise]", "srcnn[srcnn_lowres]"]


def test_bad_names_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="dae are networks and need trained weights"):
        evaluate(_images(), ["noise"], ["dae"])
    with pytest.raises(ConfigError, match="unknown restorer 'mediann'"):
        evaluate(_images(), ["noise"], ["mediann"])
    with pytest.raises(ConfigError, match="unknown degradation.*frost"):
        evaluate(_images(), ["frost"], ["median"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_models(["/nonexistent/runs"])


def test_format_table_shows_the_gain() -> None:
    row = QualityRow("noise", "median", 20.0, 25.5, 0.3, 0.8)
    table = format_table([row]).splitlines()
    assert table[0].startswith("| degradation | restorer | PSNR degraded")
    assert table[2] == "| noise | median | 20.00 | 25.50 | +5.50 | 0.3000 | 0.8000 |"
    assert row.as_dict()["psnr_restored"] == 25.5


def test_cli_prints_the_table(monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    from robustret import data

    bundle = SimpleNamespace(queries=SimpleNamespace(images=_images(12)))
    monkeypatch.setattr(data, "load", lambda spec, **kwargs: bundle)
    argv = ["--queries", "8", "--degrade", "salt_pepper", "--restorers", "identity", "median",
            "--device", "cpu"]
    assert restorer_eval.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and out[3].startswith("| salt_pepper | median |")
    assert restoration.evaluate.main(["--degrade", "frost", "--device", "cpu"]) == 2
    assert "unknown degradation(s) frost" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # networks are not offered without weights
        restorer_eval.build_parser().parse_args(["--restorers", "dae"])


def test_cli_degrade_defaults_to_the_study_and_takes_groups(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from degradations.groups import GROUPS
    from robustret import data

    bundle = SimpleNamespace(queries=SimpleNamespace(images=_images(4)))
    monkeypatch.setattr(data, "load", lambda spec, **kwargs: bundle)
    asked = []
    monkeypatch.setattr(restorer_eval, "evaluate",
                        lambda images, names, *args, **kwargs: asked.append(list(names)) or [])
    assert restorer_eval.main(["--device", "cpu"]) == 0
    assert restorer_eval.main(["--degrade", "held-out", "noise", "--device", "cpu"]) == 0
    # the default is the six the study had registered, in the order they had
    assert asked == [sorted(GROUPS["study"]), [*GROUPS["held-out"], "noise"]]

