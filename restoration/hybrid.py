"""A classical filter as front end with a small learned residual on top.

``restored = front(degraded, params) + gate * net([degraded, front(degraded, params), planes])``:
the front is a registered classical restorer (median for impulse noise, Wiener with the drawn
blur, bicubic for low resolution; the experiment chooses it per family) and runs without
gradients; the net sees the degraded input, the front's output and, with ``condition``, one
constant plane per known property of each image's degradation (:data:`CONDITIONS`: its
severity, the noise kind, the low-resolution level), so that one model can serve every
severity as a model per severity would (the way the Wiener front end is told each image's
blur). ``gate`` is a learned scalar that starts at 0, so an untrained hybrid is exactly its
front.

Bodies (:data:`BODIES`): ``plain``, a stack of 3x3 convolutions at full resolution (receptive
field ``2 * len(widths) + 3`` px); ``unet``, an encoder-decoder of one scale per width (full,
1/2, 1/4, ... of the side, skip concatenations; at least two): three widths cover about 50 px,
for coarse degradations (8 px blocks of low resolution, heavy noise), four about 100 px.
``shuffle = s`` runs the unet on ``s x s`` space-to-depth blocks (``pixel_unshuffle`` in,
``pixel_shuffle`` out): its finest scale is ``1/s`` of the side and its output still full
resolution. Full-resolution convolutions are most of a unet's cost, so the same time per step
buys wider scales; what that is worth is measured in docs/results.md, section 00f.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restoration.base import Restorer
from restoration.dae import pad_to_multiple
from restoration.registry import RESTORERS

NOISE_KINDS = 3
"""Kinds of the noise mixture's ``kind`` parameter (0 Gaussian, 1 salt-and-pepper, 2 speckle)."""


def _scaled(centre: float, half_range: float) -> Callable[[Tensor], Tensor]:
    def planes(value: Tensor) -> Tensor:
        return ((value.float() - centre) / half_range).unsqueeze(1)
    return planes


def _one_hot_kind(value: Tensor) -> Tensor:
    kind = value.long()
    if bool(((kind < 0) | (kind >= NOISE_KINDS)).any()) or bool((kind != value).any()):
        raise ValueError(f"params['kind'] must hold integers 0..{NOISE_KINDS - 1} (the noise "
                         f"mixture's kinds); got {sorted(set(value.tolist()))}")
    return F.one_hot(kind, NOISE_KINDS).float()


CONDITIONS: dict[str, tuple[int, Callable[[Tensor], Tensor]]] = {
    "severity": (1, _scaled(3.0, 2.0)),   # 1..5 -> [-1, 1]
    "level": (1, _scaled(2.0, 1.0)),      # Haar levels 1..3 -> [-1, 1]
    "kind": (NOISE_KINDS, _one_hot_kind),  # noise kind -> one-hot
}
"""Degradation parameters a hybrid can be conditioned on: name -> (planes, (B,) -> (B, planes))."""

BODIES = ("plain", "unet")
"""The residual network's shapes."""


def _convs(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU(inplace=True))


class _UNet(nn.Module):
    """``len(widths)`` scales: (B, c_in, H, W) -> (B, c_out, H, W), H and W divisible by
    ``shuffle * 2 ** (len(widths) - 1)`` (:attr:`multiple`). Scale ``i`` runs ``enc{i}`` at
    ``1 / (shuffle * 2**i)`` of the side, ``down{i}`` halves it, ``dec{i}`` merges the upsampled
    coarser scale with ``enc{i}``'s output (the three-scale names are those of earlier
    releases); with ``shuffle`` s > 1 the input enters as ``pixel_unshuffle(x, s)`` (s*s*c_in
    channels) and ``out``'s s*s*c_out channels leave through ``pixel_shuffle``."""

    def __init__(self, c_in: int, c_out: int, widths: Sequence[int], shuffle: int = 1) -> None:
        super().__init__()
        self.scales, self.shuffle = len(widths), int(shuffle)
        c_in, c_out = c_in * self.shuffle ** 2, c_out * self.shuffle ** 2
        for i, width in enumerate(widths):
            setattr(self, f"enc{i}", _convs(c_in if i == 0 else widths[i - 1], width))
        for i in range(self.scales - 1):
            setattr(self, f"down{i}", nn.Conv2d(widths[i], widths[i], 3, stride=2, padding=1))
        for i in reversed(range(self.scales - 1)):
            setattr(self, f"dec{i}", _convs(widths[i + 1] + widths[i], widths[i]))
        self.out = nn.Conv2d(widths[0], c_out, 1)

    @property
    def multiple(self) -> int:
        """What H and W must be divisible by."""
        return self.shuffle * 2 ** (self.scales - 1)

    def forward(self, x: Tensor) -> Tensor:
        if self.shuffle > 1:
            return F.pixel_shuffle(self._scales(F.pixel_unshuffle(x, self.shuffle)), self.shuffle)
        return self._scales(x)

    def _scales(self, x: Tensor) -> Tensor:
        skips = []
        for i in range(self.scales):
            x = getattr(self, f"enc{i}")(x if i == 0 else getattr(self, f"down{i - 1}")(x))
            skips.append(x)
        x = skips.pop()
        for i in reversed(range(self.scales - 1)):
            up = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = getattr(self, f"dec{i}")(torch.cat([up, skips.pop()], 1))
        return self.out(x)


