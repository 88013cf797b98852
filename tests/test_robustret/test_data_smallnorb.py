"""smallNORB binary matrix reader/writer on tiny files (6 items of 2x8x8), plain and gzipped."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustret.data import load, write_smallnorb_matrix
from robustret.data.smallnorb import SmallNorbFormatError, read_smallnorb_matrix

N, H = 6, 8
PREFIX = {
    "training": "smallnorb-5x46789x9x18x6x2x96x96-training",
    "testing": "smallnorb-5x01235x9x18x6x2x96x96-testing",
}


def _arrays(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    info = np.stack(
        [np.arange(N) % 10, np.arange(N) % 9, 2 * (np.arange(N) % 18), np.arange(N) % 6], 1
    )
    return {
        "dat": rng.integers(0, 256, (N, 2, H, H), dtype=np.uint8),
        "cat": (np.arange(N) % 5).astype(np.int32),
        "info": info.astype(np.int32),
    }


def _write(root: Path, gz: bool = False) -> dict[str, dict[str, np.ndarray]]:
    written = {}
    for index, (split, prefix) in enumerate(PREFIX.items()):
        arrays = _arrays(index)
        for kind, array in arrays.items():
            write_smallnorb_matrix(root / f"{prefix}-{kind}.mat{'.gz' if gz else ''}", array)
        written[split] = arrays
    return written


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32, np.float64, np.int16])
def test_matrix_roundtrip(tmp_path, dtype) -> None:
    array = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
    for name in ("m.mat", "m.mat.gz"):
        write_smallnorb_matrix(tmp_path / name, array)
        back = read_smallnorb_matrix(tmp_path / name)
        assert back.dtype == array.dtype and np.array_equal(back, array)
    assert isinstance(read_smallnorb_matrix(tmp_path / "m.mat"), np.memmap)
    vector = np.arange(5, dtype=np.int32)  # ndim 1: header still has 3 dimension slots
    write_smallnorb_matrix(tmp_path / "v.mat", vector)
    assert (tmp_path / "v.mat").stat().st_size == 8 + 12 + 20
    assert np.array_equal(read_smallnorb_matrix(tmp_path / "v.mat"), vector)


@pytest.mark.parametrize("gz", [False, True])
def test_load_protocol(tmp_path, gz) -> None:
    written = _write(tmp_path, gz)
    data = load(f"smallnorb:{tmp_path}")
    assert data.class_names == ["animal", "human", "airplane", "truck", "car"]
    assert data.gallery.images.shape == (N, 1, H, H)
    expected = torch.from_numpy(written["training"]["dat"][:, 0, None].astype(np.float32) / 255)
    assert torch.allclose(data.gallery.images, expected)
    assert data.queries.labels.tolist() == written["testing"]["cat"].tolist()
    for j, column in enumerate(("instance", "elevation", "azimuth", "lighting")):
        assert data.gallery.metadata[column].tolist() == written["training"]["info"][:, j].tolist()
    both = load(f"smallnorb:{tmp_path}", camera="both", image_size=4, per_class=1)
    assert both.gallery.images.shape == (5, 1, 4, 4)
    right = load(f"smallnorb:{tmp_path}", camera=1)
    assert torch.allclose(
        right.queries.images[:, 0] * 255, torch.from_numpy(written["testing"]["dat"][:, 1]).float()
    )
    with pytest.raises(ValueError, match="camera must be"):
        load(f"smallnorb:{tmp_path}", camera=2)


def test_missing_file_named(tmp_path) -> None:
    _write(tmp_path)
    (tmp_path / f"{PREFIX['testing']}-info.mat").unlink()
    with pytest.raises(FileNotFoundError, match="no smallNORB testing info file"):
        load(f"smallnorb:{tmp_path}")


def test_bad_magic(tmp_path) -> None:
    _write(tmp_path)
    path = tmp_path / f"{PREFIX['training']}-cat.mat"
    raw = bytearray(path.read_bytes())
    raw[:4] = b"\x00\x01\x02\x03"
    path.write_bytes(bytes(raw))
    with pytest.raises(SmallNorbFormatError, match=r"training-cat.mat: bad magic 0x03020100"):
        load(f"smallnorb:{tmp_path}")


@pytest.mark.parametrize("gz", [False, True])
def test_truncated(tmp_path, gz) -> None:
    _write(tmp_path)
    path = tmp_path / f"{PREFIX['training']}-dat.mat"
    raw = path.read_bytes()
    expected = len(raw)
    path.unlink()
    if gz:
        (tmp_path / (path.name + ".gz")).write_bytes(gzip.compress(raw[:-10]))
    else:
        path.write_bytes(raw[:-10])
    with pytest.raises(
        SmallNorbFormatError,
        match=rf"training-dat.mat(.gz)?: truncated: expected {expected} bytes "
        rf".* got {expected - 10}",
    ):
        load(f"smallnorb:{tmp_path}")


def test_corrupt_gzip_stream(tmp_path) -> None:
    _write(tmp_path, gz=True)
    path = tmp_path / f"{PREFIX['testing']}-dat.mat.gz"
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(SmallNorbFormatError, match="testing-dat.mat.gz: corrupt or truncated gzip"):
        load(f"smallnorb:{tmp_path}")


def test_bad_ndim_and_dims(tmp_path) -> None:
    path = tmp_path / "m.mat"
    path.write_bytes(np.array([0x1E3D4C54, 99, 1, 1, 1], "<i4").tobytes())
    with pytest.raises(SmallNorbFormatError, match="bad ndim 99"):
        read_smallnorb_matrix(path)
    path.write_bytes(np.array([0x1E3D4C54, 1, -4, 1, 1], "<i4").tobytes())
    with pytest.raises(SmallNorbFormatError, match="bad dimensions"):
        read_smallnorb_matrix(path)
    path.write_bytes(b"\x54\x4c")
    with pytest.raises(SmallNorbFormatError, match="truncated"):
        read_smallnorb_matrix(path)


def test_mismatched_counts(tmp_path) -> None:
    _write(tmp_path)
    write_smallnorb_matrix(tmp_path / f"{PREFIX['testing']}-cat.mat", np.zeros(N - 1, np.int32))
    with pytest.raises(SmallNorbFormatError, match=r"mismatched counts.*testing-cat.mat: 5"):
        load(f"smallnorb:{tmp_path}")


def test_wrong_kind_of_matrix(tmp_path) -> None:
    _write(tmp_path)
    write_smallnorb_matrix(tmp_path / f"{PREFIX['training']}-info.mat", np.zeros((N, 3), np.int32))
    with pytest.raises(
        SmallNorbFormatError, match=r"training-info.mat: expected int32 \(N, 4\) info"
    ):
        load(f"smallnorb:{tmp_path}")


def test_trailing_data(tmp_path) -> None:
    path = tmp_path / "m.mat"
    write_smallnorb_matrix(path, np.zeros((2, 3), np.int32))
    path.write_bytes(path.read_bytes() + b"\x00" * 4)
    with pytest.raises(
        SmallNorbFormatError, match="m.mat: trailing data: expected 44 bytes .* got 48"
    ):
        read_smallnorb_matrix(path)


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=5),
    dtype=st.sampled_from([np.uint8, np.int16, np.int32, np.float32, np.float64]),
    gz=st.booleans(),
)
def test_roundtrip_property(tmp_path_factory, shape, dtype, gz) -> None:
    path = tmp_path_factory.mktemp("m") / ("m.mat.gz" if gz else "m.mat")
    array = (np.arange(int(np.prod(shape))) % 100).astype(dtype).reshape(shape)
    write_smallnorb_matrix(path, array)
    back = read_smallnorb_matrix(path)
    assert back.shape == array.shape and back.dtype == array.dtype and np.array_equal(back, array)
