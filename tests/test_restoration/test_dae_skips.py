"""The autoencoder's optional skip connections (used by the quick profile)."""

from __future__ import annotations

import torch

import restoration
from robustret.train.restorer_config import RestorerTrainConfig


def test_skips_keep_size_and_range_and_change_the_function(tmp_path) -> None:
    torch.manual_seed(0)
    plain = restoration.build("dae", widths=(4, 4, 4, 4, 4))
    skipped = restoration.build("dae", widths=(4, 4, 4, 4, 4), skips=True)
    skipped.load_state_dict(plain.state_dict())  # skips add no parameters
    x = torch.rand(2, 1, 40, 48)
    with torch.no_grad():
        out = skipped(x)
    assert out.shape == x.shape and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    path = restoration.save(skipped, tmp_path / "dae.pt")
    again = restoration.load(path)
    with torch.no_grad():
        assert not torch.allclose(out, plain(x))
        assert again.skips and torch.equal(again(x), out)


def test_quick_profile_uses_skips_and_paper_keeps_the_study() -> None:
    assert RestorerTrainConfig.quick("dae").model_options == {"skips": True}
    assert RestorerTrainConfig.paper("dae").model_options == {}
