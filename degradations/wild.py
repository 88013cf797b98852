"""The wild query set: each image independently stays clean or gets a random family, variant
and severity, as a folder of real photos would arrive.

``wild`` is one registered degradation whose draw per image is

1. clean with probability ``clean_fraction`` (default 0.2: about a fifth stays clean);
2. otherwise a family, uniformly among ``families`` (default ``noise``, ``blur``,
   ``resolution``), then a variant of it uniformly (:data:`WILD_FAMILIES`: the study's three
   noises; the study's motion blur and its realistic variant; the study's Haar resolution
   loss and its realistic variant; with ``realistic=False`` the study's variants only), then
   that member's severity uniformly in ``1..max_severity``;
3. a 62-bit sub-seed from which the member draws its own parameters and pixel noise
   (``member.forward_indexed(image, 0, [subseed])``), so the image is replayable from the
   recorded parameters alone.

Severity level ``s`` of ``wild`` caps the members' severities at ``s`` (its table:
``max_severity = s``), so the damage grows with the level; ``--degrade wild --severity 5`` is
the full protocol (every severity 1..5 drawn).

Drawn parameters, each (B,): ``member`` (int64, index into :data:`WILD_MEMBERS`, -1 for a
clean image), ``member_severity`` (int64, 0 for clean), ``subseed`` (int64), and the members'
own parameters on one shared set of columns (:data:`MEMBER_PARAMS`: the blurs' ``a``, ``b``;
the resolution losses' ``level``, ``dx``, ``dy``, ``upsample``; the noises' mixture ``kind``),
zero where the image's member does not draw it (``kind`` -1), and ``severity`` (float, the
member's severity, 0 for clean; ``degradations.apply`` keeps it). A restorer told these is an
oracle; one that reads none of them is what a real photo allows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import torch
from torch import Tensor

from robustret.core.checks import check_images
from robustret.core.rng import check_generator, check_seed

from ._base import check_batch, per_index_generators
from .api import SEVERITY, build_module
from .degradation import DEGRADATIONS, Degradation, Params
from .noise import MIXTURE_KINDS

#: family -> its variants a wild image can get: (the study's, ...realistic ones)
WILD_FAMILIES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "noise": ("gaussian_noise", "salt_pepper", "speckle"),
    "blur": ("motion_blur", "realistic_motion_blur"),
    "resolution": ("lowres", "realistic_lowres"),
})
#: the variants that exist only as realistic ones (left out by ``realistic=False``)
REALISTIC = frozenset({"realistic_motion_blur", "realistic_lowres"})
#: every member, in a fixed order: the ``member`` codes index this tuple
WILD_MEMBERS: tuple[str, ...] = tuple(name for names in WILD_FAMILIES.values() for name in names)
#: the members' own drawn parameters on shared columns: name -> (dtype, fill where not drawn)
MEMBER_PARAMS: Mapping[str, tuple[torch.dtype, float]] = MappingProxyType({
    "a": (torch.float32, 0.0), "b": (torch.float32, 0.0), "level": (torch.int64, 0),
    "dx": (torch.float32, 0.0), "dy": (torch.float32, 0.0), "upsample": (torch.int64, 0),
    "kind": (torch.int64, -1),
})
CLEAN = -1
"""The ``member`` code of an image left clean."""


def _families(families: str | Sequence[str]) -> tuple[str, ...]:
    names = tuple(part.strip() for part in families.split(",")) if isinstance(
        families, str) else tuple(families)
    unknown = [name for name in names if name not in WILD_FAMILIES]
    if not names or unknown:
        raise ValueError(f"families must name some of {', '.join(WILD_FAMILIES)} "
                         f"(comma-separated); got {families!r}")
    return tuple(dict.fromkeys(names))


@DEGRADATIONS.register("wild")
class Wild(Degradation):
    """Per image: clean, or a random family, variant and severity (module docstring)."""

    severities = tuple({"max_severity": s} for s in (1, 2, 3, 4, 5))
    family = "wild"

    def __init__(self, max_severity: int = 5, clean_fraction: float = 0.2,
                 families: str = "noise,blur,resolution", realistic: bool = True) -> None:
        super().__init__()
        if isinstance(max_severity, bool) or max_severity not in (1, 2, 3, 4, 5):
            raise ValueError(f"max_severity must be an integer in 1..5; got {max_severity!r}")
        if not (math.isfinite(float(clean_fraction)) and 0.0 <= float(clean_fraction) <= 1.0):
            raise ValueError(f"clean_fraction must be in [0, 1]; got {clean_fraction!r}")
        self.max_severity, self.clean_fraction = int(max_severity), float(clean_fraction)
        self.families, self.realistic = ",".join(_families(families)), bool(realistic)
        self._variants = [
            tuple(WILD_MEMBERS.index(name) for name in WILD_FAMILIES[family]
                  if self.realistic or name not in REALISTIC)
            for family in _families(families)]

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None, *,
                      size: tuple[int, int] | None = None) -> Params:
        u = torch.rand(4, batch_size, generator=generator, dtype=torch.float64)
        subseed = torch.randint(0, 2 ** 62, (batch_size,), generator=generator)
        family = (u[1] * len(self._variants)).long().clamp_(max=len(self._variants) - 1)
        member = torch.empty(batch_size, dtype=torch.int64)
        for i, variants in enumerate(self._variants):
            chosen = family == i
            pick = (u[2][chosen] * len(variants)).long().clamp_(max=len(variants) - 1)
            member[chosen] = torch.tensor(variants, dtype=torch.int64)[pick]
        severity = 1 + (u[3] * self.max_severity).long().clamp_(max=self.max_severity - 1)
        clean = u[0] < self.clean_fraction
        member[clean], severity[clean] = CLEAN, 0
        return {"member": member, "member_severity": severity, "subseed": subseed,
                **_member_params(member, severity, subseed, size)}

    def apply_params(self, images: Tensor, params: Params, *,
                     generator: torch.Generator | None = None) -> Tensor:
        """Apply recorded ``member``, ``member_severity`` and ``subseed`` (the members' own
        columns are re-drawn from the sub-seeds, identically); ``generator`` is unused."""
        return self._apply(images, params)[0]

    def forward(self, images: Tensor, generator: torch.Generator | None = None, *,
                return_params: bool = False) -> Tensor | tuple[Tensor, Params]:
        check_batch(images)
        check_generator(generator)
        params = self.sample_params(images.shape[0], generator, size=tuple(images.shape[-2:]))
        out, params = self._apply(images, params)
        return (out, params) if return_params else out

    def forward_indexed(self, images: Tensor, seed: int, indices: Sequence[int] | Tensor, *,
                        return_params: bool = False) -> Tensor | tuple[Tensor, Params]:
        check_batch(images)
        check_seed(seed)
        if len(indices) != images.shape[0]:
            raise ValueError(f"indices has {len(indices)} entries for {images.shape[0]} images")
        size = tuple(images.shape[-2:])
        drawn = [self.sample_params(1, gen, size=size)
                 for gen in per_index_generators(seed, indices)]
        params = {name: torch.cat([p[name] for p in drawn]) for name in drawn[0]} if drawn else (
            self.sample_params(0))
        out, params = self._apply(images, params)
        return (out, params) if return_params else out

    def _apply(self, images: Tensor, params: Params) -> tuple[Tensor, Params]:
        """Each (member, severity) group degraded by its member from the images' sub-seeds
        (the members' own columns of ``params`` are what those sub-seeds draw); returns the
        images and ``params`` on the images' device."""
        check_images(images, "images")
        member = params["member"].cpu().long()
        severity = params["member_severity"].cpu().long()
        subseed = params["subseed"].cpu().long()
        out = images.clone()
        for code, level in _groups(member, severity):
            chosen = ((member == code) & (severity == level)).nonzero().flatten().to(
                images.device)
            part = build_module(WILD_MEMBERS[code], level).forward_indexed(
                images.index_select(0, chosen), 0, subseed[chosen.cpu()])
            out.index_copy_(0, chosen, part)
        return out, {key: value.to(images.device) for key, value in params.items()}


def _groups(member: Tensor, severity: Tensor) -> list[tuple[int, int]]:
    """The (member code, severity) pairs of the degraded images, sorted; checked."""
    pairs = sorted({(m, s) for m, s in zip(member.tolist(), severity.tolist()) if m != CLEAN})
    for code, level in pairs:
        if not 0 <= code < len(WILD_MEMBERS) or level not in (1, 2, 3, 4, 5):
            raise ValueError(f"wild: recorded member {code} or severity {level} is out of "
                             f"range (members 0..{len(WILD_MEMBERS) - 1}, severity 1..5)")
    return pairs


def _member_params(member: Tensor, severity: Tensor, subseed: Tensor,
                   size: tuple[int, int] | None) -> Params:
    """The members' own drawn parameters on the shared columns (:data:`MEMBER_PARAMS`), each
    (B,): what ``member.forward_indexed(image, 0, [subseed])`` draws, the fill elsewhere;
    ``kind`` the noise mixture's code for a noise; :data:`SEVERITY` the member's severity."""
    batch = member.shape[0]
    columns = {name: torch.full((batch,), fill, dtype=dtype)
               for name, (dtype, fill) in MEMBER_PARAMS.items()}
    for code, level in _groups(member, severity):
        name = WILD_MEMBERS[code]
        module = build_module(name, level)
        for i in ((member == code) & (severity == level)).nonzero().flatten().tolist():
            generator = per_index_generators(0, [int(subseed[i])])[0]
            for key, value in module.sample_params(1, generator, size=size).items():
                if key in columns:
                    columns[key][i] = value[0].to(columns[key].dtype)
        if name in MIXTURE_KINDS:
            columns["kind"][member == code] = MIXTURE_KINDS.index(name)
    columns[SEVERITY] = severity.to(torch.float32)
    return columns
