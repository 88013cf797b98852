"""The corrupted landmark benchmark end to end on fixtures whose ranking is known: flat grey
photos embedded by their mean colour (searched by L2), so every clean mAP below is worked out by
hand; then degradation, restoration, the exported query sets and their re-scoring, the CLI."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import restoration
from robustret.cli.experiment import main as experiment_main
from robustret.cli.landmarks import main as landmarks_main
from robustret.data.landmark_fixture import write_landmark_fixture
from robustret.evaluation.landmarks import LandmarkRow
from robustret.evaluation.results import Condition
from robustret.experiment.landmarks import LandmarkConfig, run_landmarks
from robustret.experiment.query_sets import load_query_set
from robustret.report.landmarks import summarise
from robustret.retrieval.relevance import Setup


def mean_colour(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C): a known embedding, so the ranking is the grey levels' order."""
    return images.mean(dim=(2, 3))


def _grey(path: Path, level: float, left: float | None = None) -> None:
    """A 32 x 32 grey JPEG; ``left`` paints the left half (x < 16) another grey."""
    image = np.full((32, 32, 3), round(255 * level), np.uint8)
    if left is not None:
        image[:, :16] = round(255 * left)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 100])


def revisited_fixture(root: Path) -> Path:
    """Gallery g0..g5 at grey 0.10 0.20 0.30 0.60 0.70 0.80. Query q0: its box (the left half)
    is 0.12, the rest 0.9; query q1: flat 0.74.

    q0 ranks g0 g1 g2 g3 g4 g5 (distances .02 .08 .18 .48 .58 .68), with easy [2], hard [4],
    junk [1]:
      E: positive g2, junk g1 g4 -> g0 g2 g3 g5: rank 1 -> AP (0/1 + 1/2)/2 = 1/4
      M: positives g2 g4, junk g1 -> g0 g2 g3 g4 g5: ranks 1, 3 -> (1/4 + (1/3 + 2/4)/2)/2 = 1/3
      H: positive g4, junk g1 g2 -> g0 g3 g4 g5: rank 2 -> (0/2 + 1/3)/2 = 1/6
    q1 ranks g4 g5 g3 g2 g1 g0 (distances .04 .06 .14 .44 .54 .64), easy [3, 5], hard [],
    junk [4]:
      E, M: positives g3 g5, junk g4 -> g5 g3 g2 g1 g0: ranks 0, 1 -> AP 1; H: no positive.
    mAP: E (1/4 + 1)/2 = 5/8; M (1/3 + 1)/2 = 2/3; H 1/6 (q1 left out).
    mP@1 E: q0 0/1 (k_q = 1), q1 1/1 -> 1/2; mP@5 E: q0 1/2 (k_q = 2), q1 2/2 -> 3/4.
    Without the crop q0 would be about 0.51 and rank g3 first.
    """
    for i, level in enumerate((0.10, 0.20, 0.30, 0.60, 0.70, 0.80)):
        _grey(root / "jpg" / f"g{i}.jpg", level)
    _grey(root / "jpg" / "q0.jpg", 0.9, left=0.12)
    _grey(root / "jpg" / "q1.jpg", 0.74)
    gnd = [{"bbx": [0.0, 0.0, 16.0, 32.0], "easy": [2], "hard": [4], "junk": [1]},
           {"bbx": [0.0, 0.0, 32.0, 32.0], "easy": [3, 5], "hard": [], "junk": [4]}]
    data = {"imlist": [f"g{i}" for i in range(6)], "qimlist": ["q0", "q1"], "gnd": gnd}
    (root / "gnd_roxford5k.pkl").write_bytes(pickle.dumps(data, protocol=2))
    return root


