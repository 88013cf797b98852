"""Property-based probes (hypothesis): what a careless or hostile user can hand robustret.

Each probe asserts "one clear line (or a 4xx with a reason), or the right answer; never a
traceback, a 500 or changed numbers":

* the command lines of every CLI, built from each parser's own flags with valid and hostile
  values (the heavy work is replaced by a sentinel: reaching it means every check passed);
* experiment config files (JSON with random keys, types and nested sections; TOML and binary
  junk);
* the page's search API: random form fields and random uploads (random bytes, PNG / TIFF of
  every dtype, NaN and infinity, odd shapes);
* every cache file robustret verifies, damaged at random (truncated, bytes flipped, bytes
  appended, sidecar deleted or rewritten, mtime moved): the reader returns exactly what was
  written, or reports the damage (a warning and a rebuild, or one clear error).

Examples are derandomised, so CI runs the same probes each time;
``ROBUSTRET_PROBE_EXAMPLES=500`` explores further with fresh random examples.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import write_class_folders
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import degradations
from robustret.cli import data as data_cli
from robustret.cli import experiment as experiment_cli
from robustret.cli import landmarks as landmarks_cli
from robustret.cli import restorer_eval as restorer_eval_cli
from robustret.cli import restorer_train as restorer_train_cli
from robustret.core.checks import ConfigError
from robustret.core.io import CorruptFileError, checksum_path

_EXPLORE = int(os.environ.get("ROBUSTRET_PROBE_EXAMPLES", "0"))
PROBES = settings(
    max_examples=_EXPLORE or 30,
    derandomize=not _EXPLORE,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)

#: values a user mistypes or an attacker tries, beside each flag's own choices
HOSTILE = ["", "-1", "0", "1", "3", "7", "all", "none", "nan", "inf", "-inf", "1e999", "1.5",
           "99999999999999999999", "/no/such/path", "folder:", "folder:/no/such", "synthetic",
           "smallnorb:/no/such", "cuda", "cuda:7", "cpu", "x=y", "nlist=0", "m=-3", "\u00e9",
           "a" * 300, "--", "-q", "{}", "[1]"]


#: what a flag without ``choices`` takes, by its ``dest``
KNOWN = {"degrade": [*degradations.available(), "all"], "dataset": ["synthetic"],
         "device": ["cpu", "auto"], "restore": ["none", "auto", "identity", "median"],
         "models": ["."], "image_size": ["16", "32"]}


class Reached(Exception):
    """The sentinel that replaces heavy work: every check before it passed."""


def _reach(*args: object, **kwargs: object) -> None:
    raise Reached


def _text() -> st.SearchStrategy[str]:
    return st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                   max_size=12)


def _value(action: argparse.Action, hostile_too: bool) -> st.SearchStrategy[str]:
    """What the flag takes (its choices, small integers); with ``hostile_too`` often something
    hostile instead."""
    hostile = st.sampled_from(HOSTILE) | _text() | st.integers(-2**70, 2**70).map(str)
    if action.choices:
        valid: st.SearchStrategy[str] = st.sampled_from([str(c) for c in action.choices])
    elif action.dest in KNOWN:
        valid = st.sampled_from(KNOWN[action.dest])
    elif action.type is int or "integer" in getattr(action.type, "__name__", ""):
        valid = st.integers(0, 4).map(str)
    else:
        return hostile
    return st.one_of(valid, valid, hostile) if hostile_too else valid


def _flags(parser: argparse.ArgumentParser, skip: Sequence[str]) -> list[argparse.Action]:
    return [action for action in parser._actions
            if action.option_strings and not isinstance(action, argparse._HelpAction)
            and not set(action.option_strings) & set(skip)]


@st.composite
def _argv(draw: st.DrawFn, parser: argparse.ArgumentParser, skip: Sequence[str]) -> list[str]:
    """The required flags (usually) and up to five more, each with its drawn values."""
    flags = _flags(parser, skip)
    required = [action for action in flags if action.required]
    chosen = [action for action in required if draw(st.integers(0, 9)) > 0]
    chosen += draw(st.lists(st.sampled_from(flags), max_size=5, unique_by=lambda a: a.dest))
    hostile_too = draw(st.booleans())
    argv: list[str] = []
    for action in {action.dest: action for action in chosen}.values():
        argv.append(draw(st.sampled_from(action.option_strings)))
        if action.nargs == 0:
            continue
        count = draw(st.integers(1, 3)) if action.nargs in ("+", "*") else 1
        argv += [draw(_value(action, hostile_too)) for _ in range(count)]
    return argv


def _one_line_or_reached(main: Callable[[list[str]], int], argv: list[str],
                         capsys: pytest.CaptureFixture[str]) -> None:
    """``main(argv)`` reaches the sentinel, or exits 2 with one line naming the error."""
    try:
        status: object = main(argv)
    except Reached:
        event("passed every check")
        return
    except SystemExit as exc:  # argparse's usage errors
        status = exc.code
        event("refused by the parser")
    else:
        event("refused by a check")
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    assert status == 2, (argv, status, err)
    assert "error" in err.splitlines()[-1], err


def _work_stubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every heavy first step of every command is the sentinel."""
    monkeypatch.setattr("robustret.experiment.runner.load_data", _reach)
    monkeypatch.setattr("robustret.experiment.seeds.run", _reach, raising=False)
    monkeypatch.setattr("robustret.data.load", _reach)
    monkeypatch.setattr(data_cli, "load", _reach)
    monkeypatch.setattr(data_cli, "survey_folder", _reach)
    monkeypatch.setattr(data_cli, "export_query_set", _reach)
    monkeypatch.setattr(restorer_train_cli, "train_restorer", _reach)
    monkeypatch.setattr(restorer_eval_cli.rdata, "load", _reach)
    monkeypatch.setattr(landmarks_cli, "run_landmarks", _reach)


