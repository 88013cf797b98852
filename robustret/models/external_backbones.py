"""Backbones built by name from torchvision's classification models and, when installed, from
timm; always without weights (nothing is downloaded), loaded from a local file later.

``tv:NAME`` (or a plain NAME that is not one of the registered backbones) is
``torchvision.models.get_model(NAME, weights=None)`` with its classification layer (the last
``nn.Linear``) replaced by the identity: the trunk gives what that layer read, the model's own
pooled features. ``timm:NAME`` is ``timm.create_model(NAME, pretrained=False, num_classes=0)``,
whose output is timm's pooled pre-logits features. For a CNN these are the average of the last
feature map, which GeM can replace (:func:`robustret.models.pooling.global_pool_name` finds the
pool); for a token model (ViT, DeiT, Swin's tokens ...) they are what the model pools itself
(torchvision's ViT: the class token; timm: its ``global_pool`` setting, ``token`` or ``avg``),
and GeM is refused. Token models with a fixed patch grid need the input size they were built
for (e.g. ``--image-size 224``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from robustret.models.pooling import global_pool_name, replace_module

#: the prefixes of a backbone name that say which library builds it
TORCHVISION_PREFIX, TIMM_PREFIX = "tv:", "timm:"
#: constructor options some torchvision models need to return one tensor in train mode
_TV_OPTIONS = {"googlenet": {"aux_logits": False, "init_weights": True},
               "inception_v3": {"aux_logits": False, "init_weights": True}}


#: the seed of the libraries' own initialisation at construction (see :func:`_fixed_draws`)
CONSTRUCTION_SEED = 0


@contextmanager
def _fixed_draws() -> Iterator[None]:
    """Make what a library draws while building a model the same every time, leaving torch's
    global RNG as it was: its convolutions and linear layers are re-drawn from the run's seed
    later (:func:`robustret.models.init_retriever`), but other parameters (a ViT's position
    embedding, ...) keep their construction values, which would otherwise depend on the global
    RNG's state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(CONSTRUCTION_SEED)
        yield


class ExternalTrunk(nn.Module):
    """A library's network with its classifier removed: (B, 3, H, W) -> (B, D).

    The network is the one child ``net``, so its ``state_dict`` keys are the library's own
    under ``net.``.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x)
        if not isinstance(out, Tensor) or out.ndim != 2:
            raise ValueError(f"{type(self.net).__name__} did not give (B, D) features "
                             f"(got {type(out).__name__}); it cannot serve as a backbone")
        return out


def torchvision_names() -> list[str]:
    """torchvision's classification model names (``torchvision.models.list_models``)."""
    # lazy: heavy; loaded when a torchvision backbone is named
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def build_torchvision(name: str) -> tuple[ExternalTrunk, str, int, str | None]:
    """torchvision model ``name`` without weights, its classification layer removed.

    Returns:
        ``(trunk, head_name, embedding_dim, pool_name)``: the head's key prefix in the
        library's ``state_dict`` (skipped when loading weights), D, and the dotted name
        inside ``trunk`` of its global average pool (None: none GeM can replace).
    Raises:
        ValueError: not a torchvision classification model, or one without a final
            ``nn.Linear`` classifier.
    """
    # lazy: heavy; loaded when a torchvision backbone is named
    import torchvision

    if name not in torchvision_names():
        raise ValueError(f"unknown torchvision classification model {name!r}; choose one of "
                         "torchvision.models.list_models(module=torchvision.models), e.g. "
                         "resnet18, convnext_tiny, efficientnet_b0, vit_b_16")
    with _fixed_draws():
        net = torchvision.models.get_model(name, weights=None, **_TV_OPTIONS.get(name, {}))
    return _cut(net, name)


def build_timm(name: str) -> tuple[ExternalTrunk, str, int, str | None]:
    """timm model ``name`` without weights and without classifier (``num_classes=0``).

    Returns:
        As :func:`build_torchvision`.
    Raises:
        ValueError: timm is not installed (says how to install it) or does not know ``name``.
    """
    try:
        # lazy: an optional dependency (the ``timm`` extra)
        import timm
    except ImportError as exc:
        raise ValueError(f"backbone timm:{name} needs timm: pip install 'robustret[timm]'"
                         ) from exc
    if not timm.is_model(name):
        raise ValueError(f"timm has no model {name!r}; list them with timm.list_models()")
    with _fixed_draws():
        net = timm.create_model(name, pretrained=False, num_classes=0)
    head = (getattr(net, "pretrained_cfg", None) or {}).get("classifier") or "head"
    trunk = ExternalTrunk(net)
    pool = global_pool_name(trunk)
    return trunk, str(head), int(net.num_features), pool


def _cut(net: nn.Module, name: str) -> tuple[ExternalTrunk, str, int, str | None]:
    """Replace ``net``'s last ``nn.Linear`` (its classifier) by the identity."""
    linears = [(key, module) for key, module in net.named_modules()
               if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError(f"torchvision model {name} has no nn.Linear classifier to remove; it "
                         "cannot serve as a backbone here")
    head_name, head = linears[-1]
    replace_module(net, head_name, nn.Identity())
    trunk = ExternalTrunk(net)
    return trunk, head_name, int(head.in_features), global_pool_name(trunk)
