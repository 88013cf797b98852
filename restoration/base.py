"""The restorer contract shared by networks and classical filters.

A restorer is an ``nn.Module`` mapping a ``(B, C, H, W)`` float batch in ``[0, 1]`` to a batch
of the same shape, dtype, device and range. Networks compute an unbounded (or ``[-1, 1]``)
output internally; :meth:`Restorer.restore` exposes it unclamped for training (so the MSE
gradient never vanishes at the range limits) and :meth:`Restorer.forward` clamps it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from robustret.checks import check_images


class Restorer(nn.Module):
    """Base class: subclasses implement :meth:`restore_raw`.

    Attributes:
        restorer_name: registry name the module was built under (set by ``restoration.build``).
        restorer_options: keyword options it was built with (stored in checkpoints).
        trainable: whether the module has parameters worth training.
    """

    trainable: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.restorer_name: str = type(self).__name__.lower()
        self.restorer_options: dict[str, Any] = {}

    def restore_raw(self, images: Tensor) -> Tensor:
        """Restore without the final clamp.

        Args:
            images: (B, C, H, W) float in [0, 1].
        Returns:
            (B, C, H, W), values approximately (not strictly) in [0, 1].
        """
        raise NotImplementedError

    def restore(self, images: Tensor, *, clamp: bool = True) -> Tensor:
        """Restore ``images``; ``clamp=False`` is for training losses.

        Args:
            images: (B, C, H, W) float in [0, 1].
            clamp: clamp the result to [0, 1].
        Returns:
            (B, C, H, W), same device and dtype as ``images``.
        """
        check_images(images, "images", check_values=False)
        out = self.restore_raw(images)
        return out.clamp(0.0, 1.0) if clamp else out

    def forward(self, images: Tensor) -> Tensor:
        """(B, C, H, W) float in [0, 1] -> restored (B, C, H, W) float in [0, 1]."""
        return self.restore(images, clamp=True)


class Identity(Restorer):
    """Returns its input unchanged: the "no restoration" row of every table."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.channels = channels

    def restore_raw(self, images: Tensor) -> Tensor:
        return images


def init_weights(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialise every conv / transposed conv / batch norm from ``generator`` (in place).

    Same distributions as PyTorch's defaults (Kaiming-uniform with a = sqrt(5), bias
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), batch norm 1 / 0) but drawn from ``generator``, so a
    training run is reproducible without touching torch's global random state.

    Returns:
        ``model``.
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                if module.bias is not None:
                    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
                    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                    nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
    return model
