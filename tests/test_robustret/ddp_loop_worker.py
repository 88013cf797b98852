"""Trains a tiny BatchNorm-free regression with robustret.train.loop; run by test_distributed.

``python ddp_loop_worker.py OUT`` (one process) or
``python -m torch.distributed.run --nproc_per_node=2 --standalone ddp_loop_worker.py OUT``:
trains 1 epoch into ``OUT/ckpt/last.pt``, then resumes to 3 epochs, and every rank saves its
final weights and history to ``OUT/rank-R.pt`` (the test compares them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from robustret.core import distributed
from robustret.core.rng import make_generator
from robustret.train.loop import train_loop

SAMPLES, BATCH = 11, 4  # batches of 4, 4, 3: slices of 2/2, 2/2 and 2/1 on two ranks


def train(out: Path, epochs: int) -> tuple[torch.nn.Module, list[dict[str, float]], int]:
    device = distributed.setup(torch.device("cpu"))
    data = make_generator(7)
    x = torch.randn(SAMPLES, 3, generator=data)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(SAMPLES, 1, generator=data)
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, 3, generator=make_generator(1)))
        model.bias.zero_()
    net = distributed.data_parallel(model, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def make_batches(epoch: int):
        order = torch.randperm(SAMPLES, generator=make_generator(100 + epoch))
        return [(x[idx], y[idx]) for idx in order.split(BATCH)]

    def step(batch):
        inputs, targets = batch
        outputs = net(inputs)
        loss = F.mse_loss(outputs, targets)
        return loss, {"mae": float((outputs.detach() - targets).abs().mean())}

    result = train_loop(model=model, optimizer=optimizer, make_batches=make_batches, step=step,
                        epochs=epochs, checkpoint=out / "ckpt" / "last.pt", progress=False)
    return model, result.history, result.resumed_from


def main() -> None:
    out = Path(sys.argv[1])
    train(out, 1)
    model, history, resumed_from = train(out, 3)
    torch.save({"state": model.state_dict(), "history": history, "resumed_from": resumed_from,
                "world_size": distributed.world_size()},
               out / f"rank-{distributed.rank()}.pt")
    distributed.cleanup()


if __name__ == "__main__":
    main()
