"""A small learned degradation-family estimator: a CNN that reads the family (and the noise
kind) of each image, trained on degraded gallery images with the drawn family as the label.

The classical estimator (:mod:`restoration.estimate`) reads the study's synthetic fingerprints
(exact block copies, exact impulses, a noise-free circular blur) and so misses the realistic
variants (``realistic_motion_blur``, ``realistic_lowres``). :class:`FamilyNet` learns "noisy",
"blurred", "upsampled" from examples instead (training: :mod:`robustret.train.estimator`;
accuracy beside the classical one: docs/estimation.md, "Learned family estimator").

:func:`classify_family` gives the (B,) family codes into :data:`restoration.estimate.FAMILIES`
(the same codes as :attr:`DegradationEstimate.family`); :func:`estimate_family` the typed
:class:`LearnedEstimate` with the noise kind and the probabilities. :func:`save_estimator`
writes the architecture and weights with a ``.sha256`` sidecar; :func:`load_estimator`
verifies and rebuilds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from restoration.estimate import FAMILIES, NOISE_KINDS
from robustret import __version__
from robustret.core.checks import check_images
from robustret.core.io import atomic_save, file_digest, load_checkpoint

MIN_SIDE = 32
"""Smallest image side the network takes (the default pixel unshuffle and three stride-2
stages leave 2 x 2 cells)."""
CHUNK = 256
"""Images per forward pass in :func:`estimate_family` (memory, not results)."""
CHECKPOINT_KEY = "family_estimator"
"""The checkpoint entry naming the architecture and its options."""


class FamilyNet(nn.Module):
    """Family and noise-kind classifier of one image.

    Each 2 x 2 block's four pixels become four channels (pixel unshuffle: the finest scale,
    where noise, blur and upsampling differ, is kept whole at a quarter of the cost), then a
    3 x 3 convolution to ``width`` channels and ``depth`` stride-2 3 x 3 convolutions doubling
    the width up to ``4 * width``, each with batch norm and ReLU, global average pooling, and
    two linear heads.
    RGB images are read as their channel mean (the families are spatial, not colour, effects),
    so one network serves gray and RGB images of any size >= :data:`MIN_SIDE`.

    Args:
        width: channels of the first layer (>= 1).
        depth: stride-2 stages (1..5).
    """

    def __init__(self, *, width: int = 16, depth: int = 3) -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an integer >= 1; got {width!r}")
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 5:
            raise ValueError(f"depth must be an integer in 1..5; got {depth!r}")
        self.width, self.depth = width, depth
        layers: list[nn.Module] = [nn.PixelUnshuffle(2),
                                   nn.Conv2d(4, width, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        channels = width
        for stage in range(depth):
            out = width * 2 ** min(stage + 1, 2)
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.family_head = nn.Linear(channels, len(FAMILIES))
        self.kind_head = nn.Linear(channels, len(NOISE_KINDS))

    @property
    def options(self) -> dict[str, int]:
        """The keyword arguments that rebuild this architecture."""
        return {"width": self.width, "depth": self.depth}

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Logits of each image's family and noise kind.

        Args:
            images: (B, C, H, W) float in [0, 1], C in {1, 3}, H and W >= :data:`MIN_SIDE`
                (an odd side loses its last row or column).
        Returns:
            ``(family_logits (B, 4), kind_logits (B, 3))``, float, the images' device; the
            kind logits mean something only for images of family ``noise``.
        """
        height, width = images.shape[-2] // 2 * 2, images.shape[-1] // 2 * 2
        gray = images[..., :height, :width].mean(dim=1, keepdim=True) * 2 - 1  # (B, 1, H', W')
        pooled = self.features(gray).mean(dim=(2, 3))                 # (B, channels)
        return self.family_head(pooled), self.kind_head(pooled)


def build_family_net(*, width: int = 16, depth: int = 3,
                     generator: torch.Generator | None = None) -> FamilyNet:
    """A :class:`FamilyNet` whose weights are drawn from ``generator`` (PyTorch's default
    distributions: Kaiming-uniform with a = sqrt(5), biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    batch norm 1 / 0), so the same seed gives the same network; None: torch's global state."""
    model = FamilyNet(width=width, depth=depth)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                if module.bias is not None:
                    bound = 1 / math.sqrt(module.weight[0].numel())
                    nn.init.uniform_(module.bias, -bound, bound, generator=generator)
    return model


def check_estimator_input(images: object, name: str = "images") -> Tensor:
    """``images`` checked as (B, C, H, W) float in [0, 1], C in {1, 3}, sides >= MIN_SIDE.

    Raises:
        ValueError: another shape, range, or a side below :data:`MIN_SIDE`.
    """
    images = check_images(images, name)
    if min(images.shape[-2:]) < MIN_SIDE:
        raise ValueError(f"{name} must be at least {MIN_SIDE} x {MIN_SIDE} px for the learned "
                         f"estimator; got {tuple(images.shape[-2:])}: upsample small images "
                         "first")
    return images


@dataclass(frozen=True)
class LearnedEstimate:
    """The learned estimator's per-image answer; every field on the model's device.

    Attributes:
        family: (B,) int64 codes into :data:`restoration.estimate.FAMILIES`.
        noise_kind: (B,) int64 codes into :data:`restoration.estimate.NOISE_KINDS`; 0 unless
            ``family`` is noise.
        probabilities: (B, 4) float32 softmax over the families, rows sum to 1.
    """

    family: Tensor
    noise_kind: Tensor
    probabilities: Tensor

    def __len__(self) -> int:
        return self.family.shape[0]

    def family_names(self) -> list[str]:
        """Each image's family name (:data:`~restoration.estimate.FAMILIES`)."""
        return [FAMILIES[code] for code in self.family.tolist()]


