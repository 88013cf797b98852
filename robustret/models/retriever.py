"""The retrieval network of the study: learned 1x1 grayscale stem + CNN trunk + class head.

``forward(x)`` -> class logits of the pooled features (trained with cross-entropy);
``pooled(x)`` -> the trunk's pooled features (ResNet34: the last conv block after global
average pooling, 512-d, not normalised; with ``pooling="gem"``, GeM pooling,
:mod:`robustret.models.pooling`); ``embed(x)`` -> the retrieval descriptor: the pooled features,
or, once a whitening is set (:meth:`Retriever.set_whitening`), their PCA-whitened,
L2-normalised form (:mod:`robustret.models.whitening`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from robustret.core.io import load_checkpoint
from robustret.models.backbones import build_backbone, load_torchvision_weights, use_gem
from robustret.models.descriptor import POOLINGS
from robustret.models.pooling import GeM
from robustret.models.whitening import Whitening, WhiteningLayer

log = logging.getLogger(__name__)


class Retriever(nn.Module):
    """Stem + trunk + head.

    Args:
        backbone: a name :func:`robustret.models.backbones.build_backbone` takes.
        num_classes: units of the classification head.
        in_channels: 1 (grayscale, through a learned 1x1 conv 1 -> 3) or 3 (no stem).
        channels_last: convert the parameters to ``torch.channels_last`` memory format and
            feed inputs in that format (same results up to rounding; its speed is in
            docs/benchmarks.md, "Retriever training").
        pooling: ``avg`` (the backbone's own global pooling) or ``gem`` (GeM in place of its
            global average pool; a backbone without a spatial map raises ValueError).
        gem_p: GeM's exponent (its start when learned), >= 1.
        gem_learn: learn GeM's exponent.

    Inputs are (B, in_channels, H, W) float in [0, 1]; they are mapped to [-1, 1] inside
    (the study's normalisation), after the 1x1 stem's input.
    """

    def __init__(self, backbone: str = "resnet34", *, num_classes: int, in_channels: int = 1,
                 channels_last: bool = False, pooling: str = "avg", gem_p: float = 3.0,
                 gem_learn: bool = True) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        spec = build_backbone(backbone)
        if pooling == "gem":
            use_gem(spec, backbone, GeM(gem_p, learn=gem_learn))
        self.pooling, self.gem_p, self.gem_learn = pooling, float(gem_p), bool(gem_learn)
        self.backbone_name = backbone
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.embedding_dim = spec.embedding_dim
        self.head_name = spec.head_name
        self.stem: nn.Module = nn.Conv2d(1, 3, kernel_size=1) if in_channels == 1 else nn.Identity()
        self.trunk = spec.trunk
        self.head = nn.Linear(spec.embedding_dim, num_classes)
        self.whitening: WhiteningLayer | None = None
        self.channels_last = bool(channels_last)
        self.weights_file: str | None = (
            None  # set by build_retriever when trunk weights were loaded
        )
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def arch(self) -> dict[str, Any]:
        """Constructor arguments, stored in checkpoints so :func:`load_retriever` can rebuild."""
        pooling = ({} if self.pooling == "avg" else
                   {"pooling": self.pooling, "gem_p": self.gem_p, "gem_learn": self.gem_learn})
        return {
            "backbone": self.backbone_name,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            **pooling,  # absent for avg: the arch (and keys) of earlier releases
        }

    def set_whitening(self, whitening: Whitening | None) -> None:
        """Make :meth:`embed` whiten the pooled features with ``whitening`` (None: stop).

        It is not part of :meth:`arch`: a whitening is learned after training, from the
        embeddings (:func:`robustret.models.whitening.fit_whitening`), and kept by whoever
        learned it; :meth:`forward` and :meth:`features` keep the pooled features.

        Raises:
            ValueError: it takes another embedding size than this trunk's.
        """
        if whitening is not None and whitening.input_dim != self.embedding_dim:
            raise ValueError(f"the whitening takes {whitening.input_dim}-d embeddings; "
                             f"{self.backbone_name} gives {self.embedding_dim}-d")
        self.whitening = None if whitening is None else WhiteningLayer(whitening).to(
            self.head.weight.device)

    def _prepare(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected (B, {self.in_channels}, H, W) images in [0, 1]; got shape "
                f"{tuple(x.shape)}"
            )
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.stem(x * 2.0 - 1.0)  # [0, 1] -> [-1, 1], then 1 -> 3 channels

    def pooled(self, x: Tensor) -> Tensor:
        """The trunk's pooled features (what the head reads).

        Args:
            x: (B, in_channels, H, W) float in [0, 1].
        Returns:
            (B, embedding_dim) float, not normalised.
        """
        return self.trunk(self._prepare(x))

    def embed(self, x: Tensor) -> Tensor:
        """Retrieval embedding: :meth:`pooled`, whitened when a whitening is set.

        Args:
            x: (B, in_channels, H, W) float in [0, 1].
        Returns:
            (B, embedding_dim) float, not normalised; with a whitening (B, d), L2-normalised.
        """
        pooled = self.pooled(x)
        return pooled if self.whitening is None else self.whitening(pooled)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (B, num_classes) of (B, in_channels, H, W) images in [0, 1]."""
        return self.head(self.pooled(x))

    def feature_layers(self) -> tuple[str, ...]:
        """Names :meth:`features` accepts: ``embedding`` and, for ResNet trunks, the outputs
        of the residual stages ``layer1`` .. ``layer4``."""
        stages = ("layer1", "layer2", "layer3", "layer4") if _resnet_of(self.trunk) else ()
        return (*stages, "embedding")

    def features(self, x: Tensor, layers: tuple[str, ...] = ("embedding",)) -> dict[str, Tensor]:
        """Intermediate activations of ``x`` by name (for feature losses).

        Args:
            x: (B, in_channels, H, W) float in [0, 1].
            layers: names from :meth:`feature_layers`.
        Returns:
            ``{name: tensor}``: ``embedding`` (B, embedding_dim), the pooled features (what
            the head reads; :meth:`embed` whitens them when a whitening is set);
            ``layerN`` (B, C_N, h, w).
        Raises:
            ValueError: a name this trunk does not have.
        """
        unknown = sorted(set(layers) - set(self.feature_layers()))
        if unknown:
            raise ValueError(f"unknown feature layer(s) {', '.join(unknown)} for "
                             f"{self.backbone_name}; available: {', '.join(self.feature_layers())}")
        resnet = _resnet_of(self.trunk)
        if resnet is None or layers == ("embedding",):
            return {"embedding": self.pooled(x)}
        out: dict[str, Tensor] = {}
        h = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(self._prepare(x)))))
        for name in ("layer1", "layer2", "layer3", "layer4"):
            h = getattr(resnet, name)(h)
            if name in layers:
                out[name] = h
        if "embedding" in layers:
            out["embedding"] = torch.flatten(resnet.avgpool(h), 1)
        return out