def classic_fixture(root: Path) -> Path:
    """Gallery (sorted names) a1 a2 b1 b2; a1's box (left half) is 0.2, its right half 0.8 (the
    whole photo about 0.5); a2 0.3, b1 0.6, b2 0.9. Query a_1 = a1's box, 0.2.

    The crop ranks a2 a1 b1 b2 (distances .1 .3 .4 .7); good [a1], ok [b2], no junk: positives
    at ranks 1 and 3.
      protocol AP: ((0/1 + 1/2)/2 + (1/3 + 2/4)/2) / 2 = (1/4 + 5/12) / 2 = 1/3
      plain AP: (1/2 + 2/4) / 2 = 1/2; 11-point: precision 1/2 at every recall -> 1/2
    (the uncropped photo would rank a1 first: protocol AP 17/24).
    """
    _grey(root / "jpg" / "a1.jpg", 0.8, left=0.2)
    for name, level in (("a2", 0.3), ("b1", 0.6), ("b2", 0.9)):
        _grey(root / "jpg" / f"{name}.jpg", level)
    gt = root / "gt"
    gt.mkdir(parents=True)
    (gt / "a_1_query.txt").write_text("oxc1_a1 0 0 16 32\n")
    for which, names in (("good", "a1\n"), ("ok", "b2\n"), ("junk", "")):
        (gt / f"a_1_{which}.txt").write_text(names)
    return root


def _clean(result, setup: Setup):  # type: ignore[no-untyped-def]
    (row,) = [r for r in result.rows if r.condition.query == "clean" and r.setup is setup]
    return row


def test_revisited_clean_map_equals_the_hand_computed_value(tmp_path: Path) -> None:
    root = revisited_fixture(tmp_path / "bench")
    config = LandmarkConfig(f"roxford5k:{root}", out_dir=tmp_path / "out", degradations=("noise",),
                            severities=(3,), restore=("classical",), image_size=16, metric="l2")
    result = run_landmarks(config, embed=mean_colour)
    easy, medium, hard = (_clean(result, s) for s in (Setup.EASY, Setup.MEDIUM, Setup.HARD))
    assert easy.map == pytest.approx(5 / 8, abs=1e-9)
    assert medium.map == pytest.approx(2 / 3, abs=1e-9)
    assert hard.map == pytest.approx(1 / 6, abs=1e-9) and hard.empty == 1
    assert easy.precision[1] == pytest.approx(1 / 2) and easy.precision[5] == pytest.approx(3 / 4)
    kinds = {(r.condition.query, r.condition.restorer) for r in result.rows}
    assert kinds == {("clean", None), ("degraded", None), ("restored", "median")}
    header, rule, *lines = result.table.splitlines()
    assert header.split()[4:7] == ["mAP", "E", "mAP"] and "mP@10 H" in header
    assert lines[0].split()[4:7] == ["62.50", "66.67", "16.67"]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["rows"][0]["map"] == pytest.approx(5 / 8)
    assert {s["queries"] for s in saved["summary"]} == {"degraded", "median"}
    assert "Summary over corruptions" in (tmp_path / "out" / "results.md").read_text()


def test_classic_clean_map_equals_the_hand_computed_value(tmp_path: Path) -> None:
    root = classic_fixture(tmp_path / "bench")
    config = LandmarkConfig(f"oxford5k:{root}", out_dir=tmp_path / "out",
                            degradations=("motion_blur",), severities=(2, 4),
                            restore=("classical",), image_size=16, metric="l2")
    result = run_landmarks(config, embed=mean_colour)
    row = _clean(result, Setup.CLASSIC)
    assert row.map == pytest.approx(1 / 3, abs=1e-9)
    assert row.map_plain == pytest.approx(1 / 2) and row.map_11 == pytest.approx(1 / 2)
    header, _, clean, *rest = result.table.splitlines()
    assert header.split()[4:] == ["mAP", "mAP", "plain", "mAP", "11-pt"]
    assert clean.split()[4:] == ["33.33", "50.00", "50.00"]
    restored = [r for r in result.rows if r.condition.query == "restored"]
    assert [(r.condition.severity, r.condition.restorer, r.knowledge) for r in restored] == [
        (2, "wiener", "oracle"), (4, "wiener", "oracle")]
    assert sum("wiener (oracle)" in line for line in rest) == 2


