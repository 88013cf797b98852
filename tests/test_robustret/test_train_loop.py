"""The shared training loop: learning, checkpoints, resume equivalence, fingerprints."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from robustret.core.io import atomic_save, checksum_path, file_digest, load_checkpoint
from robustret.core.rng import make_generator, sample_seed
from robustret.core.tracking import RunLogger, read_metrics
from robustret.train.loop import LoopSettings, step_decay, train_loop

SEED = 3


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = make_generator(0)
    x = torch.randn(64, 4, generator=generator)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) > 0).long()
    return x, y


def _run(epochs: int, checkpoint=None, fingerprint: str = "f", logger=None, *,
         average_decay: float = 0.0, seen: list | None = None, validated: list | None = None,
         evaluate_every: int = 1, packed: bool = False):
    """Train the toy model; ``seen`` collects the weights each step starts from,
    ``validated`` those each epoch's validation sees; ``packed`` passes the settings as one
    :class:`LoopSettings` rather than as keywords."""
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    scheduler = step_decay(optimizer, step_epochs=1)
    x, y = _data()

    def make_batches(epoch: int):
        order = torch.randperm(len(x), generator=make_generator(sample_seed(SEED, epoch)))
        return [(x[idx], y[idx]) for idx in order.split(16)]

    def step(batch):
        inputs, targets = batch
        if seen is not None:
            seen.append(model.weight.detach().clone())
        logits = model(inputs)
        return nn.functional.cross_entropy(logits, targets), {
            "acc": (logits.argmax(1) == targets).float().mean()
        }

    parts = dict(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        make_batches=make_batches,
        step=step,
        logger=logger,
        evaluate=None if validated is None else (
            lambda epoch: validated.append(model.weight.detach().clone()) or {"val": epoch}),
    )
    settings = dict(epochs=epochs, checkpoint=checkpoint, fingerprint=fingerprint,
                    tag="train/toy", progress=False, average_decay=average_decay,
                    evaluate_every=evaluate_every)
    result = (train_loop(**parts, settings=LoopSettings(**settings)) if packed
              else train_loop(**parts, **settings))
    return model, result


def test_loss_decreases_and_metrics_logged(tmp_path) -> None:
    with RunLogger(tmp_path, tensorboard=False) as logger:
        _, result = _run(4, logger=logger)
    losses = [record["loss"] for record in result.history]
    assert losses[-1] < losses[0]
    tags = {row["tag"] for row in read_metrics(tmp_path)}
    assert {"train/toy/loss", "train/toy/lr", "train/toy/acc"} <= tags


def test_evaluate_every_validates_fewer_epochs_and_the_last_and_learns_the_same() -> None:
    every, sparse = [], []
    model_every, result_every = _run(5, validated=every)
    model_sparse, result_sparse = _run(5, validated=sparse, evaluate_every=2)
    assert [record.get("val") for record in result_sparse.history] == [None, 2, None, 4, 5]
    assert [record["val"] for record in result_every.history] == [1, 2, 3, 4, 5]
    assert len(sparse) == 3 and all(torch.equal(a, b) for a, b in
                                    zip(sparse, [every[1], every[3], every[4]]))
    assert torch.equal(model_every.weight, model_sparse.weight)  # validation steers nothing
    assert result_sparse.final["val"] == 5  # the summary's last record is validated


@pytest.mark.parametrize("every", [0, -1, 1.5, True])
def test_evaluate_every_must_be_a_positive_integer(every) -> None:
    with pytest.raises(ValueError, match="evaluate_every"):
        _run(1, validated=[], evaluate_every=every)


def test_two_epochs_equal_one_then_resume(tmp_path) -> None:
    straight, _ = _run(2)
    checkpoint = tmp_path / "last.pt"
    _run(1, checkpoint=checkpoint)
    resumed, result = _run(2, checkpoint=checkpoint)
    assert result.resumed_from == 1
    assert len(result.history) == 2
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_finished_run_does_no_more_work(tmp_path) -> None:
    checkpoint = tmp_path / "last.pt"
    first, _ = _run(2, checkpoint=checkpoint)
    again, result = _run(2, checkpoint=checkpoint)
    assert result.resumed_from == 2
    assert torch.equal(first.weight, again.weight)


def test_checkpoint_from_other_config_is_refused(tmp_path) -> None:
    checkpoint = tmp_path / "last.pt"
    _run(1, checkpoint=checkpoint, fingerprint="a")
    with pytest.raises(ValueError, match="another configuration"):
        _run(2, checkpoint=checkpoint, fingerprint="b")


def test_checkpoint_carries_its_checksum(tmp_path) -> None:
    checkpoint = tmp_path / "last.pt"
    _run(1, checkpoint=checkpoint)
    assert checksum_path(checkpoint).read_text() == f"{file_digest(checkpoint)}  last.pt\n"
    assert load_checkpoint(checkpoint, required=True)["epoch"] == 1


@pytest.mark.parametrize("damage", ["xor", "truncate", "sidecar"])
def test_corrupt_checkpoint_is_moved_aside_and_training_starts_over(
    tmp_path, caplog, damage: str
) -> None:
    straight, _ = _run(2)
    checkpoint = tmp_path / "last.pt"
    _run(1, checkpoint=checkpoint)
    data = bytearray(checkpoint.read_bytes())
    if damage == "xor":
        middle = len(data) // 2
        data[middle:middle + 64] = bytes(b ^ 0x5A for b in data[middle:middle + 64])
    elif damage == "truncate":
        data = data[: len(data) // 2]
    checkpoint.write_bytes(bytes(data))
    if damage == "sidecar":  # right bytes, wrong digest: still not trusted
        checksum_path(checkpoint).write_text(f"{'0' * 64}  last.pt\n")
    retrained, result = _run(2, checkpoint=checkpoint)
    assert result.resumed_from == 0 and len(result.history) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "last.pt" in warnings[0] and "from scratch" in warnings[0]
    assert (tmp_path / "last.pt.corrupt").is_file()
    for a, b in zip(straight.state_dict().values(), retrained.state_dict().values()):
        assert torch.equal(a, b)
    assert load_checkpoint(checkpoint, required=True)["epoch"] == 2


def test_checkpoint_that_does_not_fit_the_model_is_not_resumed(tmp_path, caplog) -> None:
    checkpoint = tmp_path / "last.pt"
    _run(1, checkpoint=checkpoint)
    state = load_checkpoint(checkpoint)
    state["model"] = {"weight": torch.zeros(3, 3)}
    atomic_save(state, checkpoint, checksum=True)  # a valid checksum over a wrong structure
    _, result = _run(1, checkpoint=checkpoint)
    assert result.resumed_from == 0
    assert any("do not fit" in r.getMessage() for r in caplog.records)


def test_a_checkpoint_without_sidecar_is_not_trusted(tmp_path, caplog) -> None:
    """Its bytes cannot be checked: it is moved aside with one warning and training starts
    over (it once resumed from whatever the file held)."""
    checkpoint = tmp_path / "last.pt"
    _run(1, checkpoint=checkpoint)
    checksum_path(checkpoint).unlink()  # written before checksums, or copied alone
    caplog.clear()
    _, result = _run(2, checkpoint=checkpoint)
    assert result.resumed_from == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no checksum file" in warnings[0]
    assert "from scratch" in warnings[0]
    assert checkpoint.with_name("last.pt.corrupt").is_file()
    assert load_checkpoint(checkpoint, required=True)["epoch"] == 2


def test_step_decay_counts_real_epochs() -> None:
    parameter = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    scheduler = step_decay(optimizer, step_epochs=4)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == [1.0] * 4 + [0.5] * 4 + [0.25] * 2


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_step_decay_rejects_a_bad_period(bad: object) -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="step_epochs"):
        step_decay(optimizer, step_epochs=bad)


def test_the_weight_average_is_validated_saved_and_returned(tmp_path) -> None:
    seen: list[torch.Tensor] = []
    raw, _ = _run(2, seen=seen)  # the average does not change training: these are its steps
    after_steps = [*seen[1:], raw.weight.detach()]  # the weights after each optimizer step
    expected = after_steps[0]
    for weights in after_steps[1:]:
        expected = 0.8 * expected + 0.2 * weights
    validated: list[torch.Tensor] = []
    checkpoint = tmp_path / "last.pt"
    averaged, _ = _run(2, checkpoint=checkpoint, average_decay=0.8, validated=validated)
    assert torch.allclose(averaged.weight, expected, atol=1e-6)
    assert not torch.allclose(averaged.weight, raw.weight, atol=1e-3)
    assert torch.equal(validated[-1], averaged.weight)  # validation saw the average
    state = load_checkpoint(checkpoint, required=True)
    assert torch.equal(state["model"]["weight"], averaged.weight)
    assert torch.equal(state["training_model"]["weight"], raw.weight)
    assert state["average_steps"] == len(after_steps)


def test_an_averaged_run_resumes_exactly(tmp_path) -> None:
    straight, _ = _run(2, average_decay=0.8)
    checkpoint = tmp_path / "last.pt"
    _run(1, checkpoint=checkpoint, average_decay=0.8)
    resumed, result = _run(2, checkpoint=checkpoint, average_decay=0.8)
    assert result.resumed_from == 1
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_an_averaged_run_does_not_resume_from_a_checkpoint_without_raw_weights(
        tmp_path, caplog) -> None:
    checkpoint = tmp_path / "last.pt"
    _run(1, checkpoint=checkpoint)  # same fingerprint, no average: a damaged averaged state
    _, result = _run(1, checkpoint=checkpoint, average_decay=0.8)
    assert result.resumed_from == 0
    assert any("raw weights" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("decay", [1.0, -0.1, True, "0.9"])
def test_a_decay_outside_zero_to_one_is_refused(decay) -> None:
    with pytest.raises(ValueError, match="average_decay|ema_decay"):
        _run(1, average_decay=decay)


def test_settings_in_one_value_train_as_the_same_keywords(tmp_path) -> None:
    """``settings=LoopSettings(...)`` and the same fields as keywords are one run: the same
    weights, records and checkpoint (an averaged run, resumed, to cover every setting)."""
    runs = {}
    for packed in (False, True):
        path = tmp_path / f"{packed}.pt"
        _run(1, path, average_decay=0.5, evaluate_every=2, packed=packed, validated=[])
        runs[packed] = _run(3, path, average_decay=0.5, evaluate_every=2, packed=packed,
                            validated=[])
    (model_a, result_a), (model_b, result_b) = runs[False], runs[True]
    assert torch.equal(model_a.weight, model_b.weight) and result_b.resumed_from == 1
    drop = ("seconds",)
    assert ([{k: v for k, v in r.items() if k not in drop} for r in result_a.history]
            == [{k: v for k, v in r.items() if k not in drop} for r in result_b.history])
    saved_a = load_checkpoint(tmp_path / "False.pt")
    saved_b = load_checkpoint(tmp_path / "True.pt")
    assert saved_a["epoch"] == saved_b["epoch"] == 3
    assert saved_a["average_steps"] == saved_b["average_steps"]


def test_loop_settings_are_checked_and_not_given_twice(tmp_path) -> None:
    assert LoopSettings(epochs=1, checkpoint=str(tmp_path / "x.pt")).checkpoint == \
        tmp_path / "x.pt"
    with pytest.raises(ValueError, match="epochs"):
        LoopSettings(epochs=-1)
    with pytest.raises(ValueError, match="evaluate_every"):
        LoopSettings(epochs=1, evaluate_every=0)
    with pytest.raises(ValueError, match="average_decay"):
        LoopSettings(epochs=1, average_decay=1.0)
    model = nn.Linear(2, 1)
    with pytest.raises(TypeError, match="not both"):
        train_loop(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                   make_batches=lambda epoch: [], step=lambda batch: (torch.zeros(()), {}),
                   settings=LoopSettings(epochs=1), epochs=2)
