"""PCA-whitening: identity covariance on the training embeddings, dimension reduction, clear
errors, and the retriever's embed with a whitening set."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robustret.models import build_retriever
from robustret.models.descriptor import DescriptorSpec
from robustret.models.whitening import WhiteningLayer, apply_whitening, fit_whitening


def _embeddings(count: int = 400, size: int = 16) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    scales = torch.logspace(0, -1, size)  # unequal variances
    mixing = torch.linalg.qr(torch.randn(size, size, generator=generator))[0]
    return (torch.randn(count, size, generator=generator) * scales) @ mixing + 0.3


def test_whitened_training_embeddings_have_identity_covariance() -> None:
    rows = _embeddings()
    whitening = fit_whitening(rows, dim=15)  # L2-normalising first leaves ~no radial variance
    out = apply_whitening(rows, whitening, normalize=False).double()
    covariance = torch.cov(out.T)
    assert torch.allclose(covariance, torch.eye(whitening.output_dim, dtype=torch.float64),
                          atol=1e-3)
    assert torch.allclose(out.mean(dim=0), torch.zeros(whitening.output_dim,
                                                        dtype=torch.float64), atol=1e-4)
    described = apply_whitening(rows, whitening)
    assert torch.allclose(described.norm(dim=1), torch.ones(len(rows)), atol=1e-5)


def test_dim_reduces_and_keeps_the_leading_directions() -> None:
    rows = _embeddings()
    full, small = fit_whitening(rows), fit_whitening(rows, dim=5)
    assert small.output_dim == 5 and apply_whitening(rows, small).shape == (400, 5)
    assert torch.allclose(small.eigenvalues, full.eigenvalues[:5])
    assert bool((full.eigenvalues[:-1] >= full.eigenvalues[1:]).all())  # largest first
    shrunk = fit_whitening(rows, dim=5, shrinkage=1.0)
    assert torch.allclose(shrunk.eigenvalues, shrunk.eigenvalues.mean().expand(5))


def test_bad_dimensions_are_one_line_errors() -> None:
    rows = _embeddings(count=10, size=16)
    with pytest.raises(ValueError, match=r"dim 17 exceeds the embedding size 16; pass --dim"):
        fit_whitening(rows, dim=17)
    with pytest.raises(ValueError, match="needs at least 13 training embeddings; got 10"):
        fit_whitening(rows, dim=12)
    assert fit_whitening(rows).output_dim == 9  # N - 1 directions carry variance
    with pytest.raises(ValueError, match="takes"):
        apply_whitening(torch.rand(3, 8), fit_whitening(rows))
    with pytest.raises(ValueError, match="--whiten pca --dim N"):
        DescriptorSpec(dim=8)
    with pytest.raises(ValueError, match="gem_p"):
        DescriptorSpec(pooling="gem", gem_p=float("inf"))


def test_retriever_embed_whitens_while_forward_and_features_keep_the_pooled() -> None:
    torch.manual_seed(0)
    model = build_retriever("resnet18", num_classes=3).eval()
    x = torch.rand(24, 1, 32, 32)
    with torch.no_grad():
        pooled = model.embed(x)
        logits = model(x)
        whitening = fit_whitening(pooled, dim=8)
        model.set_whitening(whitening)
        assert torch.allclose(model.embed(x), WhiteningLayer(whitening)(pooled), atol=1e-5)
        assert model.embed(x).shape == (24, 8)
        assert torch.allclose(F.normalize(model.embed(x), dim=1), model.embed(x))
        assert torch.allclose(model(x), logits)
        assert torch.allclose(model.features(x)["embedding"], pooled)
        model.set_whitening(None)
        assert torch.allclose(model.embed(x), pooled)
    with pytest.raises(ValueError, match="512-d"):
        model.set_whitening(fit_whitening(torch.rand(20, 16)))
