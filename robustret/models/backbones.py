"""Backbone registry: torchvision networks split into a feature trunk and a class head.

Each factory returns a :class:`Backbone`: a trunk ``(B, 3, H, W) -> (B, D)`` (the embedding
used for retrieval), the name of the torchvision head it dropped, and ``embedding_dim``. Weights
are always randomly initialised here (never downloaded); :func:`load_torchvision_weights` loads
a local torchvision checkpoint into the network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from robustret.core.registry import Registry

log = logging.getLogger(__name__)


@dataclass
class Backbone:
    """A torchvision network cut at its embedding.

    Attributes:
        trunk: ``(B, 3, H, W) -> (B, D)`` module wrapping the torchvision model (head removed).
        head_name: dotted name of the replaced head inside the torchvision state dict
            (``fc`` for ResNets, ``classifier.6`` for VGG), skipped when loading weights.
        embedding_dim: D.
    """

    trunk: nn.Module
    head_name: str
    embedding_dim: int


BACKBONES: Registry[Backbone] = Registry("backbone")


class _ResNetFeatures(nn.Module):
    """Everything of a torchvision ResNet up to the global average pool: (B, 3, H, W) -> (B, D)."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.resnet = resnet

    def forward(self, x: Tensor) -> Tensor:
        r = self.resnet
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        x = r.layer4(r.layer3(r.layer2(r.layer1(x))))
        return torch.flatten(r.avgpool(x), 1)


class _VGGFeatures(nn.Module):
    """A torchvision VGG up to fc7 (after its ReLU; dropout is active in train mode): (B, 4096)."""

    def __init__(self, vgg: nn.Module) -> None:
        super().__init__()
        self.vgg = vgg

    def forward(self, x: Tensor) -> Tensor:
        v = self.vgg
        x = torch.flatten(v.avgpool(v.features(x)), 1)
        return v.classifier[:5](x)  # fc6, relu, dropout, fc7, relu


def _resnet(builder: Callable[..., nn.Module], dim: int) -> Callable[[], Backbone]:
    def factory() -> Backbone:
        net = builder(weights=None)
        net.fc = nn.Identity()
        return Backbone(trunk=_ResNetFeatures(net), head_name="fc", embedding_dim=dim)

    return factory


def _register() -> None:
    # lazy: heavy; loaded when the backbones registry is first used
    from torchvision import models

    BACKBONES.register("resnet18")(_resnet(models.resnet18, 512))
    BACKBONES.register("resnet34")(_resnet(models.resnet34, 512))
    BACKBONES.register("resnet50")(_resnet(models.resnet50, 2048))

    @BACKBONES.register("vgg19")
    def vgg19() -> Backbone:
        net = models.vgg19(weights=None)
        net.classifier[6] = nn.Identity()
        return Backbone(trunk=_VGGFeatures(net), head_name="classifier.6", embedding_dim=4096)


_register()


def load_torchvision_weights(trunk: nn.Module, path: str | Path, head_name: str) -> None:
    """Load a plain torchvision ``state_dict`` file (e.g. ``resnet34-b627a593.pth``) into ``trunk``.

    The head (``fc.*`` / ``classifier.6.*``) is ignored: its class count differs from ours.

    Args:
        trunk: the ``_ResNetFeatures`` / ``_VGGFeatures`` module (keys gain its prefix).
        path: local file; nothing is ever downloaded.
        head_name: the torchvision head's key prefix to skip.
    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: unreadable file, not a state dict, or keys/shapes that do not match;
            the message names the file and the missing/unexpected keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not its own
        raise ValueError(f"cannot read weights file {path}: not a torch file of tensors "
                         f"({type(exc).__name__})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} is not a torchvision state_dict (a dict of tensors)")
    inner = next(iter(dict(trunk.named_children())))  # "resnet" or "vgg"
    state = {
        f"{inner}.{key}": value
        for key, value in state.items()
        if not key.startswith(head_name + ".")
    }
    own = trunk.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(key for key in set(own) & set(state) if own[key].shape != state[key].shape)
    if missing or unexpected or wrong:
        def show(keys: list[str]) -> str:
            keys = [key.split(".", 1)[1] for key in keys]
            return (
                ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
                or "none"
            )

        raise ValueError(
            f"weights file {path} does not fit this backbone: missing keys: {show(missing)}; "
            f"unexpected keys: {show(unexpected)}; wrong shapes: {show(wrong)}. "
            "Pass the torchvision checkpoint of the same architecture."
        )
    trunk.load_state_dict(state, strict=False)
    log.info("loaded backbone weights from %s", path)