def estimate_family(model: FamilyNet, images: Tensor, *,
                    clean_below: float | None = None) -> LearnedEstimate:
    """The family and noise kind of each image, batched (chunks of :data:`CHUNK`), without
    gradients and without changing ``model``'s mode.

    Args:
        model: a trained :class:`FamilyNet` (its batch norm is used in eval mode).
        images: (B, C, H, W) float in [0, 1], C in {1, 3}, sides >= :data:`MIN_SIDE`, any
            device (moved to the model's).
        clean_below: None: the most probable family. A number in (0, 1]: an image is
            degraded (its most probable degraded family) only when its clean probability is
            below this, else clean; smaller values call fewer clean images degraded and miss
            more degraded ones (docs/estimation.md measures the trade).
    Returns:
        :class:`LearnedEstimate` on the model's device.
    Raises:
        ValueError: see :func:`check_estimator_input`; ``clean_below`` outside (0, 1].
    """
    if clean_below is not None and not 0 < clean_below <= 1:
        raise ValueError(f"clean_below must be in (0, 1] or None; got {clean_below!r}")
    images = check_estimator_input(images)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            parts = [model(chunk.to(device, torch.float32)) for chunk in images.split(CHUNK)
                     if chunk.shape[0]]
    finally:
        model.train(was_training)
    if parts:
        family_logits = torch.cat([p[0] for p in parts])
        kind_logits = torch.cat([p[1] for p in parts])
    else:
        family_logits = torch.zeros(0, len(FAMILIES), device=device)
        kind_logits = torch.zeros(0, len(NOISE_KINDS), device=device)
    probabilities = family_logits.softmax(dim=1).float()
    family = family_from_probabilities(probabilities, clean_below)
    noisy = family == FAMILIES.index("noise")
    kind = torch.where(noisy, kind_logits.argmax(dim=1), torch.zeros_like(family))
    return LearnedEstimate(family, kind, probabilities)


def family_from_probabilities(probabilities: Tensor, clean_below: float | None = None) -> Tensor:
    """Family codes from (B, 4) family probabilities (see :func:`estimate_family`'s
    ``clean_below``). Returns (B,) int64 codes into :data:`~restoration.estimate.FAMILIES`."""
    if clean_below is None:
        return probabilities.argmax(dim=1)
    clean = FAMILIES.index("clean")
    degraded = probabilities.clone()
    degraded[:, clean] = -1.0
    return torch.where(probabilities[:, clean] < clean_below, degraded.argmax(dim=1),
                       torch.full_like(degraded[:, 0], clean, dtype=torch.int64))


def classify_family(model: FamilyNet, images: Tensor, *,
                    clean_below: float | None = None) -> Tensor:
    """Each image's family code (:func:`estimate_family`'s ``family``).

    Args:
        model: a :class:`FamilyNet`.
        images: (B, C, H, W) float in [0, 1], sides >= :data:`MIN_SIDE`.
        clean_below: see :func:`estimate_family`.
    Returns:
        (B,) int64 codes into :data:`restoration.estimate.FAMILIES`, on the model's device.
    """
    return estimate_family(model, images, clean_below=clean_below).family


def save_estimator(model: FamilyNet, path: str | Path, **extra: Any) -> Path:
    """Write ``model`` (architecture options and weights) atomically to ``path`` with a
    ``path.sha256`` sidecar that :func:`load_estimator` verifies.

    Args:
        model: the estimator.
        path: the ``.pt`` file.
        **extra: further entries (e.g. the training configuration and its history).
    Returns:
        ``path``.
    """
    return atomic_save({CHECKPOINT_KEY: model.options, "model": model.state_dict(),
                        "version": __version__, **extra}, path, checksum=True)


def load_estimator(path: str | Path, device: str | torch.device = "cpu") -> FamilyNet:
    """Rebuild and verify an estimator written by :func:`save_estimator`.

    Args:
        path: the ``.pt`` file (its ``.sha256`` sidecar is required).
        device: where to put the model.
    Returns:
        The :class:`FamilyNet` in eval mode; ``model.checkpoint_info`` holds the checkpoint's
        other entries and ``"sha256"``, the file's digest (its content key).
    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: (``CorruptFileError`` among them) damaged bytes, a missing sidecar, not an
            estimator checkpoint, or weights that do not fit its architecture.
    """
    path = Path(path)
    state = load_checkpoint(path, required=True)
    options = state.get(CHECKPOINT_KEY)
    if not isinstance(options, dict) or not isinstance(state.get("model"), dict):
        raise ValueError(f"{path} is not a family estimator checkpoint (no "
                         f"'{CHECKPOINT_KEY}' entry); write it with save_estimator")
    model = FamilyNet(**options)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValueError(f"weights in {path} do not fit FamilyNet({options}): {first}") from exc
    model.checkpoint_info = {**{k: v for k, v in state.items()
                                if k not in ("model", CHECKPOINT_KEY)},
                             "sha256": file_digest(path)}
    return model.to(device).eval()
