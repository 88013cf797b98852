"""docs/landmarks.md's one command runs: on a fixture it writes the benchmark, prints the
protocol's E/M/H table and its summary, and exports the corrupted query sets."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from robustret.cli.landmarks import main
from robustret.experiment.query_sets import load_query_set

DOC = Path(__file__).resolve().parents[2] / "docs" / "landmarks.md"


def _documented_command() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- landmarks-demo-start -->\n```bash\n(.*?)```\n<!-- landmarks-demo-end",
                      text, re.S)
    assert block is not None, "docs/landmarks.md lost its landmarks-demo block"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, "the demo is one command"
    return shlex.split(lines[0])


@pytest.mark.slow  # embeds 3 queries x 13 conditions with a ResNet-34 (seconds)
def test_the_documented_command_produces_the_table_and_the_sets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    words = _documented_command()
    assert words[:3] == ["python", "-m", "robustret.experiment.landmarks"]
    monkeypatch.chdir(tmp_path)
    assert main([*words[3:], "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("query"))
    assert header.split()[4:10] == ["mAP", "E", "mAP", "M", "mAP", "H"]
    assert "summary over corruptions" in out
    out_dir = Path(words[words.index("--out") + 1])
    assert (out_dir / "results.md").is_file() and (out_dir / "results.json").is_file()
    sets = sorted(p.name for p in (out_dir / "queries").iterdir())
    assert sets == [f"{name}-s3" for name in ("gaussian_noise", "lowres", "motion_blur", "noise",
                                             "salt_pepper", "speckle")]
    assert load_query_set(out_dir / "queries" / "noise-s3").manifest.shape[0] == 3
