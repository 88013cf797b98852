"""The ridge map between embeddings (robustret.models.embedding_map) and auto's resolution
route in embedding space (robustret.experiment.embedding_routes)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import degradations
from robustret.experiment.embedding_routes import ResolutionMaps, training_subset
from robustret.models.embedding_map import fit_embedding_map


def _pairs(n: int = 200, dim: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor,
                                                                 torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=gen)
    weight = torch.randn(dim, dim, generator=gen)
    shift = torch.randn(dim, generator=gen)
    return x, x @ weight + shift, weight, shift


def test_least_squares_recovers_an_affine_map_on_new_embeddings() -> None:
    x, y, weight, shift = _pairs()
    found = fit_embedding_map(x, y, ridge=0.0)
    new = torch.randn(7, x.shape[1], generator=torch.Generator().manual_seed(1))
    assert torch.allclose(found(new), new @ weight + shift, atol=1e-4)
    assert torch.allclose(found.weight.float(), weight, atol=1e-4)


def test_a_strong_ridge_leaves_the_identity_plus_the_shift_of_the_means() -> None:
    x, y, _, _ = _pairs()
    found = fit_embedding_map(x, y, ridge=1e6)
    expected = x - x.mean(0) + y.mean(0)
    assert torch.allclose(found(x), expected, atol=1e-3)
    # a mild ridge sits between: closer to the targets than the identity is
    mild = fit_embedding_map(x, y, ridge=1e-2)
    assert (mild(x) - y).norm() < (expected - y).norm()


def test_a_wider_input_carries_its_first_columns_over_and_uses_the_others() -> None:
    x, y, _, _ = _pairs()
    hint = y - x  # a second view that tells the map what the first one misses
    wide = torch.cat([x, hint], dim=1)
    strong = fit_embedding_map(wide, y, ridge=1e6)
    assert (strong.input_dim, strong.output_dim) == (12, 6)
    assert torch.allclose(strong(wide), x - x.mean(0) + y.mean(0), atol=1e-3)
    mild = fit_embedding_map(wide, y, ridge=1e-3)
    alone = fit_embedding_map(x, y, ridge=1e-3)
    assert (mild(wide) - y).norm() < (alone(x) - y).norm()


def test_the_map_keeps_dtype_and_checks_shapes() -> None:
    x, y, _, _ = _pairs()
    found = fit_embedding_map(x, y)
    assert found(x.half().float()).dtype == torch.float32
    assert found(x.double()).dtype == torch.float64
    with pytest.raises(ValueError, match=r"inputs must be \(N, 6\)"):
        found(torch.zeros(3, 5))


@pytest.mark.parametrize("inputs, targets, ridge, message", [
    (torch.zeros(5, 3), torch.zeros(5, 4), 0.0, "D_out <= D_in"),
    (torch.zeros(5, 3), torch.zeros(4, 3), 0.0, "N >= 2"),
    (torch.zeros(1, 3), torch.zeros(1, 3), 0.0, "N >= 2"),
    (torch.zeros(5, 3), torch.zeros(5, 3), -1.0, "ridge"),
    (torch.zeros(5, 3), torch.zeros(5, 3), float("nan"), "ridge"),
    (torch.full((5, 3), float("nan")), torch.zeros(5, 3), 0.0, "finite"),
])
def test_bad_input_is_a_clear_error(inputs, targets, ridge, message) -> None:
    with pytest.raises(ValueError, match=message):
        fit_embedding_map(inputs, targets, ridge=ridge)


# ------------------------------------------------------------------- auto's resolution route


def _images(n: int, seed: int) -> torch.Tensor:
    """(n, 1, 16, 16) smooth random images in [0, 1] (no constant blocks)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, 6, 6, generator=gen)
    return F.interpolate(coarse, size=(16, 16), mode="bicubic", align_corners=False).clamp(0, 1)


class _Embed:
    """A fixed random 3x3 convolution, ReLU and average pooling to 8 dimensions (a toy CNN,
    whose response to block copies is systematic), counting its calls."""

    def __init__(self) -> None:
        self.weight = torch.randn(8, 1, 3, 3, generator=torch.Generator().manual_seed(2))
        self.calls = 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return F.conv2d(images, self.weight).relu().mean((2, 3))


def _maps(ridge: float = 1e-3, source: str = "retriever") -> tuple[ResolutionMaps, _Embed]:
    embed = _Embed()
    training = _images(400, seed=0)
    return ResolutionMaps(embed, training, embed(training), source, ridge=ridge), embed


def test_low_resolution_embeddings_move_toward_their_clean_ones() -> None:
    maps, embed = _maps()
    clean = _images(12, seed=5)  # not among the training images
    reduced = degradations.haar_lowres(clean, 2)
    routed = maps.routed(embed)(reduced)
    before = (embed(reduced) - embed(clean)).norm(dim=1).mean()
    after = (routed - embed(clean)).norm(dim=1).mean()
    assert after < 0.75 * before
    assert list(maps.maps) == [2]  # only the level it met was learned


def test_images_at_level_zero_keep_their_embeddings_bit_for_bit() -> None:
    maps, embed = _maps()
    sharp = _images(6, seed=7)
    mixed = torch.cat([sharp, degradations.haar_lowres(sharp[:3], 1)])
    assert maps.levels(mixed).tolist() == [0] * 6 + [1] * 3
    routed = maps.routed(embed)(mixed)
    assert torch.equal(routed[:6], embed(sharp))
    assert not torch.allclose(routed[6:], embed(mixed[6:]))


def test_a_level_is_learned_once_and_level_zero_has_no_map() -> None:
    maps, embed = _maps()
    first = maps.map_for(1)
    calls = embed.calls
    assert maps.map_for(1) is first and embed.calls == calls
    with pytest.raises(ValueError, match="levels >= 1"):
        maps.map_for(0)


def test_the_key_names_what_decides_the_maps() -> None:
    base = _maps()[0].key()
    assert _maps()[0].key() == base
    assert _maps(ridge=1e-2)[0].key() != base
    assert _maps(source="another retriever")[0].key() != base


def test_training_images_and_embeddings_must_pair_up() -> None:
    embed = _Embed()
    with pytest.raises(ValueError, match="pair up"):
        ResolutionMaps(embed, _images(4, 0), torch.zeros(3, 8), "key")
    with pytest.raises(ValueError, match="start with 'nearest'"):
        ResolutionMaps(embed, _images(4, 0), torch.zeros(4, 8), "key", views=("bicubic",))


def test_the_views_are_embedded_side_by_side() -> None:
    maps, embed = _maps()
    level_two = maps.map_for(2)
    assert (level_two.input_dim, level_two.output_dim) == (24, 8)  # three views of 8
    only_blocks, _ = _maps()
    only_blocks.views = ("nearest",)
    assert only_blocks.map_for(2).input_dim == 8
    assert only_blocks.key() != maps.key()


def test_a_large_training_part_is_subsampled_evenly() -> None:
    assert torch.equal(training_subset(5, most=8), torch.arange(5))
    spaced = training_subset(101, most=5)
    assert spaced.tolist() == [0, 25, 50, 75, 100]
    assert len(training_subset(10_000)) == 4096
