"""The restorer registry: the one way to build a restorer, and which entries are networks.

``RESTORERS.build(name, **options)`` (which ``restoration.build`` is) builds the entry, records
``name`` and ``options`` on the module (so :func:`restoration.save` can store how to rebuild it)
and returns it in ``eval()`` mode. Whether an entry is a network to train comes from its class
attribute :attr:`~restoration.base.Restorer.trainable` only.
"""

from __future__ import annotations

from typing import Any

from restoration.base import Restorer
from robustret.core.registry import Registry

IDENTITY = "identity"
"""The registry name of the no-op restorer (the "no restoration" row); neither network nor
classical filter."""


def _plain(value: Any) -> Any:
    """Options as stored in checkpoints and configs: tuples become lists."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class RestorerRegistry(Registry[Restorer]):
    """A :class:`~robustret.core.registry.Registry` of restorers whose ``build`` stamps
    the result."""

    def __init__(self) -> None:
        super().__init__("restorer")

    def build(self, name: str, **options: Any) -> Restorer:
        """Build the restorer registered as ``name`` with keyword ``options``.

        Args:
            name: one of :meth:`names`.
            **options: constructor options (e.g. ``widths=(4, 4, 4, 4, 4)``, ``channels=3``).
        Returns:
            A :class:`~restoration.base.Restorer` in ``eval()`` mode whose ``restorer_name``
            and ``restorer_options`` say how to build it again.
        Raises:
            KeyError: unknown name; the message lists the available ones.
            TypeError: the entry did not return a ``Restorer``, or an unknown option.
        """
        model = self.get(name)(**options)
        if not isinstance(model, Restorer):
            raise TypeError(f"restorer {name!r} built a {type(model).__name__}, not a "
                            "restoration.base.Restorer; register a Restorer subclass")
        model.restorer_name = name
        model.restorer_options = _plain(dict(options))
        return model.eval()

    def is_trainable(self, name: str) -> bool:
        """Whether the entry ``name`` is a network (its ``trainable`` class attribute)."""
        return bool(getattr(self.get(name), "trainable", False))

    def networks(self) -> list[str]:
        """Sorted names of the trainable entries (the networks)."""
        return [name for name in self.names() if self.is_trainable(name)]

    def classical(self) -> list[str]:
        """Sorted names of the untrained filters: neither networks nor ``identity``."""
        return [name for name in self.names()
                if name != IDENTITY and not self.is_trainable(name)]


RESTORERS = RestorerRegistry()
"""Every restorer; the built-in entries are registered in ``restoration/__init__.py``."""