def test_a_saved_restorer_is_applied_to_every_degradation(tmp_path: Path) -> None:
    root = revisited_fixture(tmp_path / "bench")
    tiny = restoration.build("dae", channels=3, widths=(4, 4, 4, 4, 4))
    path = restoration.save(tiny, tmp_path / "tiny-dae.pt")
    config = LandmarkConfig(f"roxford5k:{root}", out_dir=tmp_path / "out",
                            degradations=("noise", "lowres"), restore=("none",),
                            restorer_files=(path,), image_size=32, metric="l2")
    result = run_landmarks(config, embed=mean_colour)
    restored = {(r.condition.degradation, r.condition.restorer, r.knowledge)
                for r in result.rows if r.condition.query == "restored"}
    assert restored == {("noise", "tiny-dae", "blind"), ("lowres", "tiny-dae", "blind")}
    with pytest.raises(ValueError, match="restorer file"):
        LandmarkConfig(f"roxford5k:{root}", restorer_files=(tmp_path / "none.pt",))
    with pytest.raises(ValueError, match="--restorer-file"):
        LandmarkConfig(f"roxford5k:{root}", restore=("dae",))


def test_exported_sets_rescore_to_the_same_rows(tmp_path: Path) -> None:
    root = revisited_fixture(tmp_path / "bench")
    common = dict(degradations=("gaussian_noise", "lowres"), severities=(2,), restore=("none",),
                  image_size=16, metric="l2")
    made = run_landmarks(LandmarkConfig(f"roxford5k:{root}", out_dir=tmp_path / "a",
                                        export=True, **common), embed=mean_colour)
    sets = tmp_path / "a" / "queries"
    assert sorted(p.name for p in sets.iterdir()) == ["gaussian_noise-s2", "lowres-s2"]
    exported = load_query_set(sets / "lowres-s2")
    assert exported.manifest.class_names == ["q0", "q1"]
    assert exported.manifest.dataset == f"roxford5k:{root}"
    again = run_landmarks(LandmarkConfig(f"roxford5k:{root}", out_dir=tmp_path / "b",
                                         queries_dir=sets, **common), embed=mean_colour)
    assert again.rows == made.rows
    with pytest.raises(ValueError, match="seed"):  # a set drawn with another seed is refused
        run_landmarks(LandmarkConfig(f"roxford5k:{root}", out_dir=tmp_path / "c",
                                     queries_dir=sets, seed=1, **common), embed=mean_colour)


def test_command_line_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = write_landmark_fixture(tmp_path / "fx", "rparis6k", landmarks=2)
    status = landmarks_main(["--dataset", f"rparis6k:{root}", "--degrade", "noise",
                             "--backbone", "resnet18", "--image-size", "32", "--device", "cpu",
                             "--out", str(tmp_path / "out"), "--export", "-q"])
    out = capsys.readouterr().out
    assert status == 0
    assert "NOTE: untrained retriever" in out and "mAP E" in out and "mP@5 M" in out
    assert "summary over corruptions" in out and "mCE vs clean" in out
    assert (tmp_path / "out" / "queries" / "noise-s3" / "manifest.json").is_file()
    assert "untrained" in (tmp_path / "out" / "results.md").read_text()