def _probe(main: Callable[[list[str]], int], argv: Callable[[str], list[str]],
           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """:func:`_one_line_or_reached` for ``main(argv(folder))`` with the heavy work stubbed,
    the cache and the working folder in a fresh temporary ``folder``."""
    with tempfile.TemporaryDirectory() as folder, monkeypatch.context() as patch:
        _work_stubbed(patch)
        patch.setenv("ROBUSTRET_CACHE", f"{folder}/cache")
        patch.chdir(folder)
        _one_line_or_reached(main, argv(folder), capsys)


# ------------------------------------------------------------------------- command lines
EXPERIMENT = experiment_cli.build_parser()
RESTORER_TRAIN = restorer_train_cli.build_parser()
RESTORER_EVAL = restorer_eval_cli.build_parser()


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the data command has no sub-commands")


DATA_COMMANDS = _subparsers(data_cli.build_parser())


@PROBES
@given(data=st.data())
def test_experiment_flags_end_in_one_line_or_pass_every_check(
        data: st.DataObject, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    argv = data.draw(_argv(EXPERIMENT, skip=("--out", "--cache-dir", "--config")))
    _probe(experiment_cli.main,
           lambda folder: [*argv, "--out", f"{folder}/run", "--cache-dir", f"{folder}/models",
                           "-q", "--no-tensorboard"], monkeypatch, capsys)


@PROBES
@given(data=st.data())
def test_restorer_training_flags_end_in_one_line_or_pass_every_check(
        data: st.DataObject, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    argv = data.draw(_argv(RESTORER_TRAIN, skip=("--out",)))
    _probe(restorer_train_cli.main, lambda folder: [*argv, "--out", f"{folder}/out"],
           monkeypatch, capsys)


@PROBES
@given(data=st.data())
def test_restorer_evaluation_flags_end_in_one_line_or_pass_every_check(
        data: st.DataObject, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    argv = data.draw(_argv(RESTORER_EVAL, skip=()))
    _probe(restorer_eval_cli.main, lambda folder: argv, monkeypatch, capsys)


@PROBES
@given(data=st.data())
def test_data_command_flags_end_in_one_line_or_pass_every_check(
        data: st.DataObject, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    command = data.draw(st.sampled_from(sorted(DATA_COMMANDS)))
    argv = data.draw(_argv(DATA_COMMANDS[command], skip=()))
    _probe(data_cli.main, lambda folder: [command, *argv], monkeypatch, capsys)



LANDMARKS = landmarks_cli.build_parser()


@PROBES
@given(data=st.data())
def test_landmarks_command_flags_end_in_one_line_or_pass_every_check(
        data: st.DataObject, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    argv = data.draw(_argv(LANDMARKS, skip=("--out",)))
    _probe(landmarks_cli.main, lambda folder: argv, monkeypatch, capsys)


# --------------------------------------------------------------------------- config files
from robustret.experiment.config import ExperimentConfig  # noqa: E402

CONFIG_KEYS = [field.name for field in dataclasses.fields(ExperimentConfig)]

_scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
            | st.floats(allow_nan=True, allow_infinity=True) | _text()
            | st.sampled_from(HOSTILE))
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(_text(), inner, max_size=3), max_leaves=8)
_sections = st.dictionaries(
    st.sampled_from(["index", "nlist", "nprobe", "m", "workers", "decode", "epochs", "lr",
                     "model", "restorer", "cpus_per_task", "timeout_min"]) | _text(),
    _json, max_size=3)


@st.composite
def _config(draw: st.DrawFn) -> dict:
    keys = draw(st.lists(st.sampled_from(CONFIG_KEYS) | _text(), max_size=5, unique=True))
    config = {}
    for key in keys:
        nested = key.endswith("_options") or key in ("restorers", "retriever")
        config[key] = draw(_sections if nested else _json)
    return config


@PROBES
@given(config=_config(), form=st.sampled_from(["json", "toml", "bytes"]),
       junk=st.binary(max_size=64))
def test_config_files_end_in_one_line_or_pass_every_check(
        config: dict, form: str, junk: bytes, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def argv(folder: str) -> list[str]:
        path = Path(folder) / ("config.toml" if form == "toml" else "config.json")
        if form == "json":
            path.write_text(json.dumps(config))
        elif form == "toml":  # keys as TOML strings, values as JSON text: often not TOML
            path.write_text("\n".join(f"{json.dumps(k)} = {json.dumps(v)}"
                                      for k, v in config.items()))
        else:
            path.write_bytes(junk)
        return ["--config", str(path), "--out", f"{folder}/run", "--cache-dir",
                f"{folder}/models", "-q", "--no-tensorboard"]

    _probe(experiment_cli.main, argv, monkeypatch, capsys)


# ----------------------------------------------------------------------------- the page
with warnings.catch_warnings():  # newer Starlette prefers httpx2 to httpx; both work
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def client() -> TestClient:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "test_demo"))
    from demo_fixtures import make_service

    from robustret.demo.app import create_app

    return TestClient(create_app(make_service()))


_FIELD_NAMES = ["query_index", "class_name", "degradation", "severity", "restorer", "metric",
                "k", "x", "y", "w", "h"]
_FIELD_VALUES = st.sampled_from(["0", "1", "5", "-1", "3", "10", "99", "1e9", "nan", "l2",
                                 "cosine", "identity", "median", "wiener", "estimated",
                                 "oracle_route", "gaussian_noise", "motion_blur", "lowres",
                                 "none", "wild", "disc", "ring", ""]) | _text()


@st.composite
def _image_file(draw: st.DrawFn) -> tuple[bytes, bool]:
    """Random bytes, or a PNG / TIFF / JPEG of a drawn dtype, shape and value range; and
    whether the page must refuse it (NaN or infinite pixels)."""
    kind = draw(st.sampled_from(["bytes", "png", "tiff", "jpg"]))
    poison = None
    if kind == "bytes":
        return draw(st.binary(max_size=256)), False
    dtype = {"png": st.sampled_from([np.uint8, np.uint16]),
             "jpg": st.just(np.uint8),
             "tiff": st.sampled_from([np.uint8, np.uint16, np.float32])}[kind]
    dtype = draw(dtype)
    height, width = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    channels = draw(st.sampled_from([1, 3, 4] if kind != "jpg" else [1, 3]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype == np.float32:
        scale = draw(st.sampled_from([1.0, 255.0, 65535.0, 1e30, -1.0, 0.0]))
        image = (rng.random((height, width, channels)) * scale).astype(np.float32)
        poison = draw(st.sampled_from([None, np.nan, np.inf, -np.inf]))
        if poison is not None:
            image.flat[rng.integers(image.size)] = poison
    else:
        image = rng.integers(0, np.iinfo(dtype).max, (height, width, channels),
                             endpoint=True).astype(dtype)
    ok, buffer = cv2.imencode(f".{kind}", image.squeeze(-1) if channels == 1 else image)
    assert ok
    return buffer.tobytes(), poison is not None


@st.composite
def _form(draw: st.DrawFn, with_image: bool) -> dict[str, str]:
    """A valid search form (an index query, or settings for an upload), then up to three
    fields replaced by drawn values, removed, or added."""
    form = {"degradation": draw(st.sampled_from(["gaussian_noise", "motion_blur", "lowres",
                                                 "none", "wild"])),
            "severity": "3",
            "restorer": draw(st.sampled_from(["identity", "median", "estimated", "wiener"])),
            "metric": "l2", "k": "5"}
    if not with_image:
        form["query_index"] = draw(st.sampled_from(["0", "5"]))
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(_FIELD_NAMES) | _text())
        if draw(st.booleans()):
            form[name] = draw(_FIELD_VALUES)
        else:
            form.pop(name, None)
    return form


@PROBES
@given(data=st.data(), upload=st.none() | _image_file())
def test_the_page_answers_every_search_without_a_server_error(
        client: TestClient, data: st.DataObject, upload: tuple[bytes, bool] | None) -> None:
    fields = data.draw(_form(upload is not None))
    files = {"image": ("query", upload[0])} if upload is not None else None
    response = client.post("/api/search", data=fields, files=files)
    event(f"HTTP {response.status_code}")
    assert response.status_code < 500, (fields, response.text)
    if response.status_code >= 400:
        assert response.json()["detail"], response.text
    else:
        assert upload is None or not upload[1], "non-finite pixels were searched"
        assert response.json()["results"]


# ---------------------------------------------------------------------------- cache files
DAMAGES = ["truncate", "flip", "append", "empty", "delete sidecar", "rewrite sidecar",
           "move mtime", "none"]


def _damage(path: Path, damage: str, where: float, byte: int) -> bool:
    """Damage ``path`` (and its sidecar); True when its content or its sidecar changed."""
    data = path.read_bytes()
    at = min(int(where * len(data)), len(data) - 1)
    if damage == "truncate":
        path.write_bytes(data[:at])
    elif damage == "flip":
        path.write_bytes(data[:at] + bytes([data[at] ^ byte]) + data[at + 1:])
    elif damage == "append":
        path.write_bytes(data + bytes([byte]))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "delete sidecar":
        checksum_path(path).unlink()
    elif damage == "rewrite sidecar":
        checksum_path(path).write_text("0" * 64 + "\n")
    elif damage == "move mtime":
        os.utime(path, (1e9, 1e9))
        return False
    return damage != "none"


def _same(a: object, b: object) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            _same(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (np.ndarray, torch.Tensor)):
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    return a == b


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _folder_decoded(root: Path) -> tuple[Callable[[], object], Callable[[], Path]]:
    from robustret.data.folder import decode_folder

    def read() -> object:
        return decode_folder(root, 16)

    return read, lambda: next((Path(os.environ["ROBUSTRET_CACHE"]) / "folders").glob("*.npz"))


def _folder_index(root: Path) -> tuple[Callable[[], object], Callable[[], Path]]:
    from robustret.data.lazy import index_folder

    def read() -> object:
        index = index_folder(root)
        return {f.name: getattr(index, f.name) for f in dataclasses.fields(index)}

    return read, lambda: next(
        (Path(os.environ["ROBUSTRET_CACHE"]) / "folders").glob("*.index.json"))


def _folder_pixels(root: Path) -> tuple[Callable[[], object], Callable[[], Path]]:
    from robustret.data.lazy import decoded_cache, index_folder

    def read() -> object:
        return np.array(decoded_cache(index_folder(root, use_cache=False), 16))

    return read, lambda: next((Path(os.environ["ROBUSTRET_CACHE"]) / "folders").glob("*.npy"))


def _synthetic(_root: Path) -> tuple[Callable[[], object], Callable[[], Path]]:
    from robustret.data.synthetic import SyntheticConfig, generate_cached

    config = SyntheticConfig(render_size=16, n_instances=2, elevations=1, azimuths=2,
                             lightings=1)
    return (lambda: generate_cached(config),
            lambda: next((Path(os.environ["ROBUSTRET_CACHE"]) / "synthetic").glob("*.npz")))


#: cache readers that fall back by themselves: a damaged file is one warning and the same data
REBUILT = {"decoded folder": _folder_decoded, "folder index": _folder_index,
           "decoded pixels": _folder_pixels, "synthetic render": _synthetic}


@pytest.fixture(scope="module")
def class_folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_class_folders(tmp_path_factory.mktemp("probe-data") / "data", per_class=4,
                               size=20)


@PROBES
@given(reader=st.sampled_from(sorted(REBUILT)), damage=st.sampled_from(DAMAGES),
       where=st.floats(0, 1), byte=st.integers(1, 255))
def test_a_damaged_data_cache_is_one_warning_and_the_same_data(
        class_folders: Path, reader: str, damage: str, where: float, byte: int,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    with tempfile.TemporaryDirectory() as folder, monkeypatch.context() as patch:
        patch.setenv("ROBUSTRET_CACHE", folder)
        read, cache_file = REBUILT[reader](class_folders)
        first = read()
        changed = _damage(cache_file(), damage, where, byte)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            again = read()
        assert _same(first, again), f"{reader} after {damage}: different data"
        assert len(_warnings(caplog)) == (1 if changed else 0), _warnings(caplog)


def _condition_rows(folder: Path) -> tuple[Callable[[], object], Path, object]:
    from robustret.evaluation.results import Condition, ResultRow
    from robustret.experiment.condition_store import ConditionStore

    store, condition = ConditionStore(folder), Condition("degraded", "gaussian_noise", 3)
    rows = [ResultRow(condition, "l2", 1, 0.25), ResultRow(condition, "cosine", 5, 0.5)]
    path = store.save(condition, "key", rows)
    return (lambda: store.load(condition, "key")), path, [
        dataclasses.replace(row, reused=True) for row in rows]


def _checkpoint(folder: Path) -> tuple[Callable[[], object], Path, object]:
    from robustret.core.io import atomic_save
    from robustret.models.retriever import build_retriever, load_retriever

    torch.manual_seed(0)
    model = build_retriever("resnet18", num_classes=3, in_channels=1)
    path = atomic_save({"arch": model.arch(), "model": model.state_dict()},
                       folder / "last.pt", checksum=True)
    return (lambda: load_retriever(path, torch.device("cpu"), required=True).state_dict()), \
        path, model.state_dict()


def _manifest(folder: Path) -> tuple[Callable[[], object], Path, object]:
    from robustret.data.base import ImageSet, RetrievalData
    from robustret.experiment.query_sets import MANIFEST, read_manifest, write_query_set

    generator = torch.Generator().manual_seed(0)
    images = torch.rand((4, 1, 8, 8), generator=generator)
    labels = torch.tensor([0, 1, 0, 1])
    split = ImageSet(images, labels, ["a", "b"])
    write_query_set(folder / "set", RetrievalData("probe", split, split, ["a", "b"]),
                    "gaussian_noise", 2, 0, dataset="synthetic")
    written = dataclasses.asdict(read_manifest(folder / "set"))
    return (lambda: dataclasses.asdict(read_manifest(folder / "set"))), \
        folder / "set" / MANIFEST, written


#: cache readers that report damage to their caller: None, or an error the CLI turns into a line
REPORTED = {"finished condition": _condition_rows, "retriever checkpoint": _checkpoint,
            "query-set manifest": _manifest}


@PROBES
@given(reader=st.sampled_from(sorted(REPORTED)), damage=st.sampled_from(DAMAGES),
       where=st.floats(0, 1), byte=st.integers(1, 255))
def test_a_damaged_cached_result_is_reported_never_read_as_other_numbers(
        reader: str, damage: str, where: float, byte: int,
        caplog: pytest.LogCaptureFixture) -> None:
    with tempfile.TemporaryDirectory() as folder:
        read, path, written = REPORTED[reader](Path(folder))
        changed = _damage(path, damage, where, byte)
        caplog.clear()
        try:
            with caplog.at_level(logging.WARNING):
                again = read()
        except (ConfigError, CorruptFileError, ValueError) as exc:
            assert changed, f"{reader}: refused an intact file ({exc})"
            assert "\n" not in str(exc) and str(path) in str(exc), str(exc)
            return
        if again is None:  # the condition store: one warning, then recomputed
            assert changed and len(_warnings(caplog)) == 1, _warnings(caplog)
            return
        assert not changed, f"{reader}: a damaged file ({damage}) was read"
        assert _same(written, again)


# ------------------------------------------------------------ what the probes found, pinned
def test_a_config_key_with_a_line_separator_stays_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """(the unknown key ``"\\x1e"`` split the error in two: ``str.splitlines`` breaks there)"""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"\x1e": None}))
    assert experiment_cli.main(["--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown config key" in err and "\\x1e" in err, err


def test_a_path_too_long_for_the_system_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """(``--weights`` with a 300-character name was an ENAMETOOLONG traceback)"""
    assert experiment_cli.main(["--weights", "a" * 300, "--out", str(tmp_path / "run"),
                                "--cache-dir", str(tmp_path / "models")]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "unusable path" in err.splitlines()[-1], err
