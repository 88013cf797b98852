"""RunLogger: TensorBoard scalars, images, embeddings and hparams, mirrored to metrics.jsonl.

TensorBoard is imported on first use, so code that never logs never pays for it. Every scalar
also lands in ``metrics.jsonl`` (one JSON object a line), which survives without TensorBoard
and is what tests read.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

log = logging.getLogger(__name__)


class RunLogger:
    """Logs one run under ``log_dir``.

    Args:
        log_dir: folder for the TensorBoard event files and ``metrics.jsonl``.
        tensorboard: write TensorBoard event files (scalars always go to ``metrics.jsonl``).
    """

    def __init__(self, log_dir: str | Path, *, tensorboard: bool = True) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.tensorboard = tensorboard
        self._writer: Any = None
        self._jsonl = self.log_dir / "metrics.jsonl"

    @property
    def writer(self) -> Any:
        """The lazily created ``SummaryWriter`` (None when TensorBoard is off)."""
        if self._writer is None and self.tensorboard:
            # lazy: heavy; loaded only when TensorBoard is written
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.log_dir))
        return self._writer

    def scalar(self, tag: str, value: float, step: int = 0) -> None:
        """Log one scalar under a path-like ``tag`` (``train/retriever/loss``)."""
        value = float(value)
        with self._jsonl.open("a", encoding="utf-8") as handle:
            handle.write(
                json.dumps({"tag": tag, "value": value, "step": int(step), "time": time.time()})
                + "\n"
            )
        if self.writer is not None:
            self.writer.add_scalar(tag, value, int(step))

    def scalars(self, values: dict[str, float], step: int = 0, prefix: str = "") -> None:
        """Log several scalars, each tag prefixed by ``prefix/`` when given."""
        for tag, value in values.items():
            self.scalar(f"{prefix}/{tag}" if prefix else tag, value, step)

    def image_grid(self, tag: str, grid: Tensor, step: int = 0) -> None:
        """Log one (C, H, W) float image in [0, 1] (e.g. from ``torchvision.utils.make_grid``)."""
        if self.writer is not None:
            self.writer.add_image(tag, grid.detach().float().clamp(0, 1).cpu(), int(step))

    def embeddings(
        self,
        tag: str,
        features: Tensor,
        labels: list[str],
        thumbnails: Tensor | None = None,
        step: int = 0,
    ) -> None:
        """Add ``features`` (N, D) to the TensorBoard projector, with labels and (N, C, h, w)
        thumbnails."""
        if self.writer is not None:
            self.writer.add_embedding(
                features.detach().float().cpu(),
                metadata=labels,
                label_img=None if thumbnails is None else thumbnails.detach().float().cpu(),
                tag=tag,
                global_step=int(step),
            )

    def hparams(self, params: dict[str, Any], metrics: dict[str, float]) -> None:
        """Record the run's hyper-parameters with its headline metrics."""
        if self.writer is None:
            return
        clean = {
            k: v if isinstance(v, (int, float, str, bool, torch.Tensor)) else str(v)
            for k, v in params.items()
        }
        self.writer.add_hparams(
            clean, {f"hparam/{k}": float(v) for k, v in metrics.items()}, run_name="."
        )

    def close(self) -> None:
        """Flush and close the TensorBoard writer."""
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_metrics(log_dir: str | Path) -> list[dict[str, Any]]:
    """The scalars a :class:`RunLogger` wrote to ``log_dir/metrics.jsonl``, in order."""
    path = Path(log_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