def test_a_weights_file_makes_it_a_measurement(tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    torchvision = pytest.importorskip("torchvision")
    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    root = write_landmark_fixture(tmp_path / "fx", "oxford5k", landmarks=2)
    assert landmarks_main(["--dataset", f"oxford5k:{root}", "--degrade", "lowres",
                           "--backbone", "resnet18", "--weights", str(weights),
                           "--image-size", "32", "--device", "cpu", "--out",
                           str(tmp_path / "out"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "NOTE" not in out and "mAP 11-pt" in out
    meta = json.loads((tmp_path / "out" / "results.json").read_text())["meta"]
    assert meta["retriever"] == f"resnet18 from {weights}"


@pytest.mark.parametrize("flags, says", [
    (["--backbone", "nope"], "unknown backbone 'nope'"),
    (["--weights", "WEIGHTS"], "cannot read weights file"),
    (["--queries", "nowhere"], "query set folder nowhere does not exist"),
    (["--restorer-file", "WEIGHTS"], "bad.pth is corrupt"),
])
def test_bad_retriever_or_sets_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                            flags: list[str], says: str) -> None:
    (tmp_path / "bad.pth").write_text("junk")
    root = write_landmark_fixture(tmp_path / "fx", "roxford5k", landmarks=1)
    flags = [str(tmp_path / "bad.pth") if f == "WEIGHTS" else f for f in flags]
    assert landmarks_main(["--dataset", f"roxford5k:{root}", "--out", str(tmp_path / "o"),
                           "--device", "cpu", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert says in err[-1] and "Traceback" not in "".join(err)


def test_bad_specs_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert landmarks_main(["--dataset", f"roxford5k:{tmp_path}/none", "--out",
                           str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert experiment_main(["--dataset", f"roxford5k:{tmp_path}", "--out",
                            str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "python -m robustret.experiment.landmarks --dataset roxford5k:" in err
    assert len(err.strip().splitlines()) == 1


def _row(query: str, degradation: str | None, severity: int | None, restorer: str | None,
         value: float) -> LandmarkRow:
    return LandmarkRow(Condition(query, degradation, severity, restorer), Setup.EASY, value,
                       value, value, {1: value}, 1, 0)


def test_summary_mean_and_corruption_error() -> None:
    # clean 0.8 (error 0.2). noise s1 0.6, s3 0.4 -> CE (0.4 + 0.6) / (2 * 0.2) = 2.5;
    # blur s1 0.7 -> CE 0.3 / 0.2 = 1.5; degraded mCE (2.5 + 1.5) / 2 = 2, mean mAP 1.7 / 3.
    # median restores noise only: 0.7, 0.5 -> mean 0.6 against the degraded 0.5 on the same
    # two; CE (0.3 + 0.5) / 0.4 = 2. wiener restores blur: 0.75 -> CE 1.25. Pooled restored:
    # mean (0.7 + 0.5 + 0.75) / 3 = 0.65, mCE (2 + 1.25) / 2 = 1.625.
    rows = [_row("clean", None, None, None, 0.8),
            _row("degraded", "noise", 1, None, 0.6), _row("degraded", "noise", 3, None, 0.4),
            _row("degraded", "blur", 1, None, 0.7),
            _row("restored", "noise", 1, "median", 0.7),
            _row("restored", "noise", 3, "median", 0.5),
            _row("restored", "blur", 1, "wiener", 0.75)]
    got = {s.method: s for s in summarise(rows)}
    assert list(got) == ["degraded", "restored", "median", "wiener"]
    assert got["degraded"].mean_map == pytest.approx(1.7 / 3)
    assert got["degraded"].mce == pytest.approx(2.0)
    assert got["median"].mean_map == pytest.approx(0.6)
    assert got["median"].degraded_map == pytest.approx(0.5)
    assert got["median"].mce == pytest.approx(2.0)
    assert got["wiener"].mce == pytest.approx(1.25)
    assert got["restored"].mean_map == pytest.approx(0.65)
    assert got["restored"].mce == pytest.approx(1.625)
    perfect = summarise([_row("clean", None, None, None, 1.0), rows[1]])
    assert perfect[0].mce is None  # no clean error: undefined


def test_the_gallery_embeddings_are_cached_and_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("ROBUSTRET_CACHE", str(tmp_path / "cache"))
    root = write_landmark_fixture(tmp_path / "fx", "roxford5k", landmarks=2)
    config = LandmarkConfig(f"roxford5k:{root}", out_dir=tmp_path / "out", degradations=("noise",),
                            restore=("none",), backbone="resnet18", image_size=32, device="cpu")
    first = run_landmarks(config)
    (cache,) = (tmp_path / "cache" / "landmarks").glob("gallery-*.npy")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the gallery was embedded again")

    with monkeypatch.context() as patch:
        patch.setattr("robustret.experiment.landmarks.gallery.iter_image_batches", refuse)
        again = run_landmarks(config)
    assert again.rows == first.rows
    meta = json.loads((tmp_path / "out" / "results.json").read_text())["meta"]
    assert meta["gallery_embeddings"] == "reused from the cache"
    cache.write_bytes(cache.read_bytes()[:-8])  # damaged: one warning, embedded again
    assert run_landmarks(config).rows == first.rows
    assert "embedding the gallery again" in caplog.text
    other = LandmarkConfig(f"roxford5k:{root}", out_dir=tmp_path / "out", degradations=("noise",),
                           restore=("none",), backbone="resnet18", image_size=32, seed=1)
    run_landmarks(other)  # another untrained draw: another key
    assert len(list((tmp_path / "cache" / "landmarks").glob("gallery-*.npy"))) == 2