class HybridRestorer(Restorer):
    """Classical front end + learned residual.

    Args:
        channels: image channels C (1 or 3).
        front: a registered classical restorer (``restoration.classical()``), or ``identity``.
        widths: channels of the hidden convolutions (``plain``: one per layer; ``unet``:
            one per scale, at least two).
        condition: names of :data:`CONDITIONS` the net is told per image; each must then be
            passed in ``params`` (the experiment passes ``severity`` and the drawn ones).
        body: ``plain`` or ``unet`` (:data:`BODIES`).
        shuffle: the unet's space-to-depth factor (1: none; 2: its finest scale is half the
            side, module docstring); only with ``body="unet"``.
    """

    trainable = True
    uses_params = ("a", "b", "level", "kind", "severity")

    def __init__(self, channels: int = 1, front: str = "median",
                 widths: Sequence[int] = (32, 32, 32), condition: Sequence[str] = (),
                 body: str = "plain", shuffle: int = 1) -> None:
        super().__init__()
        if front not in RESTORERS or RESTORERS.is_trainable(front):
            raise ValueError(
                f"front must be a classical restorer ({', '.join(RESTORERS.classical())}"
                f" or identity); got {front!r}"
            )
        if not widths:
            raise ValueError("widths must name at least one hidden layer")
        if body not in BODIES:
            raise ValueError(f"body must be one of {', '.join(BODIES)}; got {body!r}")
        if body == "unet" and len(widths) < 2:
            raise ValueError(f"a unet body takes one width per scale, at least two; got "
                             f"{list(widths)}")
        if isinstance(shuffle, bool) or not isinstance(shuffle, int) or shuffle < 1 or (
                shuffle > 1 and body != "unet"):
            raise ValueError(f"shuffle must be an integer >= 1, and above 1 only with the unet "
                             f"body; got {shuffle!r} with body {body!r}")
        unknown = [name for name in condition if name not in CONDITIONS]
        if unknown or len(set(condition)) != len(condition):
            raise ValueError(f"condition must name distinct entries of {', '.join(CONDITIONS)}; "
                             f"got {list(condition)}")
        self.channels, self.front_name, self.widths = int(channels), front, tuple(widths)
        self.condition, self.body, self.shuffle = tuple(condition), body, shuffle
        self.front = RESTORERS.build(front)
        c_in = 2 * self.channels + sum(CONDITIONS[name][0] for name in self.condition)
        if body == "unet":
            self.net: nn.Module = _UNet(c_in, self.channels, self.widths, shuffle)
        else:
            layers: list[nn.Module] = []
            previous = c_in
            for width in self.widths:
                layers += [nn.Conv2d(previous, width, 3, padding=1), nn.ReLU(inplace=True)]
                previous = width
            layers.append(nn.Conv2d(previous, self.channels, 3, padding=1))
            self.net = nn.Sequential(*layers)
        # channels_last convolution weights: oneDNN then skips a layout conversion of every
        # activation (same results up to rounding; the speed is in docs/benchmarks.md).
        # load_state_dict and .to() keep the format, so trained and loaded nets compute alike.
        self.net.to(memory_format=torch.channels_last)
        self.gate = nn.Parameter(torch.zeros(1))

    def reads_params(self) -> tuple[str, ...]:
        """What the front end reads (the Wiener filter's ``a``, ``b``) and every conditioned
        parameter; empty for a hybrid with a front end that reads nothing, told nothing."""
        return (*self.front.reads_params(), *self.condition)

    def required_params(self) -> tuple[str, ...]:
        """The base's required parameters and every conditioned one: a missing one is refused
        in :meth:`select_params`, before any work."""
        return (*self.requires_params, *self.condition)

    def planes(self, images: Tensor, params: dict[str, Tensor | float]) -> Tensor:
        """The (B, P, H, W) constant condition planes of ``images`` (P = 0 without
        ``condition``); ``params`` holds every conditioned name (:meth:`required_params`)."""
        b, _, h, w = images.shape
        planes = [CONDITIONS[name][1](torch.as_tensor(params[name], device=images.device)
                                      .expand(b)) for name in self.condition]
        if not planes:
            return images.new_zeros(b, 0, h, w)
        stacked = torch.cat(planes, dim=1).to(images.dtype)  # (B, P)
        return stacked[:, :, None, None].expand(-1, -1, h, w)

    def restore_raw(self, images: Tensor, **params: Tensor | float) -> Tensor:
        """(B, C, H, W) in [0, 1] -> front output plus the gated residual, unclamped."""
        with torch.no_grad():
            base = self.front(images, params or None)
        inputs = torch.cat([images, base, self.planes(images, params)], dim=1)
        if self.body == "plain":
            return base + self.gate * self.net(inputs)
        h, w = images.shape[-2:]
        assert isinstance(self.net, _UNet)
        padded, (left, _, top, _) = pad_to_multiple(inputs, self.net.multiple)
        residual = self.net(padded)[..., top:top + h, left:left + w]
        return base + self.gate * residual
