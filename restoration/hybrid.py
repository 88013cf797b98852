"""A classical filter as front end with a small learned residual on top.

``restored = front(degraded, params) + gate * net([degraded, front(degraded, params)])``: the
front is a registered classical restorer (median for impulse noise, Wiener with the drawn blur,
bicubic for low resolution; the experiment chooses it per family) and runs without gradients;
the net is a few 3x3 convolutions that see both the degraded input and the front's output.
``gate`` is a learned scalar that starts at 0, so an untrained hybrid is exactly its front.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from restoration.base import Restorer
from restoration.registry import RESTORERS


class HybridRestorer(Restorer):
    """Classical front end + learned residual.

    Args:
        channels: image channels C (1 or 3).
        front: a registered classical restorer (``restoration.classical()``), or ``identity``.
        widths: channels of the hidden convolutions.
    """

    trainable = True
    uses_params = ("a", "b", "level")

    def __init__(self, channels: int = 1, front: str = "median",
                 widths: Sequence[int] = (32, 32, 32)) -> None:
        super().__init__()
        if front not in RESTORERS or RESTORERS.is_trainable(front):
            raise ValueError(
                f"front must be a classical restorer ({', '.join(RESTORERS.classical())}"
                f" or identity); got {front!r}"
            )
        if not widths:
            raise ValueError("widths must name at least one hidden layer")
        self.channels, self.front_name, self.widths = int(channels), front, tuple(widths)
        self.front = RESTORERS.build(front)
        layers: list[nn.Module] = []
        previous = 2 * self.channels
        for width in self.widths:
            layers += [nn.Conv2d(previous, width, 3, padding=1), nn.ReLU(inplace=True)]
            previous = width
        layers.append(nn.Conv2d(previous, self.channels, 3, padding=1))
        self.net = nn.Sequential(*layers)
        self.gate = nn.Parameter(torch.zeros(1))

    def restore_raw(self, images: Tensor, **params: Tensor | float) -> Tensor:
        """(B, C, H, W) in [0, 1] -> front output plus the gated residual, unclamped."""
        with torch.no_grad():
            base = self.front(images, params or None)
        return base + self.gate * self.net(torch.cat([images, base], dim=1))
