"""The study's denoising autoencoder (one model for Gaussian, salt-and-pepper and speckle noise).

Architecture (defaults = the study): an encoder of 5 blocks ``3x3 conv (stride 2, padding 1)
-> ReLU -> BatchNorm`` halving the size each time, a decoder of 5 blocks ``3x3 transposed conv
(stride 2, padding 1, output padding 1) -> LeakyReLU -> BatchNorm`` doubling it back, and a last
``3x3 conv (padding 1) -> tanh`` to the image channels. The study describes the last layer only
as "tanh"; the 3x3 projection from ``widths[0]`` channels to ``C`` is our choice. With the default
widths (16, 32, 64, 128, 256) and one input channel the net has 0.79 M parameters (its speed
is in docs/benchmarks.md).

The study works in ``[-1, 1]``; this module takes and returns ``[0, 1]`` and converts inside
:meth:`DenoisingAutoencoder.restore_raw`.

Sizes: 5 stride-2 stages need ``H`` and ``W`` divisible by 32. Other sizes are padded up to the
next multiple of 32 and cropped back in :func:`pad_to_multiple` / the crop right after it, the
one place where this happens (reflect padding, replicate where the image is too small to reflect).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from restoration.base import Restorer

MULTIPLE = 32
"""The spatial size the DAE needs: 2 ** (number of stride-2 stages)."""


def pad_to_multiple(images: Tensor,
                    multiple: int = MULTIPLE) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Pad H and W up to the next multiple of ``multiple``, split evenly on both sides.

    Reflect padding where each pad is smaller than the side it mirrors, replicate otherwise.

    Args:
        images: (B, C, H, W) float.
        multiple: target divisor.
    Returns:
        The padded (B, C, H', W') batch and the (left, right, top, bottom) pads to crop away.
    """
    h, w = images.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    if ph == 0 and pw == 0:
        return images, pads
    mode = "reflect" if max(pads[0], pads[1]) < w and max(pads[2], pads[3]) < h else "replicate"
    return F.pad(images, pads, mode=mode), pads


class DenoisingAutoencoder(Restorer):
    """The study's convolutional denoising autoencoder.

    Args:
        channels: image channels C (1 grayscale, 3 colour).
        widths: output channels of the 5 encoder blocks; the decoder mirrors them.
        negative_slope: slope of the decoder's LeakyReLU.
        skips: add each encoder block's output to the decoder output of the same resolution
            (symmetric skip connections, as in RED-Net). Not in the study (default False): the
            plain bottleneck down to 1/32 of the size blurs details away, which a short CPU
            training cannot undo; the quick profile turns skips on (docs/restoration.md).
    """

    trainable = True

    def __init__(self, channels: int = 1, widths: Sequence[int] = (16, 32, 64, 128, 256),
                 negative_slope: float = 0.01, skips: bool = False) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1:
            raise ValueError(f"widths must be a non-empty sequence of positive ints, got {widths}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.channels, self.widths, self.skips = channels, tuple(widths), bool(skips)
        self.multiple = 2 ** len(widths)
        enc: list[nn.Module] = []
        c_in = channels
        for w in widths:
            enc += [nn.Conv2d(c_in, w, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                    nn.BatchNorm2d(w)]
            c_in = w
        dec: list[nn.Module] = []
        for w in [*reversed(widths[:-1]), widths[0]]:
            dec += [nn.ConvTranspose2d(c_in, w, 3, stride=2, padding=1, output_padding=1),
                    nn.LeakyReLU(negative_slope, inplace=True), nn.BatchNorm2d(w)]
            c_in = w
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)
        self.head = nn.Conv2d(c_in, channels, 3, padding=1)

    def _features(self, x: Tensor) -> Tensor:
        """Encoder then decoder (B, C, H, W) -> (B, widths[0], H, W).

        With ``skips`` each decoder block's output gets its encoder twin's output added.
        """
        if not self.skips:
            return self.decoder(self.encoder(x))
        saved = []
        for i in range(0, len(self.encoder), 3):                 # (conv, ReLU, BN) blocks
            x = self.encoder[i + 2](self.encoder[i + 1](self.encoder[i](x)))
            saved.append(x)
        saved.pop()                                              # the bottleneck itself
        for i in range(0, len(self.decoder), 3):
            x = self.decoder[i + 2](self.decoder[i + 1](self.decoder[i](x)))
            if saved:
                x = x + saved.pop()                              # same width and resolution
        return x

    def restore_raw(self, images: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> (B, C, H, W) in [0, 1] (tanh output mapped from [-1, 1])."""
        h, w = images.shape[-2:]
        # the study's [-1, 1]
        padded, (left, _, top, _) = pad_to_multiple(images * 2.0 - 1.0, self.multiple)
        out = self.head(self._features(padded)).tanh()  # study's tanh output
        out = out[..., top:top + h, left:left + w]  # crop back: the only place sizes change
        return (out + 1.0) * 0.5

