"""Readers of the landmark benchmarks' own files: classic ground-truth folders, the revisited
pickle (and its refusal of anything but plain values), distractors, box crops."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from robustret.cli.data import main as data_main
from robustret.data.landmark_fixture import write_landmark_fixture
from robustret.data.landmark_images import crop_box, load_images
from robustret.data.landmarks import (
    ClassicTruth,
    LandmarkFormat,
    RevisitedTruth,
    load_landmarks,
    read_plain_pickle,
)


@pytest.mark.parametrize("form", ["oxford5k", "paris6k"])
def test_classic_folder_is_read_exactly(tmp_path: Path, form: str) -> None:
    root = write_landmark_fixture(tmp_path / form, form)
    bench = load_landmarks(f"{form}:{root}")
    prefix = "paris_" if form == "paris6k" else ""
    assert bench.format is LandmarkFormat(form) and bench.distractors == 0
    # sorted names: bridge 1-4, hall 1-4, tower 1-4
    assert bench.gallery_names[:5] == tuple(
        f"{prefix}{n}" for n in ("bridge_000001", "bridge_000002", "bridge_000003",
                                 "bridge_000004", "hall_000001"))
    assert len(bench.gallery_files) == 12 and all(f.is_file() for f in bench.gallery_files)
    assert [q.name for q in bench.queries] == ["bridge_1", "hall_1", "tower_1"]
    hall = bench.queries[1]
    assert hall.truth == ClassicTruth(good=(4, 5), ok=(6,), junk=(7,))
    assert hall.file == bench.gallery_files[4]  # the query photo is a gallery image
    text = (root / "gt" / "hall_1_query.txt").read_text().split()
    assert text[0] == ("oxc1_hall_000001" if form == "oxford5k" else "paris_hall_000001")
    assert hall.box == tuple(float(v) for v in text[1:])


def test_revisited_pickle_is_read_exactly(tmp_path: Path) -> None:
    root = write_landmark_fixture(tmp_path / "r", "roxford5k", landmarks=2, per_landmark=5)
    bench = load_landmarks(f"roxford5k:{root}")
    assert bench.gallery_names == tuple(f"{n}_{i:06d}" for n in ("tower", "bridge")
                                        for i in range(1, 6))
    assert [q.name for q in bench.queries] == ["tower_query", "bridge_query"]
    assert bench.queries[1].truth == RevisitedTruth(easy=(5, 6), hard=(7,), junk=(8, 9))
    assert bench.queries[0].file == root / "jpg" / "tower_query.jpg"
    saved = pickle.loads((root / "gnd_roxford5k.pkl").read_bytes())
    assert bench.queries[0].box == tuple(saved["gnd"][0]["bbx"])


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("payload, named", [
    (_Evil(), "system"),
    ({"imlist": np.arange(3), "qimlist": [], "gnd": []}, "numpy"),
])
def test_the_unpickler_refuses_any_global(tmp_path: Path, payload: object, named: str) -> None:
    path = tmp_path / "gnd_roxford5k.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(ValueError, match=rf"refused global \S*{named}"):
        read_plain_pickle(path)
    (tmp_path / "jpg").mkdir()
    with pytest.raises(ValueError, match="refused global"):
        load_landmarks(f"roxford5k:{tmp_path}")


def test_plain_values_pass_the_unpickler(tmp_path: Path) -> None:
    value = {"a": [1, 2.5, "x", None, True, (3, 4)], "b": {"c": []}}
    path = tmp_path / "plain.pkl"
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        path.write_bytes(pickle.dumps(value, protocol=protocol))
        assert read_plain_pickle(path) == value


def test_malformed_ground_truth_is_named(tmp_path: Path) -> None:
    root = write_landmark_fixture(tmp_path / "o", "oxford5k")
    (root / "gt" / "hall_1_ok.txt").write_text("hall_000003\nno_such_image\n")
    with pytest.raises(ValueError, match=r"hall_1_ok.txt:2: image 'no_such_image'"):
        load_landmarks(f"oxford5k:{root}")
    (root / "gt" / "hall_1_ok.txt").unlink()
    with pytest.raises(FileNotFoundError, match="hall_1_ok.txt is missing"):
        load_landmarks(f"oxford5k:{root}")
    with pytest.raises(FileNotFoundError, match="ground-truth folder"):
        load_landmarks(f"oxford5k:{root}", gt_dir=tmp_path / "nowhere")
    rev = write_landmark_fixture(tmp_path / "r", "rparis6k")
    data = pickle.loads((rev / "gnd_rparis6k.pkl").read_bytes())
    data["gnd"][0]["hard"] = [99]
    (rev / "gnd_rparis6k.pkl").write_bytes(pickle.dumps(data))
    with pytest.raises(ValueError, match=r"gnd\[0\]\['hard'\] holds index 99"):
        load_landmarks(f"rparis6k:{rev}")


def test_distractors_come_after_the_benchmark(tmp_path: Path) -> None:
    root = write_landmark_fixture(tmp_path / "r", "roxford5k")
    plain = tmp_path / "plain" / "sub"
    plain.mkdir(parents=True)
    listed = tmp_path / "r1m"
    (listed / "jpg" / "aa").mkdir(parents=True)
    image = np.zeros((8, 8, 3), np.uint8)
    for folder, name in ((plain, "x.jpg"), (plain, "y.jpg"), (listed / "jpg" / "aa", "z.jpg")):
        cv2.imwrite(str(folder / name), image)
    (listed / "revisitop1m.txt").write_text("aa/z.jpg\n")
    bench = load_landmarks(f"roxford5k:{root}", distractors=tmp_path / "plain")
    assert bench.distractors == 2 and len(bench.gallery_files) == 14
    assert bench.gallery_names[12:] == ("sub/x", "sub/y")
    assert bench.queries[0].truth.easy == (0, 1)  # indices of the benchmark unchanged
    r1m = load_landmarks(f"roxford5k:{root}", distractors=listed)
    assert r1m.gallery_files[12:] == (listed / "jpg" / "aa" / "z.jpg",)


def test_crop_rounds_like_pil_and_clips() -> None:
    image = np.arange(10 * 12).reshape(10, 12)
    assert crop_box(image, (1.4, 2.6, 5.5, 7.0)).shape == (4, 5)  # x 1..6 (round(5.5) = 6)
    assert (crop_box(image, (1.4, 2.6, 5.5, 7.0)) == image[3:7, 1:6]).all()
    assert crop_box(image, (-3, -1, 50, 50)).shape == (10, 12)
    with pytest.raises(ValueError, match="holds no pixel"):
        crop_box(image, (20, 0, 30, 5))


def test_queries_are_cropped_to_their_box(tmp_path: Path) -> None:
    photo = np.full((32, 48, 3), 230, np.uint8)
    photo[8:24, 16:32] = 20  # the box holds the dark block only
    path = tmp_path / "q.png"
    cv2.imwrite(str(path), photo)
    cropped = load_images([path], 16, boxes=[(16, 8, 32, 24)])
    whole = load_images([path], 16)
    assert cropped.shape == (1, 3, 16, 16)
    assert float(cropped.max()) == pytest.approx(20 / 255, abs=1e-6)
    assert float(whole.mean()) > 0.6
    gray = load_images([path], 16, "gray", boxes=[(16, 8, 32, 24)])
    assert gray.shape == (1, 1, 16, 16)


def test_the_fixture_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "fx"
    assert data_main(["landmark-fixture", str(out), "--format", "rparis6k", "--landmarks", "2",
                      "--per-landmark", "5"]) == 0
    bench = load_landmarks(f"rparis6k:{out}")
    assert len(bench.gallery_files) == 10 and len(bench.queries) == 2
    assert data_main(["landmark-fixture", str(out), "--format", "rparis6k"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-empty folder" in err[0]
