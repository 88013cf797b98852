"""What the demo tests share: a tiny service (12 gallery, 6 query images of 3 classes, an
untrained resnet18), an RGB PNG, and a tiny finished run with a trained restorer. A plain
module: a conftest.py here would shadow tests/conftest.py."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch

from robustret.core.checksums import checksum_path
from robustret.demo.service import DemoService
from robustret.models import build_retriever

#: the tiny run's settings: one epoch of a width-4 blind autoencoder on 64 images, so that the
#: page has a restorer the run trained and can restore an upload as it is with it
RUN_CONFIG = """
degradations = ["gaussian_noise"]
severities = [3]
restore = "blind"
image_size = 32
retriever_epochs = 1
restorer_epochs = 1
backbone = "resnet18"
seed = 0
ks = [1]
measures = ["topk"]
tensorboard = false

[restorers.blind]
samples_per_epoch = 64
batch_size = 16
val_images = 8
model_options = {skips = true, widths = [4, 4, 4, 4, 4]}
"""

CLASSES = ["disc", "bar", "ring"]


def _images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(CLASSES)
    images = 0.1 * torch.rand((n, 1, 32, 32), generator=generator)
    for i, label in enumerate(labels.tolist()):
        images[i, 0, 4 + 8 * label:12 + 8 * label, 6:26] += 0.8
    return images.clamp(0, 1), labels


@lru_cache(maxsize=1)
def make_service() -> DemoService:
    with torch.random.fork_rng():  # seeded weights without touching the global stream
        torch.manual_seed(0)
        model = build_retriever("resnet18", num_classes=len(CLASSES), in_channels=1)
    gallery, gallery_labels = _images(12, 1)
    queries, query_labels = _images(6, 2)
    return DemoService(model, gallery, gallery_labels, queries, query_labels, CLASSES, seed=0)


def make_png() -> bytes:
    """A 48x40 RGB PNG (not square, not the data's size or channels)."""
    yy, xx = np.mgrid[0:40, 0:48]
    image = np.stack([xx * 5, yy * 6, (xx + yy) * 3], axis=-1).clip(0, 255).astype(np.uint8)
    ok, buffer = cv2.imencode(".png", image)
    assert ok
    return buffer.tobytes()


@lru_cache(maxsize=1)
def make_run() -> Path:
    """A finished run (``results.json``, ``config.json``) of :data:`RUN_CONFIG` on a class
    folder of 3 x 10 images, its models cached beside it; removed when the tests end. It
    trains the retriever and the blind restorer for one epoch each (seconds)."""
    from robustret.cli.experiment import main

    root = Path(tempfile.mkdtemp(prefix="robustret-demo-run-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    images, labels = _images(30, 3)
    for i, (image, label) in enumerate(zip(images, labels.tolist())):
        folder = root / "data" / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:02d}.png"), (image[0].numpy() * 255).astype(np.uint8))
    (root / "run.toml").write_text(RUN_CONFIG)
    out = root / "run"
    assert main(["--config", str(root / "run.toml"), "--dataset", f"folder:{root / 'data'}",
                 "--out", str(out), "--cache-dir", str(root / "models"), "-q"]) == 0
    return out


#: what :func:`damage_file` does to a verified file in place
DAMAGES = ("missing", "sidecar deleted", "bytes changed")


def damage_file(path: Path, damage: str) -> None:
    """Damage the verified file ``path`` (a checkpoint beside its ``.sha256`` sidecar) in
    place: delete it, delete its sidecar, or flip one byte near its end."""
    if damage == "missing":
        path.unlink()
    elif damage == "sidecar deleted":
        checksum_path(path).unlink()
    elif damage == "bytes changed":
        data = bytearray(path.read_bytes())
        data[-64] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        raise ValueError(f"damage must be one of {', '.join(DAMAGES)}; got {damage!r}")
