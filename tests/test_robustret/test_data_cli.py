"""``python -m robustret.data info``."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import matplotlib.image
import pytest

from robustret.cli.data import main


def test_info_synthetic_with_preview(tmp_path, capsys, monkeypatch) -> None:
    png = tmp_path / "preview.png"
    # a tiny synthetic set through the same code path as `--dataset synthetic`
    from robustret.cli import data as cli

    original = cli.load
    monkeypatch.setattr(cli, "load", lambda spec, **kw: original(
        spec, n_instances=2, elevations=1, azimuths=4, lightings=1, render_size=24, **kw))
    assert main(["info", "--dataset", "synthetic", "--per-class", "3", "--preview", str(png)]) == 0
    out = capsys.readouterr().out
    assert "classes: 5" in out and "(1, 24, 24)" in out and "preview:" in out
    assert matplotlib.image.imread(png).ndim in (2, 3)


@pytest.mark.parametrize("spec", ["nonsense", "folder:/definitely/not/here"])
def test_bad_spec_one_line_exit_2(spec, capsys) -> None:
    assert main(["info", "--dataset", spec]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m robustret.data: error:") and "\n" not in err


def test_module_runs(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "robustret.data", "info", "--dataset", "bogus:x"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown dataset spec" in proc.stderr


def test_preview_leaves_matplotlib_global_state_alone(tmp_path) -> None:
    script = (
        "import sys, matplotlib\n"
        "raw_backend = lambda: dict.__getitem__(matplotlib.rcParams, 'backend')  # no resolution\n"
        "before = raw_backend()\n"
        "from robustret.data import load\n"
        "from robustret.cli.data import write_preview\n"
        "data = load('synthetic', n_instances=2, elevations=1, azimuths=2, lightings=1, "
        "render_size=16)\n"
        f"write_preview(data, {str(tmp_path / 'p.png')!r}, per_class=2)\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
        "assert raw_backend() == before, 'the backend was switched'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "p.png").stat().st_size > 0


def test_info_describes_a_folder_of_mixed_photos(tmp_path, capsys) -> None:
    from test_data_folder import _mixed_photos

    root = _mixed_photos(tmp_path / "photos")
    assert main(["info", "--dataset", f"folder:{root}"]) == 0
    out = capsys.readouterr().out
    assert "images: 18 readable in 3 classes, 1 unreadable" in out
    assert "sizes (width x height): 64x96: 9, 96x64: 9" in out
    assert "modes: RGB 8-bit: 12, gray 8-bit: 6" in out and "class0/broken.jpg" in out
    assert "(C, H, W) = (3, 64, 64)" in out


def test_help_states_the_folder_default(capsys) -> None:
    for command in ("info", "export"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "centre-cropped to a square" in " ".join(capsys.readouterr().out.split())


def test_export_takes_group_names(tmp_path, monkeypatch, capsys) -> None:
    from degradations.groups import GROUPS
    from robustret.cli import data as cli

    made = []

    def export(folder, *, degradation, severity, **kwargs):
        made.append((degradation, severity, folder))
        return SimpleNamespace(labels=[0, 1])

    monkeypatch.setattr(cli, "export_query_set", export)
    assert main(["export", "--degrade", "held-out", "fog", "speckle", "--out",
                 str(tmp_path)]) == 0
    assert [name for name, _, _ in made] == [*GROUPS["held-out"], "fog"]
    assert made[-1] == ("fog", 3, tmp_path / "fog-s3")
    with pytest.raises(SystemExit):
        main(["export", "--degrade", "frost", "--out", str(tmp_path)])

