"""Estimate-then-restore (``estimated``) and what each restorer knows (``knowledge_of``)."""

from __future__ import annotations

import pytest
import torch

import degradations
import restoration
from restoration.estimate import FAMILIES, estimate_degradation
from robustret.core.quality import psnr
from robustret.core.rng import make_generator


def _scenes(n: int = 8, size: int = 48) -> torch.Tensor:
    """Smooth gradients with a few bright squares: natural enough for the estimator."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size),
                            indexing="ij")
    images = (0.3 + 0.3 * xx + 0.1 * yy).expand(n, 1, size, size).clone()
    for i in range(n):
        top, left = torch.randint(4, size - 20, (2,), generator=g).tolist()
        images[i, :, top:top + 14, left:left + 14] = 0.85
    return images


@pytest.mark.parametrize(("name", "options", "knowledge"), [
    ("wiener", {}, "oracle"), ("bicubic", {}, "oracle"), ("median", {}, "blind"),
    ("tv", {}, "estimated"), ("switching_median", {}, "blind"), ("kind_denoise", {}, "oracle"),
    ("identity", {}, "blind"), ("dae", {}, "blind"), ("estimated", {}, "estimated"),
])
def test_each_restorer_says_what_it_knows(name: str, options: dict, knowledge: str) -> None:
    assert restoration.knowledge_of(restoration.build(name, **options)) == knowledge
    assert knowledge in restoration.KNOWLEDGE


def test_it_reads_none_of_the_drawn_parameters() -> None:
    clean = _scenes()
    blurred, drawn = degradations.apply(clean, "motion_blur", 4, generator=make_generator(1),
                                        return_params=True)
    restorer = restoration.build("estimated")
    lies = {"a": -drawn["a"] * 3, "b": drawn["b"] + 0.2, "level": torch.full((8,), 2),
            "severity": torch.full((8,), 5.0)}
    assert torch.equal(restorer(blurred, drawn), restorer(blurred, None))
    assert torch.equal(restorer(blurred, lies), restorer(blurred, None))


def test_each_image_goes_to_its_estimated_familys_restorer() -> None:
    clean = _scenes(12)
    parts = [clean[:3],
             degradations.apply(clean[3:6], "salt_pepper", 3, generator=make_generator(2)),
             degradations.apply(clean[6:9], "motion_blur", 5, generator=make_generator(3)),
             degradations.apply(clean[9:], "lowres", 4, generator=make_generator(4))]
    mixed = torch.cat(parts)
    estimate = estimate_degradation(mixed)
    restored = restoration.build("estimated")(mixed)
    # noise: by the estimated kind; blur: the zero-phase Wiener filter (the estimate's sign is
    # arbitrary)
    experts = {"noise": restoration.build("kind_denoise"),
               "blur": restoration.build("wiener", phase="zero", k=0.001),
               "resolution": restoration.build("identity")}
    params = estimate.params()
    sure = (estimate.blur_score >= 0.65) & (estimate.blur_length <= 0.3125 * 48)
    for i, family in enumerate(estimate.family_names()):
        if family == "clean" or (family == "blur" and not sure[i]):
            assert torch.equal(restored[i], mixed[i])
            continue
        one = {key: value[i:i + 1] for key, value in params.items()}
        expected = experts[family](mixed[i:i + 1], one)[0]
        torch.testing.assert_close(restored[i], expected, atol=1e-5, rtol=0)
    assert estimate.family_names()[:3] == ["clean"] * 3
    assert set(estimate.family_names()[3:6]) == {"noise"}
    assert (sure[6:9] & (estimate.family[6:9] == FAMILIES.index("blur"))).any()  # some deblurred
    assert set(estimate.family_names()[9:]) == {"resolution"}
    # noise is restored, not just routed
    assert float(psnr(restored[3:6], clean[3:6]).mean()) > float(
        psnr(mixed[3:6], clean[3:6]).mean()) + 1
    bicubic = restoration.build("estimated", resolution=restoration.build("bicubic"))
    assert float(psnr(bicubic(mixed)[9:], clean[9:]).mean()) > float(
        psnr(mixed[9:], clean[9:]).mean()) + 1  # another expert is one argument away


def test_the_zero_phase_wiener_ignores_the_sign_of_the_blur() -> None:
    clean = _scenes()
    blurred, drawn = degradations.apply(clean, "motion_blur", 4, generator=make_generator(5),
                                        return_params=True)
    flipped = {"a": -drawn["a"], "b": -drawn["b"]}
    zero = restoration.build("wiener", phase="zero")
    torch.testing.assert_close(zero(blurred, drawn), zero(blurred, flipped), atol=1e-5, rtol=0)
    study = restoration.build("wiener")
    assert (study(blurred, drawn) - study(blurred, flipped)).abs().max() > 0.05
    with pytest.raises(ValueError, match="phase"):
        restoration.build("wiener", phase="linear")


def test_families_of_the_estimate_are_the_routed_ones_and_clean() -> None:
    from restoration.routed import ROUTED_FAMILIES

    assert set(ROUTED_FAMILIES) | {"clean"} == set(FAMILIES)


@pytest.mark.parametrize(("options", "knowledge"), [
    ({"front": "identity"}, "blind"),                       # told nothing
    ({"front": "median"}, "blind"),
    ({"front": "wiener"}, "oracle"),                        # the drawn blur
    ({"front": "identity", "condition": ["severity"]}, "oracle"),  # the set's severity
])
def test_a_hybrid_knows_what_its_front_end_and_its_condition_read(options: dict,
                                                                  knowledge: str) -> None:
    assert restoration.knowledge_of(restoration.build("hybrid", **options)) == knowledge


def test_sensor_level_noise_is_left_alone_and_impulses_are_always_restored() -> None:
    clean = _scenes() * 0.5  # darker: sigma 0.01 is then 2% of the mean, found noisy
    weak = (clean + 0.01 * torch.randn(clean.shape, generator=make_generator(2))).clamp(0, 1)
    strong = degradations.apply(clean, "gaussian_noise", 1, generator=make_generator(3))
    impulses = degradations.apply(clean, "salt_pepper", 1, generator=make_generator(4))
    restorer = restoration.build("estimated")
    assert (estimate_degradation(weak).family == FAMILIES.index("noise")).all()  # it is noise
    assert torch.equal(restorer(weak), weak)  # ... too weak to be worth a median
    assert psnr(restorer(strong), clean).mean() > psnr(strong, clean).mean() + 3
    assert psnr(restorer(impulses), clean).mean() > psnr(impulses, clean).mean() + 10
    everything = restoration.build("estimated", min_noise_sigma=0.0)
    assert not torch.equal(everything(weak), weak)
    with pytest.raises(ValueError, match="min_noise_sigma"):
        restoration.build("estimated", min_noise_sigma=-1.0)


def test_unsure_blur_estimates_pass_unchanged() -> None:
    """The blur route deconvolves only confident estimates: a score below ``min_blur_score``
    or a blur longer than ``max_blur_length`` (of the larger side) leaves the image as it is."""
    clean = _scenes(12)
    blurred = degradations.apply(clean, "motion_blur", 5, generator=make_generator(6))
    estimate = estimate_degradation(blurred)
    found = estimate.family == FAMILIES.index("blur")
    assert found.sum() >= 6
    everything = restoration.build("estimated", min_blur_score=-1.0, max_blur_length=1.0)
    changed = (everything(blurred) - blurred).flatten(1).abs().amax(1) > 1e-3
    assert torch.equal(changed, found)  # every image estimated blurred is deconvolved
    middle = float(estimate.blur_score[found].median())
    gated = restoration.build("estimated", min_blur_score=middle, max_blur_length=1.0)(blurred)
    kept = found & (estimate.blur_score < middle)
    assert kept.any() and torch.equal(gated[kept], blurred[kept])
    torch.testing.assert_close(gated[found & ~kept], everything(blurred)[found & ~kept])
    short = float(estimate.blur_length[found].median()) / 48
    gated = restoration.build("estimated", min_blur_score=-1.0, max_blur_length=short)(blurred)
    kept = found & (estimate.blur_length > short * 48)
    assert kept.any() and torch.equal(gated[kept], blurred[kept])
    torch.testing.assert_close(gated[found & ~kept], everything(blurred)[found & ~kept])
    for bad in ({"min_blur_score": 1.5}, {"max_blur_length": 0.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            restoration.build("estimated", **bad)


def test_the_oracle_route_restores_each_wild_image_by_its_drawn_family() -> None:
    clean = _scenes(24)
    wild, drawn = degradations.apply(clean, "wild", 5, generator=make_generator(5),
                                     return_params=True)
    oracle = restoration.build("oracle_route")
    assert restoration.knowledge_of(oracle) == "oracle"
    restored = oracle(wild, drawn)
    untouched = drawn["member"] == -1
    assert untouched.any() and torch.equal(restored[untouched], wild[untouched])
    for i in (~untouched).nonzero().flatten().tolist():
        family = {"gaussian_noise": "noise", "salt_pepper": "noise", "speckle": "noise",
                  "motion_blur": "blur", "realistic_motion_blur": "blur"}.get(
            degradations.WILD_MEMBERS[int(drawn["member"][i])], "resolution")
        expected = oracle.routes[family].restore(
            wild[i:i + 1], {name: value[i:i + 1] for name, value in drawn.items()})
        torch.testing.assert_close(restored[i:i + 1], expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="member"):
        oracle(wild)
    # told the drawn sign, the oracle inverts the study's transfer, linear phase included
    blurred = (drawn["member"] == degradations.WILD_MEMBERS.index("motion_blur")).nonzero()
    i = int(blurred.flatten()[0])
    one = {name: value[i:i + 1] for name, value in drawn.items()}
    torch.testing.assert_close(restored[i:i + 1], restoration.build("wiener", k=0.001)(
        wild[i:i + 1], one), atol=1e-5, rtol=0)
