"""Cross-check against ``imagecorruptions`` (the ``bench`` extra): at 224 px, where the noise,
blur and digital families' severity tables are ImageNet-C's own (their size rule interpolates
the published tables on log size and is anchored there), each family damages an image as much
as the reference code does (mean PSNR to the clean image within 1 dB at severities 1, 3, 5).

Statistics, not bytes: the random draws differ. Skipped, with the reason printed, where
``imagecorruptions`` is not installed (``pip install -e '.[bench]'``), for the families whose
tables deviate on purpose (docs/degradations.md) and where the reference code itself fails on
today's scikit-image or NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from degradation_contract import contract_batch

import degradations

corrupt = pytest.importorskip(
    "imagecorruptions", reason="imagecorruptions is not installed (pip install -e '.[bench]')"
).corrupt

#: our name -> imagecorruptions' name, where the algorithm and the 224 px table are the same
SAME = {"shot_noise": "shot_noise", "impulse_noise": "impulse_noise",
        "defocus_blur": "defocus_blur", "line_motion_blur": "motion_blur",
        "zoom_blur": "zoom_blur", "brightness": "brightness", "contrast": "contrast",
        "jpeg": "jpeg_compression", "saturate": "saturate", "glass_blur": "glass_blur",
        "gaussian_blur": "gaussian_blur"}
_WEATHER = ("Tiny-ImageNet-C's 64 px table with lengths scaled by min(H, W) / 64, which at "
            "224 px is not ImageNet-C's table (docs/degradations.md, two size rules; compared "
            "with the reference at 64 px there)")
#: not the same parameters at 224 px, with the reason (docs/degradations.md, the suite)
DEVIATES = {"elastic_transform": "its own table, so that the damage grows with severity",
            "pixelate": "a random grid phase per image",
            "fog": _WEATHER, "snow": _WEATHER, "spatter": _WEATHER}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a - b) ** 2)))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SAME))
@pytest.mark.parametrize("severity", [1, 3, 5])
def test_damage_matches_the_reference_code_at_224_px(name: str, severity: int) -> None:
    x = contract_batch(3, 224, 2)
    ours = degradations.apply(x, name, severity, generator=torch.Generator().manual_seed(0))
    clean = [image.permute(1, 2, 0).numpy().astype(np.float64) for image in x]
    np.random.seed(0)  # the reference code draws from numpy's global generator
    try:
        theirs = [np.asarray(corrupt((c * 255).round().astype(np.uint8), corruption_name=SAME[name],
                                     severity=severity), dtype=np.float64) / 255 for c in clean]
    except (TypeError, AttributeError) as exc:  # skimage's multichannel, NumPy 2's np.float_
        pytest.skip(f"imagecorruptions' {SAME[name]} fails here: {type(exc).__name__}: {exc}")
    ours_db = np.mean([_psnr(o.permute(1, 2, 0).numpy(), c) for o, c in zip(ours, clean)])
    theirs_db = np.mean([_psnr(t, c) for t, c in zip(theirs, clean)])
    assert abs(ours_db - theirs_db) < 1.0, (ours_db, theirs_db)


@pytest.mark.parametrize("name", sorted(DEVIATES))
def test_deviations_are_documented(name: str) -> None:
    assert name in degradations.available()
    pytest.skip(f"{name} is not compared at 224 px: {DEVIATES[name]}")
