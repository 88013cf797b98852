"""Backbone registry: networks split into a feature trunk and a class head.

Each factory returns a :class:`Backbone`: a trunk ``(B, 3, H, W) -> (B, D)`` (the embedding
used for retrieval), the name of the head it dropped, ``embedding_dim`` and where its global
average pool is (which GeM pooling replaces). :func:`build_backbone` takes the registered
names (``resnet18``, ``resnet34``, ``resnet50``, ``vgg19``), any torchvision classification
model (``tv:NAME``, or a plain NAME that is not registered) and, with timm installed, any timm
model (``timm:NAME``) (:mod:`robustret.models.external_backbones`). Weights are always randomly
initialised here (never downloaded); :func:`load_torchvision_weights` loads a local checkpoint
into the network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from robustret.core.registry import Registry
from robustret.models.external_backbones import (
    TIMM_PREFIX,
    TORCHVISION_PREFIX,
    build_timm,
    build_torchvision,
    torchvision_names,
)
from robustret.models.pooling import GeM, replace_module

log = logging.getLogger(__name__)


@dataclass
class Backbone:
    """A torchvision network cut at its embedding.

    Attributes:
        trunk: ``(B, 3, H, W) -> (B, D)`` module wrapping the torchvision model (head removed).
        head_name: dotted name of the replaced head inside the torchvision state dict
            (``fc`` for ResNets, ``classifier.6`` for VGG), skipped when loading weights.
        embedding_dim: D.
        pool_name: dotted name inside ``trunk`` of its global average pool over a spatial
            feature map (``nn.AdaptiveAvgPool2d(1)``), which GeM replaces; None where there is
            none (VGG's fc7 features, token models).
    """

    trunk: nn.Module
    head_name: str
    embedding_dim: int
    pool_name: str | None = None


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
        return Backbone(trunk=_ResNetFeatures(net), head_name="fc", embedding_dim=dim,
                        pool_name="resnet.avgpool")

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


def build_backbone(name: str) -> Backbone:
    """The backbone ``name``: a registered one, ``tv:NAME`` (torchvision; a registered NAME
    gives the registered backbone), ``timm:NAME``, or a plain torchvision model name.

    Raises:
        KeyError: an unknown plain name (lists the registered ones and the prefixes).
        ValueError: an unknown torchvision or timm model, or timm not installed.
    """
    if name.startswith(TIMM_PREFIX):
        trunk, head, dim, pool = build_timm(name[len(TIMM_PREFIX):])
        return Backbone(trunk=trunk, head_name=head, embedding_dim=dim, pool_name=pool)
    plain = name[len(TORCHVISION_PREFIX):] if name.startswith(TORCHVISION_PREFIX) else name
    if plain in BACKBONES:
        return BACKBONES.build(plain)
    if name.startswith(TORCHVISION_PREFIX) or plain in torchvision_names():
        trunk, head, dim, pool = build_torchvision(plain)
        return Backbone(trunk=trunk, head_name=head, embedding_dim=dim, pool_name=pool)
    raise KeyError(f"unknown backbone {name!r}; available: {', '.join(BACKBONES.names())}, "
                   "any torchvision classification model (tv:NAME) or timm model (timm:NAME)")


def check_backbone(name: str) -> None:
    """Raise the error :func:`build_backbone` would, without building anything big: names are
    checked against the libraries' lists.

    Raises:
        KeyError, ValueError: as :func:`build_backbone`.
    """
    if name.startswith(TIMM_PREFIX):
        try:
            # lazy: an optional dependency (the ``timm`` extra)
            import timm
        except ImportError as exc:
            raise ValueError(f"backbone {name} needs timm: pip install 'robustret[timm]'"
                             ) from exc
        if not timm.is_model(name[len(TIMM_PREFIX):]):
            raise ValueError(f"timm has no model {name[len(TIMM_PREFIX):]!r}; list them with "
                             "timm.list_models()")
        return
    plain = name[len(TORCHVISION_PREFIX):] if name.startswith(TORCHVISION_PREFIX) else name
    if plain in BACKBONES or plain in torchvision_names():
        return
    if name.startswith(TORCHVISION_PREFIX):
        raise ValueError(f"unknown torchvision classification model {plain!r}; choose one of "
                         "torchvision.models.list_models(module=torchvision.models)")
    raise KeyError(f"unknown backbone {name!r}; available: {', '.join(BACKBONES.names())}, "
                   "any torchvision classification model (tv:NAME) or timm model (timm:NAME)")


def use_gem(backbone: Backbone, name: str, gem_module: nn.Module) -> None:
    """Put ``gem_module`` in place of ``backbone``'s global average pool (in place).

    Raises:
        ValueError: the backbone has no spatial feature map to pool (VGG's fc7 features, a
            token model such as a ViT); the message says what to use instead.
    """
    if backbone.pool_name is None:
        raise ValueError(f"GeM pools a CNN's last spatial feature map; backbone {name} has "
                         "none GeM can replace (VGG's fc7 features, or a token model whose "
                         "descriptor is its own class token or token mean): use --pooling avg")
    replace_module(backbone.trunk, backbone.pool_name, gem_module)


def load_torchvision_weights(trunk: nn.Module, path: str | Path, head_name: str) -> None:
    """Load a plain ``state_dict`` file (e.g. torchvision's ``resnet34-b627a593.pth``, or a
    timm ``.pth`` / ``.safetensors``) into ``trunk``.

    The head (``fc.*`` / ``classifier.6.*`` / timm's classifier) is ignored: its class count
    differs from ours. A GeM exponent is not expected in the file (it starts at its setting).

    Args:
        trunk: the backbone's trunk module (keys gain the prefix of its one network child).
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
    state = _read_state(path)
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
    pooling = {f"{name}.{key}" for name, module in trunk.named_modules()
               if isinstance(module, GeM) for key in module.state_dict()}
    own = {key: value for key, value in trunk.state_dict().items() if key not in pooling}
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
            "Pass the checkpoint of the same architecture (its classifier is ignored)."
        )
    trunk.load_state_dict(state, strict=False)
    log.info("loaded backbone weights from %s", path)


def _read_state(path: Path) -> object:
    """The object in a torch weights file, or a ``.safetensors`` file's tensors."""
    try:
        if path.suffix == ".safetensors":
            # lazy: safetensors comes with timm (the ``timm`` extra)
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except ImportError as exc:
        raise ValueError(f"cannot read weights file {path}: .safetensors needs the "
                         "safetensors package (pip install safetensors)") from exc
    except Exception as exc:  # torch raises many kinds for a file that is not its own
        raise ValueError(f"cannot read weights file {path}: not a torch file of tensors "
                         f"({type(exc).__name__})") from exc