def _resnet_of(trunk: nn.Module) -> nn.Module | None:
    """The torchvision ResNet inside a ResNet trunk, else None."""
    inner = getattr(trunk, "resnet", None)
    return inner if inner is not None and hasattr(inner, "layer4") else None


def init_retriever(
    model: Retriever, generator: torch.Generator, *, trunk: bool = True
) -> Retriever:
    """Re-initialise the weights from ``generator`` (in place), leaving torch's global RNG alone.

    torchvision's initialisation drawn from ``generator``: convolutions Kaiming-normal
    (fan_out, ReLU) with zero bias, batch norms 1 / 0, linear layers
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's default), the 1x1 stem like a convolution.

    Args:
        model: the retriever.
        generator: a CPU ``torch.Generator``, e.g.
            ``make_generator(stream_seed(seed, "retriever/init"))``.
        trunk: also re-draw the trunk; False keeps loaded pretrained trunk weights and only
            re-draws the stem and the head.
    Returns:
        ``model``.
    """
    modules = [model.stem, model.head] + ([model.trunk] if trunk else [])
    with torch.no_grad():
        for part in modules:
            for module in part.modules():
                if isinstance(module, nn.Conv2d):
                    weight = torch.empty(module.weight.shape)
                    nn.init.kaiming_normal_(
                        weight, mode="fan_out", nonlinearity="relu", generator=generator
                    )
                    module.weight.copy_(weight)
                    if module.bias is not None:
                        module.bias.zero_()
                elif isinstance(module, nn.Linear):
                    bound = 1.0 / math.sqrt(module.in_features)
                    module.weight.copy_(
                        torch.empty(module.weight.shape).uniform_(
                            -bound, bound, generator=generator
                        )
                    )
                    if module.bias is not None:
                        module.bias.copy_(
                            torch.empty(module.bias.shape).uniform_(
                                -bound, bound, generator=generator
                            )
                        )
                elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
                    module.reset_parameters()
    return model


