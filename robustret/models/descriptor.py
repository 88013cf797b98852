"""How a retriever turns an image into its retrieval descriptor: the pooling of the trunk's
feature map and the whitening after it, as one typed value.

Vocabularies, defined once: :data:`POOLINGS` (``avg``: the backbone's own global pooling, the
default; ``gem``: generalised-mean pooling, :mod:`robustret.models.pooling`) and
:data:`WHITENINGS` (``none``, the default; ``pca``: PCA-whitening learned on the gallery's
training part, L2-normalised descriptors, :mod:`robustret.models.whitening`).
"""

from __future__ import annotations

from dataclasses import dataclass

from robustret.models.pooling import MIN_P

#: ``--pooling``: ``avg`` = the backbone's own global pooling (the average of the last feature
#: map of a CNN; a token model's own choice, e.g. a ViT's class token); ``gem`` = GeM
POOLINGS = ("avg", "gem")
#: ``--whiten``: ``none`` (raw pooled features) or ``pca`` (learned PCA-whitening)
WHITENINGS = ("none", "pca")
#: the largest GeM exponent a configuration may start from (p = 64 is all but the maximum)
MAX_P = 64.0


@dataclass(frozen=True)
class DescriptorSpec:
    """The descriptor settings of a run.

    Attributes:
        pooling: one of :data:`POOLINGS`; decides the retriever's architecture (its checkpoint).
        gem_p: GeM's exponent (its starting value when learned), >= 1.
        gem_learn: learn GeM's exponent with the network (else fixed).
        whiten: one of :data:`WHITENINGS`; learned after training, so it decides the
            embeddings, not the checkpoint.
        dim: the descriptor size after PCA (<= the backbone's embedding size); None: keep
            every principal direction the training embeddings have. Needs ``whiten = "pca"``.
    """

    pooling: str = "avg"
    gem_p: float = 3.0
    gem_learn: bool = True
    whiten: str = "none"
    dim: int | None = None

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}; got {self.pooling!r}")
        if self.whiten not in WHITENINGS:
            raise ValueError(f"whiten must be one of {', '.join(WHITENINGS)}; "
                             f"got {self.whiten!r}")
        if (isinstance(self.gem_p, bool) or not isinstance(self.gem_p, (int, float))
                or not MIN_P <= self.gem_p <= MAX_P):
            raise ValueError(f"gem_p must be a number in {MIN_P:g}..{MAX_P:g}; "
                             f"got {self.gem_p!r}")
        if not isinstance(self.gem_learn, bool):
            raise ValueError(f"gem_learn must be true or false; got {self.gem_learn!r}")
        if self.dim is not None:
            if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
                raise ValueError(f"dim must be a positive integer; got {self.dim!r}")
            if self.whiten != "pca":
                raise ValueError(f"dim {self.dim} is the size after PCA: it needs whiten pca "
                                 "(--whiten pca --dim N)")

    @property
    def pooling_key(self) -> tuple[object, ...]:
        """What the retriever's cache key adds: nothing for ``avg`` (the keys of earlier
        releases), the pooling and its settings otherwise."""
        if self.pooling == "avg":
            return ()
        return (f"pooling={self.pooling}", float(self.gem_p), self.gem_learn)

    @property
    def whitening_key(self) -> tuple[object, ...]:
        """What the embeddings' keys add: nothing without whitening."""
        if self.whiten == "none":
            return ()
        return (f"whiten={self.whiten}", self.dim)
