"""SRCNN as used by the study: 5 size-preserving convolutions on a full-size degraded image.

The nearest-neighbour upscaling of the low-resolution image is part of the degradation
(``degradations`` returns full-size queries), so the network sees and returns ``H x W``.

Layers (the study): three 5x5 convolutions (padding 2) and two 3x3 convolutions (padding 1),
ReLU between them, none after the last. The study does not give channel widths; the default
``widths=(128, 64, 32, 32)`` (0.27 M parameters, about 2.5 GMAC per 96x96 grayscale image) is
our choice, close to the size of the study's SRCNN (speed: docs/benchmarks.md).
``residual=True`` predicts a correction added to the input (VDSR-style) instead of the image
itself; the default is the study's plain stack.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from restoration.base import Restorer

KERNELS = (5, 5, 5, 3, 3)
"""Kernel sizes of the study's 5 layers; every conv pads by k // 2, so H x W is kept."""


class SRCNN(Restorer):
    """The study's 5-layer SRCNN.

    Args:
        channels: image channels C (1 or 3).
        widths: output channels of the first 4 layers (the 5th outputs C).
        kernels: kernel size of each of the 5 layers (odd).
        residual: add the input to the output (learn the correction only).
    """

    trainable = True

    def __init__(self, channels: int = 1, widths: Sequence[int] = (128, 64, 32, 32),
                 kernels: Sequence[int] = KERNELS, residual: bool = False) -> None:
        super().__init__()
        widths, kernels = [int(w) for w in widths], [int(k) for k in kernels]
        if len(kernels) != len(widths) + 1:
            raise ValueError(f"need one kernel per layer: {len(widths) + 1} for widths {widths}, "
                             f"got {kernels}")
        if any(k % 2 == 0 for k in kernels) or min(widths, default=1) < 1:
            raise ValueError(f"kernels must be odd and widths positive; got kernels {kernels}, "
                             f"widths {widths}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.channels, self.residual = channels, residual
        self.widths, self.kernels = tuple(widths), tuple(kernels)
        layers: list[nn.Module] = []
        c_in = channels
        for i, k in enumerate(kernels):
            c_out = widths[i] if i < len(widths) else channels
            layers.append(nn.Conv2d(c_in, c_out, k, padding=k // 2))
            if i < len(kernels) - 1:
                layers.append(nn.ReLU(inplace=True))
            c_in = c_out
        self.body = nn.Sequential(*layers)

    def restore_raw(self, images: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> (B, C, H, W), unclamped."""
        out = self.body(images)
        return out + images if self.residual else out
