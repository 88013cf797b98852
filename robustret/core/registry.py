"""A small name -> factory registry used for degradations, restorers and backbones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps short lowercase names to factories.

    Entries come from explicit ``register`` calls; a look-up never guesses.

    Args:
        kind: what the entries are ("degradation", "restorer"), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``factory`` under ``name``; a duplicate name raises."""

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise KeyError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = factory
            return factory

        return decorate

    def unregister(self, name: str) -> Callable[..., T]:
        """Remove the entry ``name`` and return its factory (for tests and plug-in teardown).

        Raises:
            KeyError: ``name`` is not registered; the message lists the available names.
        """
        factory = self.get(name)
        del self._factories[name]
        return factory

    @contextmanager
    def temporarily(self, name: str, factory: Callable[..., T]) -> Iterator[Callable[..., T]]:
        """Register ``factory`` as ``name`` inside a ``with`` block only, e.g. in a test.

        The entry is removed on leaving the block, also when the block raises.

        Raises:
            KeyError: ``name`` is already registered.
        """
        self.register(name)(factory)
        try:
            yield factory
        finally:
            self._factories.pop(name, None)

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``.

        Raises:
            KeyError: unknown name; the message lists the available names.
        """
        try:
            return self._factories[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}"
            ) from None

    def build(self, name: str, **kwargs: Any) -> T:
        """Call the factory registered as ``name`` with ``kwargs``."""
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __len__(self) -> int:
        return len(self._factories)
