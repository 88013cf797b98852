"""The restorer contract shared by networks and classical filters.

A restorer is an ``nn.Module`` mapping a ``(B, C, H, W)`` float batch in ``[0, 1]`` to a batch
of the same shape, dtype, device and range::

    restored = restorer(images, params)        # params: dict of (B,) tensors, or None

``params`` is what the degradation drew for each image (``degradations.apply(...,
return_params=True)``): motion blur ``a``, ``b``; low resolution ``level``; the noise mixture
``kind``. A restorer declares the ones it reads in :attr:`Restorer.uses_params` and ignores all
others, so the caller can always pass the whole dict; those it cannot work without are in
:attr:`Restorer.requires_params` and their absence is a ``ValueError``.

Networks compute an unbounded (or ``[-1, 1]``) output internally; :meth:`Restorer.restore`
exposes it unclamped for training (so the MSE gradient never vanishes at the range limits) and
:meth:`Restorer.forward` clamps it.

Every call goes through one gate, :meth:`Restorer.restore`: the images are checked against the full
contract (``robustret.core.checks.check_images``: shape, channels, floating dtype, finite values in
``[0, 1]``), the image side against :attr:`Restorer.min_size`, the channel count against the one a
network was built with (:meth:`Restorer.input_channels`), and the used ``params`` (finite, ``(B,)``
or a number). Any floating dtype goes in and the same dtype comes out: a restorer with weights
computes in its weights' dtype (float32 unless the module was cast) and the result is cast back; the
filters compute in float32 inside where they need it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from robustret.core.batching import map_batches
from robustret.core.checks import check_images

Params = Mapping[str, "Tensor | float"]
"""Per-image degradation parameters: name -> (B,) tensor (a number applies to every image)."""

#: what a restorer knows of each query's degradation: ``oracle`` (it reads the parameters the
#: degradation drew, or the query set's severity: an upper bound no real photo allows),
#: ``estimated`` (only what it estimates from the image), ``blind`` (nothing)
KNOWLEDGE = ("oracle", "estimated", "blind")


def knowledge_of(restorer: Restorer) -> str:
    """The :data:`KNOWLEDGE` of ``restorer`` when the caller hands it the drawn parameters (as
    the experiment does): its own ``knowledge`` attribute when it declares one, else
    ``oracle`` when it reads any parameter (:meth:`Restorer.reads_params`) and ``blind``
    when it reads none."""
    declared = getattr(restorer, "knowledge", None)
    if declared is not None:
        return declared
    return "oracle" if restorer.reads_params() else "blind"


class Restorer(nn.Module):
    """Base class: subclasses implement :meth:`restore_raw`.

    Class attributes:
        trainable: the module is a network with parameters to train (``restoration.networks()``
            lists these); classical filters and ``identity`` are not.
        uses_params: the degradation parameters :meth:`restore_raw` accepts as keywords.
        requires_params: the subset of ``uses_params`` that must be given.
        min_size: the smallest image side (H and W) :meth:`restore` accepts; a larger value in a
            subclass is also what ``robustret.experiment.preflight`` checks the data against
            before a run.

    Attributes:
        restorer_name: registry name the module was built under (set by ``RESTORERS.build``,
            which ``restoration.build`` is); None for a module constructed directly.
        restorer_options: keyword options it was built with (stored in checkpoints).
    """

    trainable: ClassVar[bool] = False
    uses_params: ClassVar[tuple[str, ...]] = ()
    requires_params: ClassVar[tuple[str, ...]] = ()
    min_size: ClassVar[int] = 1

    def __init__(self) -> None:
        super().__init__()
        self.restorer_name: str | None = None
        self.restorer_options: dict[str, Any] = {}

    def restore_raw(self, images: Tensor, **params: Tensor | float) -> Tensor:
        """Restore without the final clamp.

        Args:
            images: (B, C, H, W) float in [0, 1].
            **params: the entries of :attr:`uses_params` that the caller gave, each a (B,)
                tensor on the images' device or a number.
        Returns:
            (B, C, H, W), values approximately (not strictly) in [0, 1].
        """
        raise NotImplementedError

    def input_channels(self) -> int | None:
        """The channel count C this restorer was built for; None: any of 1 and 3.

        A network (``trainable``) stores its C as ``self.channels`` (its ``channels``
        constructor option) and accepts only that; filters and ``identity`` accept either.
        """
        channels = getattr(self, "channels", None) if self.trainable else None
        return int(channels) if channels is not None else None

    def compute_dtype(self) -> torch.dtype | None:
        """The dtype :meth:`restore_raw` receives: the weights' floating dtype for a module
        with weights, None (the input's own dtype) for one without."""
        for tensor in (*self.parameters(), *self.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
        return None

    def _label(self) -> str:
        return self.restorer_name or type(self).__name__

    def check_input(self, images: Tensor) -> Tensor:
        """Check ``images`` against the contract of this restorer and return them.

        Raises:
            TypeError: not a tensor.
            ValueError: not (B, C, H, W) float with C in {1, 3} and finite values in [0, 1];
                a side smaller than :attr:`min_size` (an empty one included); a channel
                count other than the network's.
        """
        check_images(images, "images")
        h, w = images.shape[-2:]
        if min(h, w) < max(1, self.min_size):
            raise ValueError(
                f"restorer {self._label()} needs images of at least {max(1, self.min_size)} px "
                f"per side; got images of shape {tuple(images.shape)}")
        expected = self.input_channels()
        if expected is not None and images.shape[1] != expected:
            raise ValueError(
                f"restorer {self._label()} was built for {expected}-channel images but got "
                f"{images.shape[1]} channels (shape {tuple(images.shape)}); build it with "
                f"channels={images.shape[1]} or convert the images to {expected} channel(s)")
        return images

    def reads_params(self) -> tuple[str, ...]:
        """The parameters this restorer, as built, reads when they are given: its
        :attr:`uses_params`; a subclass that reads fewer (a hybrid told nothing) narrows it."""
        return self.uses_params

    def required_params(self) -> tuple[str, ...]:
        """The parameters this restorer cannot work without: :attr:`requires_params`; a
        subclass whose needs depend on how it was built (a conditioned hybrid) adds its own."""
        return self.requires_params

    def select_params(self, params: Params | None, batch_size: int) -> dict[str, Tensor | float]:
        """The entries of ``params`` this restorer uses, checked.

        Args:
            params: the degradation's drawn parameters (any names), or None.
            batch_size: B of the image batch; a tensor entry must be (B,) or 0-d.
        Returns:
            ``{name: value}`` for every name of :attr:`uses_params` present in ``params``.
        Raises:
            TypeError: a used entry is neither a tensor nor a real number.
            ValueError: a name of :meth:`required_params` is missing, or a used entry has
                the wrong shape or a NaN / infinite value.
        """
        params = {} if params is None else params
        missing = [name for name in self.required_params() if name not in params]
        if missing:
            raise ValueError(
                f"restorer {self._label()} needs the degradation "
                f"parameter(s) {', '.join(missing)}; got {sorted(params) or 'none'}. Pass the "
                "params the degradation drew: degradations.apply(..., return_params=True)")
        chosen = {name: params[name] for name in self.uses_params if name in params}
        for name, value in chosen.items():
            if isinstance(value, bool) or not isinstance(value, (Tensor, int, float)):
                raise TypeError(f"params[{name!r}] must be a ({batch_size},) tensor or a number; "
                                f"got {type(value).__name__}")
            if isinstance(value, Tensor):
                if value.ndim > 0 and tuple(value.shape) != (batch_size,):
                    raise ValueError(f"params[{name!r}] must be ({batch_size},) (one value per "
                                     f"image) or a number; got shape {tuple(value.shape)}")
                if value.is_complex() or value.dtype == torch.bool:
                    raise TypeError(f"params[{name!r}] must hold real numbers; got dtype "
                                    f"{value.dtype}")
                finite = bool(torch.isfinite(value.detach()).all())
            else:
                finite = math.isfinite(value)
            if not finite:
                raise ValueError(f"params[{name!r}] contains NaN or infinite values; pass the "
                                 "parameters the degradation drew")
        return chosen

    def restore(self, images: Tensor, params: Params | None = None, *,
                clamp: bool = True) -> Tensor:
        """Restore ``images``; ``clamp=False`` is for training losses.

        Args:
            images: (B, C, H, W) float in [0, 1].
            params: the degradation's per-image parameters; unused names are ignored.
            clamp: clamp the result to [0, 1].
        Returns:
            (B, C, H, W), same device and dtype as ``images`` (computed in
            :meth:`compute_dtype` and cast back).
        Raises:
            TypeError, ValueError: see :meth:`check_input` and :meth:`select_params`.
        """
        self.check_input(images)
        chosen = self.select_params(params, images.shape[0])
        if images.shape[0] == 0:  # nothing to restore; filters and FFTs reject empty batches
            return images.clone()
        work = self.compute_dtype() or images.dtype
        out = self.restore_raw(images.to(work), **chosen).to(images.dtype)
        return out.clamp(0.0, 1.0) if clamp else out

    def forward(self, images: Tensor, params: Params | None = None) -> Tensor:
        """(B, C, H, W) float in [0, 1] -> restored (B, C, H, W) float in [0, 1].

        Args:
            images: (B, C, H, W) float in [0, 1].
            params: the degradation's drawn (B,) parameters (see the module docstring).
        """
        return self.restore(images, params, clamp=True)


def restore_batches(restorer: Restorer, images: Tensor, params: Params | None = None, *,
                    batch_size: int = 64, device: torch.device | str = "cpu") -> Tensor:
    """Run ``restorer`` over N images in fixed-size batches
    (``robustret.core.batching.map_batches``).

    Args:
        restorer: a restorer already on ``device``.
        images: (N, C, H, W) float in [0, 1], any device.
        params: the degradation's (N,) parameters; only ``restorer.uses_params`` travel.
        batch_size: images per call.
        device: where the restorer runs.
    Returns:
        (N, C, H, W) float in [0, 1] on the CPU.
    """
    chosen = restorer.select_params(params, images.shape[0])
    per_item = {name: torch.as_tensor(value).expand(images.shape[0])
                for name, value in chosen.items()}
    return map_batches(lambda batch, **part: restorer(batch, part), images,
                       batch_size=batch_size, device=device, per_item=per_item)


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
