"""One ``oracle_hybrid`` (formerly ``hybrid_unet``) training step, clean features looked up vs
recomputed.

The step of ``robustret.train.restorer`` for the noise family's ``oracle_hybrid`` (median front,
unet 16-32-64, severity and kind planes): forward, pixel MSE + feature term through a frozen
ResNet34 (``layer1``, ``layer2``, embedding), backward, Adam. ``recomputed`` runs the clean
images through the retriever in the step (as before 2026-12-02), ``cached`` passes their
features in (``clean_features``, as training does now), ``cached_contiguous`` does the same
with the hybrid's convolution weights in the default contiguous format (as before
2026-12-06; they are ``channels_last`` since). Repetitions alternate between the three.

    .venv/bin/python benchmarks/bench_restorer_step.py             # batch 32 at 64 px, 10 reps
"""

from __future__ import annotations

import argparse
import json
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args(argv)

    import torch
    import torch.nn.functional as F

    import degradations
    import restoration
    from robustret.models import build_retriever
    from robustret.train.restorer_losses import clean_features, feature_loss

    generator = torch.Generator().manual_seed(0)
    retriever = build_retriever("resnet34", num_classes=5, in_channels=1).eval()
    for parameter in retriever.parameters():
        parameter.requires_grad_(False)
    def hybrid(channels_last: bool) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = restoration.build("hybrid", front="median", condition=("severity", "kind"),
                                  body="unet", widths=[16, 32, 64])
        if not channels_last:
            model.to(memory_format=torch.contiguous_format)
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)

    models = {True: hybrid(True), False: hybrid(False)}
    clean = torch.rand(args.batch_size, 1, args.size, args.size, generator=generator)
    degraded, params = degradations.apply(clean, "noise", 3, generator=generator,
                                          return_params=True)
    layers = ("layer1", "layer2", "embedding")
    cached = clean_features(retriever, clean, layers, batch_size=args.batch_size,
                            device=torch.device("cpu"))

    def step(targets, channels_last: bool = True) -> None:
        model, optimizer = models[channels_last]
        restored = model.restore(degraded, params, clamp=False)
        loss = F.mse_loss(restored, clean) + feature_loss(retriever, restored, clean, layers,
                                                          targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    times: dict[str, list[float]] = {"recomputed": [], "cached": [], "cached_contiguous": []}
    runs = (("recomputed", None, True), ("cached", cached, True),
            ("cached_contiguous", cached, False))
    for _, targets, channels_last in runs:  # warm-up
        step(targets, channels_last)
    for _ in range(args.reps):
        for name, targets, channels_last in runs:
            started = time.perf_counter()
            step(targets, channels_last)
            times[name].append(time.perf_counter() - started)
    best = {name: min(values) for name, values in times.items()}
    print(json.dumps({"threads": torch.get_num_threads(), "batch_size": args.batch_size,
                      "size": args.size, "step_s_best": best,
                      "saved": 1 - best["cached"] / best["recomputed"],
                      "saved_by_channels_last": 1 - best["cached"] / best["cached_contiguous"]},
                     indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
