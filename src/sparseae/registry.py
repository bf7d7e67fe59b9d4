"""One small registry for every kind of named part (sparsities, corruptions, backbones,
checkpoint kinds). It imports nothing of sparseae but the errors, so any module can register
into it without an import cycle, and it refuses a second entry under a taken name, so two
parts can never silently shadow each other."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from sparseae.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry (a class or a factory). ``what`` names the kind in error messages."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@SPARSITIES.register("topk")``."""

        def wrap(entry: T) -> T:
            self.add(name, entry)
            return entry

        return wrap

    def add(self, name: str, entry: T) -> None:
        if not name or not isinstance(name, str):
            raise ValueError(f"a {self.what} needs a non-empty name, got {name!r}")
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(
                f"{self.what} {name!r} is already registered ({self._entries[name]!r})"
            )
        self._entries[name] = entry

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ConfigError(
                f"unknown {self.what} {name!r}: choose one of {', '.join(self.names())}"
            )
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
