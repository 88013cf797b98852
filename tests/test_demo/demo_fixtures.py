"""What the demo tests share: a tiny service (12 gallery, 6 query images of 3 classes, an
untrained resnet18), an RGB PNG, and tiny finished runs with a trained restorer (a blind one, and
the composite ``estimated_hybrid``). A plain
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

#: a tiny run of the composite ``estimated_hybrid``: each of its learned experts (whatever
#: ``experts.EXPERTS`` names) a width-4 unet hybrid trained one epoch on 32 images
EXPERT_SECTION = """
samples_per_epoch = 32
batch_size = 16
val_images = 8
model_options = {body = "unet", widths = [4, 4, 4]}
"""

CLASSES = ["disc", "bar", "ring"]


def composite_config() -> str:
    """:data:`RUN_CONFIG` restoring with ``estimated_hybrid`` (at severity 5, where the
    estimate sees the noise), each expert recipe given :data:`EXPERT_SECTION`."""
    from robustret.experiment.experts import EXPERTS

    config = (RUN_CONFIG.replace('restore = "blind"', 'restore = "estimated_hybrid"')
              .replace("severities = [3]", "severities = [5]"))
    recipes = dict.fromkeys(recipe for recipe, *_ in EXPERTS.values())
    return config + "".join(f'\n[restorers."{recipe}"]{EXPERT_SECTION}' for recipe in recipes)


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


def make_noisy_png() -> bytes:
    """A 48x40 gray PNG of two bars under strong Gaussian noise (the estimate sees noise)."""
    rng = np.random.default_rng(0)
    image = np.full((40, 48), 30.0)
    image[8:16, 6:40] = image[24:32, 6:40] = 220.0
    noisy = (image + rng.normal(0, 60, image.shape)).clip(0, 255).astype(np.uint8)
    ok, buffer = cv2.imencode(".png", noisy)
    assert ok
    return buffer.tobytes()


@lru_cache(maxsize=1)
def make_run() -> Path:
    """A finished run (``results.json``, ``config.json``) of :data:`RUN_CONFIG` on a class
    folder of 3 x 10 images, its models cached beside it; removed when the tests end. It
    trains the retriever and the blind restorer for one epoch each (seconds)."""
    return _run(RUN_CONFIG)


@lru_cache(maxsize=1)
def make_composite_run() -> Path:
    """A finished run of :func:`composite_config` as :func:`make_run` makes one: it trains
    the retriever and each expert of ``estimated_hybrid`` for one epoch (seconds)."""
    return _run(composite_config())


def rerun(run_dir: Path, name: str, *args: str) -> Path:
    """Run ``run_dir``'s configuration again with the further command-line ``args`` into
    ``run_dir``'s sibling folder ``name``, from the same data and model cache (models trained
    for ``run_dir`` are reused); returns the new run's folder."""
    return _experiment(run_dir.parent, name, *args)


def _experiment(root: Path, name: str, *args: str) -> Path:
    """``root/run.toml`` run on ``root/data`` into ``root/name``, models cached in
    ``root/models``."""
    from robustret.cli.experiment import main

    out = root / name
    assert main(["--config", str(root / "run.toml"), "--dataset", f"folder:{root / 'data'}",
                 "--out", str(out), "--cache-dir", str(root / "models"), "-q", *args]) == 0
    return out


def _run(config: str) -> Path:
    """A finished run of the TOML ``config`` on a class folder of 3 x 10 images."""
    root = Path(tempfile.mkdtemp(prefix="robustret-demo-run-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    images, labels = _images(30, 3)
    for i, (image, label) in enumerate(zip(images, labels.tolist())):
        folder = root / "data" / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:02d}.png"), (image[0].numpy() * 255).astype(np.uint8))
    (root / "run.toml").write_text(config)
    return _experiment(root, "run")


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
