"""Named groups of degradations: a closed vocabulary, defined once.

=============  ===============================================================================
group          members
=============  ===============================================================================
``study``      the study's six: ``gaussian_noise``, ``lowres`` (Haar), ``motion_blur``,
               ``noise`` (the mixture of the three noises), ``salt_pepper``, ``speckle``
``imagenet-c`` the 14 ImageNet-C test corruptions robustret has (Hendrycks and Dietterich,
               ICLR 2019): ``gaussian_noise``, ``shot_noise``, ``impulse_noise``,
               ``defocus_blur``, ``glass_blur``, ``line_motion_blur`` (ImageNet-C's motion
               blur), ``zoom_blur``, ``snow``, ``fog``, ``brightness``, ``contrast``,
               ``elastic_transform``, ``pixelate``, ``jpeg``. ImageNet-C's 15th, frost, is
               left out: it blends photographs robustret does not ship.
``held-out``   ImageNet-C's held-out corruptions robustret has: ``speckle``,
               ``gaussian_blur``, ``spatter``, ``saturate``
``all``        every registered degradation (read at each call) but ``wild``, which mixes
               the others per image (:data:`PROTOCOLS`)
=============  ===============================================================================

The command lines (``--degrade``) and experiment config files (``degradations``) accept a
group name wherever they accept a degradation name; :func:`expand` turns a mix of both into
degradation names. The members are names of the built-in families (tested); a degradation a
user registers belongs to ``all`` only.

Layer 2, a leaf library. May import: ``robustret.core`` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from robustret.core.checks import ConfigError

from .degradation import DEGRADATIONS

#: the fixed groups' members, in the order a run lists them (``study`` sorted, as
#: ``--degrade all`` listed the six before the corruption suite: the same configuration)
_FIXED: dict[str, tuple[str, ...]] = {
    "study": ("gaussian_noise", "lowres", "motion_blur", "noise", "salt_pepper", "speckle"),
    "imagenet-c": (
        "gaussian_noise", "shot_noise", "impulse_noise",
        "defocus_blur", "glass_blur", "line_motion_blur", "zoom_blur",
        "snow", "fog", "brightness",
        "contrast", "elastic_transform", "pixelate", "jpeg",
    ),
    "held-out": ("speckle", "gaussian_blur", "spatter", "saturate"),
}
#: the group of every registered degradation but the protocols
ALL = "all"
#: registered degradations that mix other families per image (``wild``): a protocol of its
#: own, not a family, so ``all`` leaves it out (``--degrade wild`` names it)
PROTOCOLS = ("wild",)


class GroupTable(Mapping[str, tuple[str, ...]]):
    """Read-only ``group -> member names``; ``all`` is read from the registry at each look-up."""

    def __getitem__(self, group: str) -> tuple[str, ...]:
        if group == ALL:
            return tuple(name for name in DEGRADATIONS.names() if name not in PROTOCOLS)
        return _FIXED[group]

    def __iter__(self) -> Iterator[str]:
        return iter((*_FIXED, ALL))

    def __len__(self) -> int:
        return len(_FIXED) + 1


#: ``group -> member names`` (``study``, ``imagenet-c``, ``held-out``, ``all``)
GROUPS: Mapping[str, tuple[str, ...]] = GroupTable()


def group_names() -> list[str]:
    """The group names, in :data:`GROUPS` order: ``study``, ``imagenet-c``, ``held-out``,
    ``all``."""
    return list(GROUPS)


def expand(names: str | Iterable[str], *, keep_unknown: bool = False) -> list[str]:
    """Degradation names from a mix of group and degradation names.

    Each group is replaced by its members; order is kept and a name given twice (or in two
    groups) is listed once, where it first appears.

    Args:
        names: group and/or registered degradation names (one string is one name).
        keep_unknown: keep a name that is neither where it stands, for a caller that reports
            unknown degradations in its own words (default: refuse it).

    Returns:
        Registered degradation names (and, with ``keep_unknown``, the unknown ones).

    Raises:
        ConfigError (a ValueError): a name that is neither (unless ``keep_unknown``); the
            message lists the groups and the degradations.
    """
    if isinstance(names, str):
        names = [names]
    known = DEGRADATIONS.names()
    out: list[str] = []
    for name in names:
        if name in GROUPS:
            members = GROUPS[name]
        elif name in known or keep_unknown:
            members = (name,)
        else:
            raise ConfigError(
                f"unknown degradation or group {name!r}; groups: {', '.join(group_names())}; "
                f"degradations: {', '.join(known)}")
        out.extend(member for member in members if member not in out)
    return out


def groups_of(name: str) -> tuple[str, ...]:
    """The groups degradation ``name`` belongs to, in :data:`GROUPS` order (``all`` last for
    every registered name).

    Raises:
        ConfigError (a ValueError): ``name`` is not a registered degradation.
    """
    if name not in DEGRADATIONS:
        raise ConfigError(f"unknown degradation {name!r}; available: "
                          f"{', '.join(DEGRADATIONS.names())}")
    return tuple(group for group, members in GROUPS.items() if name in members)
