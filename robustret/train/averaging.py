"""An exponential moving average (EMA) of a model's weights during training.

After every optimizer step the average moves towards the current weights:
``average = decay * average + (1 - decay) * weights`` (the first step copies them); buffers
(BatchNorm statistics) are averaged the same way. The averaged weights are what a run with an
average validates, saves as its ``model`` and returns; the raw weights keep training and are
saved beside them, so an interrupted run resumes exactly. The averaging itself is
:class:`torch.optim.swa_utils.AveragedModel`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def check_decay(decay: float, name: str = "ema_decay") -> float:
    """Return ``decay`` as a float or raise ValueError: it must lie in [0, 1) (0: no average)."""
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 <= decay < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1) (0: no weight average; 0.99 "
                         f"averages over about 100 steps); got {decay!r}")
    return float(decay)


class WeightAverage:
    """The EMA of ``model``'s parameters and buffers, updated by :meth:`update`.

    Args:
        model: the trained module (not a DistributedDataParallel wrapper); its weights are
            read at each update and never changed except by :meth:`swapped_in` and
            :meth:`copy_into`.
        decay: in (0, 1); the average's memory is about ``1 / (1 - decay)`` steps.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        decay = check_decay(decay)
        if decay == 0.0:
            raise ValueError("a WeightAverage needs decay > 0 (0 means no average)")
        self.model = model
        self.average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay),
                                     use_buffers=True)

    def update(self) -> None:
        """Move the average towards the model's current weights (call after each step)."""
        self.average.update_parameters(self.model)

    @property
    def steps(self) -> int:
        """Updates so far."""
        return int(self.average.n_averaged)

    def weights(self) -> dict[str, Tensor]:
        """The averaged weights, keyed like ``model.state_dict()``."""
        return self.average.module.state_dict()

    def load(self, weights: dict[str, Tensor], steps: int) -> None:
        """Continue from a checkpoint's :meth:`weights` and :attr:`steps`."""
        self.average.module.load_state_dict(weights)
        self.average.n_averaged.fill_(int(steps))

    def copy_into(self, module: nn.Module) -> None:
        """Load the averaged weights into ``module`` (the end of training)."""
        module.load_state_dict(self.weights())

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Within the block ``model`` holds the averaged weights (for validation); its own
        weights are put back on exit."""
        raw = {name: value.detach().clone() for name, value in self.model.state_dict().items()}
        self.copy_into(self.model)
        try:
            yield
        finally:
            self.model.load_state_dict(raw)
