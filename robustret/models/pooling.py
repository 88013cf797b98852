"""Global pooling of a feature map: generalised-mean (GeM) pooling and the swap that puts it in
place of a network's own global average pool.

GeM (Radenovic, Tolias and Chum, TPAMI 2018) pools each channel of a ``(B, C, h, w)`` map as
``(mean_i x_i^p)^(1/p)`` over the positions ``i``: ``p = 1`` is the average, ``p -> inf`` the
maximum. Activations are clamped to ``>= eps`` first (the map of a ReLU network is >= 0; the
clamp keeps the power defined and the gradient finite). The mean of powers is computed as
``exp((logsumexp(p log x) - log n) / p)``, which stays finite for large ``p``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

#: the smallest p GeM uses: below 1 it would no longer be a mean between average and maximum
MIN_P = 1.0


def gem(x: Tensor, p: Tensor | float, eps: float = 1e-6) -> Tensor:
    """Generalised-mean pooling over the spatial positions.

    Args:
        x: (B, C, h, w) float feature map.
        p: the exponent, a float or a 0-d / (1,) tensor (gradients flow into it); clamped to
            ``>= 1``.
        eps: activations are clamped to ``>= eps`` (> 0) before the power.
    Returns:
        (B, C, 1, 1), same dtype and device as ``x``.
    Raises:
        ValueError: ``x`` is not 4-d, or ``eps`` <= 0.
    """
    if x.ndim != 4:
        raise ValueError(f"gem pools a (B, C, h, w) feature map; got shape {tuple(x.shape)}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0; got {eps}")
    p = torch.as_tensor(p, dtype=x.dtype, device=x.device).reshape(()).clamp(min=MIN_P)
    logs = x.clamp(min=eps).log().flatten(2)  # (B, C, h*w)
    pooled = (torch.logsumexp(p * logs, dim=2) - math.log(logs.shape[2])) / p  # (B, C)
    return pooled.exp()[:, :, None, None]


class GeM(nn.Module):
    """:func:`gem` as a module, a drop-in for ``nn.AdaptiveAvgPool2d(1)`` (same output shape).

    Args:
        p: the exponent (the starting value when learned), >= 1.
        learn: make ``p`` a parameter trained with the network (else a fixed buffer).
        eps: the activation floor, > 0.
    """

    def __init__(self, p: float = 3.0, *, learn: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not p >= MIN_P:
            raise ValueError(f"GeM's p must be a number >= {MIN_P}; got {p!r}")
        if not eps > 0:
            raise ValueError(f"GeM's eps must be > 0; got {eps}")
        value = torch.tensor([float(p)])
        if learn:
            self.p = nn.Parameter(value)
        else:
            self.register_buffer("p", value)
        self.eps = float(eps)
        self.learn = bool(learn)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, h, w) -> (B, C, 1, 1)."""
        return gem(x, self.p, self.eps)

    def extra_repr(self) -> str:
        return f"p={float(self.p.detach()):.4g}, learn={self.learn}, eps={self.eps:g}"


def global_pool_name(trunk: nn.Module) -> str | None:
    """The dotted name of ``trunk``'s global average pool, which GeM can replace: the
    shallowest ``nn.AdaptiveAvgPool2d`` with output size 1 (deeper ones are inside blocks,
    e.g. squeeze-and-excitation); None when there is none or two at that depth (a token model
    such as a ViT, or a network that pools in its ``forward`` code)."""
    names = [name for name, module in trunk.named_modules()
             if isinstance(module, nn.AdaptiveAvgPool2d)
             and module.output_size in (1, (1, 1))]
    if not names:
        return None
    depth = min(name.count(".") for name in names)
    top = [name for name in names if name.count(".") == depth]
    return top[0] if len(top) == 1 else None


def replace_module(root: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` in place of the submodule ``name`` (dotted) of ``root``."""
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)
