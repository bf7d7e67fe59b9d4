"""Configuration dataclasses: the one base that every config of sparseae derives from.

A run's whole configuration is a few frozen dataclasses: the same object comes from Python,
CLI flags or a saved config.json, and is saved next to the weights so a model folder can be
rebuilt without executing anything from it. `Config` gives all of them the same rules:

- ``from_dict`` is strict: an unknown key or a value of the wrong type is a `ConfigError`
  naming the field (and the file, when one is given), never silently dropped or cast;
- every ``dict`` field is JSON-canonical (tuples become lists), so a config equals itself
  after a save and a load;
- every field's domain is declared once, in the class's ``constraints`` (scikit-learn's
  ``_parameter_constraints`` idea), and checked at construction, so the library, the CLI and
  a loaded file refuse the same values with the same one-line message.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any, TypeVar

from sparseae.errors import ConfigError

C = TypeVar("C", bound="Config")


class Constraint:
    """A field's domain; `problem` returns None when ``value`` lies in it."""

    def problem(self, value: Any) -> str | None:
        raise NotImplementedError


class Range(Constraint):
    """A number of ``kind`` (int or float; never bool, NaN or inf) in [low, high], with
    either end open or absent."""

    def __init__(
        self,
        kind: type,
        low: float | None = None,
        high: float | None = None,
        *,
        low_open: bool = False,
        high_open: bool = False,
    ) -> None:
        self.kind, self.low, self.high = kind, low, high
        self.low_open, self.high_open = low_open, high_open

    def problem(self, value: Any) -> str | None:
        ok_type = isinstance(value, int) if self.kind is int else isinstance(value, int | float)
        ok = ok_type and not isinstance(value, bool) and math.isfinite(value)
        if ok and self.low is not None:
            ok = value > self.low if self.low_open else value >= self.low
        if ok and self.high is not None:
            ok = value < self.high if self.high_open else value <= self.high
        return None if ok else self.describe()

    def describe(self) -> str:
        what = "an integer" if self.kind is int else "a finite number"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return f"{what} {' and '.join(bounds)}".strip()


class OneOf(Constraint):
    def __init__(self, *options: Any) -> None:
        self.options = options

    def problem(self, value: Any) -> str | None:
        if any(value == o and type(value) is type(o) for o in self.options):
            return None
        return "one of " + ", ".join(str(o) for o in self.options)


class Optional(Constraint):
    """None, or a value meeting ``inner``."""

    def __init__(self, inner: Constraint) -> None:
        self.inner = inner

    def problem(self, value: Any) -> str | None:
        if value is None:
            return None
        p = self.inner.problem(value)
        return None if p is None else f"{p} (or unset)"


class Each(Constraint):
    """A sequence whose every item meets ``inner``."""

    def __init__(self, inner: Constraint) -> None:
        self.inner = inner

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, list | tuple):
            return "a list"
        for v in value:
            p = self.inner.problem(v)
            if p is not None:
                return f"a list whose every item is {p}"
        return None


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of the frozen config dataclasses (subclasses are ``@dataclass(frozen=True)``
    and may set ``constraints``; a subclass with its own ``__post_init__`` calls
    ``super().__post_init__()`` first)."""

    constraints: typing.ClassVar[dict[str, Constraint]] = {}

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):
                object.__setattr__(self, f.name, json_canonical(value, f.name))
        for name, constraint in self.constraints.items():
            value = getattr(self, name)
            problem = constraint.problem(value)
            if problem is not None:
                raise ConfigError(f"{name} must be {problem}, got {value!r:.60}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], data: Any, source: str | None = None) -> C:
        """Build from a saved dict, refusing unknown keys and wrongly typed values."""
        where = f"{source}: " if source else ""
        if not isinstance(data, dict):
            raise ConfigError(f"{where}{cls.__name__} must be a JSON object, got {data!r:.60}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{where}{cls.__name__} has no field(s) {', '.join(unknown)}")
        hints = typing.get_type_hints(cls)
        for key, value in data.items():
            if not _matches(value, hints[key]):
                raise ConfigError(
                    f"{where}{cls.__name__}.{key} must be {_describe(hints[key])}, "
                    f"got {value!r:.60}"
                )
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"{where}{exc}") from None
        except TypeError as exc:  # a required field missing
            raise ConfigError(f"{where}{cls.__name__}: {exc}") from None

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)


def json_canonical(params: dict[str, Any], name: str = "params") -> dict[str, Any]:
    try:
        return json.loads(json.dumps(dict(params), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{name} must hold JSON values (numbers, strings, lists): {exc}"
        ) from None


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(
            _matches(v, a) for v, a in zip(value, args, strict=True)
        )
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True  # a type this checker does not know: the constructor validates


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin is tuple:
        return "a list"
    if origin is dict or hint is dict:
        return "an object"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        hint, str(hint)
    )


def dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
