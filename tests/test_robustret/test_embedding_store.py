"""Embeddings written in shards to a checksummed .npy and mapped back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robustret.core import io as rio
from robustret.retrieval import extract_embeddings, load_embeddings, write_embeddings, write_rows


def _mapped_from(tensor: torch.Tensor, path: Path) -> bool:
    """Whether the tensor's memory lies in a mapping of ``path`` (/proc/self/maps, Linux)."""
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        pytest.skip("no /proc/self/maps")
    address = tensor.data_ptr()
    for line in maps.read_text().splitlines():
        if line.endswith(str(path.resolve())):
            start, end = (int(v, 16) for v in line.split()[0].split("-"))
            if start <= address < end:
                return True
    return False


def test_rows_round_trip_through_a_plain_checksummed_npy(tmp_path: Path) -> None:
    rows = torch.randn(10, 4)
    blocks = [rows[:3], rows[3:3], rows[3:9].numpy(), rows[9:]]  # an empty block too
    path = write_rows(tmp_path / "e.npy", blocks, 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npy", "e.npy.sha256"]
    assert rio.checksum_path(path).read_text() == f"{rio.file_digest(path)}  e.npy\n"
    assert np.array_equal(np.load(path), rows.numpy())  # numpy reads it as it is
    loaded = load_embeddings(path, count=10)
    assert loaded.dtype == torch.float32 and torch.equal(loaded, rows)
    assert _mapped_from(loaded, path)  # the rows stay in the file, not in this process's heap
    loaded.zero_()  # copy-on-write: the file is not changed through the tensor
    assert torch.equal(load_embeddings(path), rows)


def test_rows_are_written_one_block_at_a_time(tmp_path: Path, monkeypatch) -> None:
    mapped = []
    real = np.memmap

    class Recording(real):
        def __new__(cls, *args, **kwargs):
            mapped.append(kwargs.get("shape"))
            return real.__new__(real, *args, **kwargs)

    monkeypatch.setattr(np, "memmap", Recording)
    write_rows(tmp_path / "e.npy", torch.ones(10, 3).split(4), 10)
    assert mapped[-3:] == [(4, 3), (4, 3), (2, 3)]  # each shard mapped alone, never (10, 3)
    assert torch.equal(load_embeddings(tmp_path / "e.npy"), torch.ones(10, 3))


def test_an_interrupted_write_leaves_no_file_and_the_previous_one_intact(tmp_path: Path) -> None:
    path = tmp_path / "e.npy"

    def interrupted():
        yield torch.zeros(4, 2)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_rows(path, interrupted(), 8)
    assert list(tmp_path.iterdir()) == []
    write_rows(path, [torch.ones(8, 2)], 8)
    with pytest.raises(KeyboardInterrupt):
        write_rows(path, interrupted(), 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npy", "e.npy.sha256"]
    assert torch.equal(load_embeddings(path), torch.ones(8, 2))  # verified against its sidecar


@pytest.mark.parametrize(("blocks", "message"), [
    ([torch.ones(3, 2)], "3 items written, 4 announced"),
    ([torch.ones(3, 2), torch.ones(3, 2)], "more than the 4 items"),
    ([torch.ones(2, 2), torch.ones(2, 3)], "does not hold items of shape"),
    ([torch.ones(4)], r"\(B, D\) blocks"),
])
def test_blocks_that_do_not_add_up_raise_and_write_nothing(tmp_path: Path, blocks: list,
                                                          message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_rows(tmp_path / "e.npy", blocks, 4)
    assert list(tmp_path.iterdir()) == []


def test_damaged_or_wrong_files_are_corrupt_file_errors(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "e.npy", [torch.ones(6, 2)], 6)
    with pytest.raises(rio.CorruptFileError, match="e.npy.*4 rows"):
        load_embeddings(path, count=4)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(rio.CorruptFileError, match="e.npy.*SHA-256"):
        load_embeddings(path)
    other = tmp_path / "f.npy"
    rio.atomic_write_bytes(other, b"not an npy", checksum=True)
    with pytest.raises(rio.CorruptFileError, match="f.npy.*numpy cannot map"):
        load_embeddings(other)
    np.save(tmp_path / "g.npy", np.ones((3, 2)))  # float64, no sidecar
    with pytest.raises(rio.CorruptFileError, match="g.npy.*float64"):
        load_embeddings(tmp_path / "g.npy", verify=False)


def test_write_embeddings_gives_extract_embeddings_rows(images: torch.Tensor,
                                                        tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.AdaptiveAvgPool2d(2),
                                torch.nn.Flatten(), torch.nn.BatchNorm1d(12)).train()
    written = write_embeddings(model, images, tmp_path / "e.npy", batch_size=3)
    assert model.training  # its mode is restored
    assert written.shape == (4, 12)
    assert torch.equal(written, extract_embeddings(model, images, batch_size=3))
    with pytest.raises(ValueError, match="pass count="):
        write_embeddings(model, iter([images]), tmp_path / "f.npy")