def build_retriever(
    backbone: str = "resnet34",
    *,
    num_classes: int,
    in_channels: int = 1,
    weights: str | Path | None = None,
    pretrained: str | None = None,
    channels_last: bool = False,
    pooling: str = "avg",
    gem_p: float = 3.0,
    gem_learn: bool = True,
) -> Retriever:
    """Build a :class:`Retriever` with random weights, or trunk weights from a local file.

    Args:
        backbone: ``resnet18`` (512-d), ``resnet34`` (512-d, the study), ``resnet50`` (2048-d),
            ``vgg19`` (4096-d fc7), any torchvision classification model (``tv:NAME``) or,
            with timm installed, any timm model (``timm:NAME``).
        num_classes: classes of the head.
        in_channels: 1 (learned 1x1 stem to 3 channels) or 3.
        weights: a local checkpoint of the backbone (plain state_dict, e.g. torchvision's
            ``resnet34-b627a593.pth`` or a timm ``.pth`` / ``.safetensors``) loaded into the
            trunk; its head is ignored.
        pretrained: ``"imagenet"`` requires ``weights``: nothing is downloaded here.
        channels_last: see :class:`Retriever`.
        pooling, gem_p, gem_learn: see :class:`Retriever`.
    Raises:
        KeyError: unknown backbone (lists the available ones).
        ValueError: ``pretrained`` without ``weights``, a weights file that does not fit
            (naming the missing and unexpected keys), or GeM on a backbone without a spatial
            feature map.
        FileNotFoundError: ``weights`` does not exist.
    """
    if pretrained is not None:
        if pretrained != "imagenet":
            raise ValueError(f"pretrained must be None or 'imagenet', got {pretrained!r}")
        if weights is None:
            raise ValueError(
                f"pretrained='imagenet' needs a local weights file: downloads are impossible here "
                f"(no internet). Put the torchvision checkpoint for {backbone} (e.g. "
                "resnet34-b627a593.pth) "
                "on disk and pass weights=PATH (CLI: --weights PATH)."
            )
    model = Retriever(backbone, num_classes=num_classes, in_channels=in_channels,
                      pooling=pooling, gem_p=gem_p, gem_learn=gem_learn)
    if weights is not None:
        load_torchvision_weights(model.trunk, weights, model.head_name)
        model.weights_file = str(weights)
    if channels_last:
        model.channels_last = True
        model.to(memory_format=torch.channels_last)
    return model


def load_retriever(
    path: str | Path, device: torch.device | str = "cpu", *, channels_last: bool = False,
    required: bool = False,
) -> Retriever:
    """Rebuild a :class:`Retriever` from a checkpoint holding ``arch`` and ``model``.

    Written by :func:`robustret.train.classifier.train_retriever` (``out_dir/last.pt``): the
    architecture (backbone, class count, input channels) is stored beside the weights.

    Args:
        path: the checkpoint file.
        device: where the model goes.
        channels_last: convert to channels_last memory format after loading.
        required: refuse a checkpoint without its ``.sha256`` sidecar (a cached one: it was
            written with one, so a missing sidecar means it cannot be verified).
    Returns:
        The model in ``eval()`` mode on ``device``.
    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a retriever checkpoint; :class:`~robustret.core.io.CorruptFileError`
            when it does not match its sidecar (or, with ``required``, has none).
    """
    state = load_checkpoint(path, required=required)
    if "arch" not in state or "model" not in state:
        raise ValueError(
            f"{path} is not a retriever checkpoint (needs 'arch' and 'model'; has {sorted(state)})"
        )
    model = Retriever(**state["arch"])
    model.load_state_dict(state["model"])
    if channels_last:
        model.channels_last = True
        model.to(memory_format=torch.channels_last)
    return model.to(device).eval()
