"""Typed reading of a run's params, with errors that name the param.

Params arrive as JSON, so every value is checked for its type and range
here, and a name that the runtime never reads is refused: a misspelt
``max_token`` must fail the run rather than silently take the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.runtimes.base import RuntimeParamsError

__all__ = ["ParamReader"]

_MISSING = object()


class ParamReader:
    """Reads the params of one run for the runtime ``runtime``.

    Each getter returns the value or its default and raises
    RuntimeParamsError when the value has the wrong type or range;
    ``finish`` raises if a param was given that no getter asked for.
    """

    def __init__(self, runtime: str, params: Mapping[str, Any]) -> None:
        if not isinstance(params, Mapping):
            raise RuntimeParamsError(
                f"{runtime} params: expected a mapping, got {type(params).__name__}"
            )
        self._runtime = runtime
        self._params = params
        self._read: set[str] = set()

    def _get(self, name: str) -> Any:
        self._read.add(name)
        return self._params.get(name, _MISSING)

    def _fail(self, name: str, expected: str, value: Any) -> RuntimeParamsError:
        return RuntimeParamsError(
            f"{self._runtime} params: {name}: expected {expected}, got {value!r}"
        )

    def has(self, name: str) -> bool:
        """Return whether ``name`` was given (and count it as read)."""
        self._read.add(name)
        return name in self._params

    def integer(
        self, name: str, default: int, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        """Return an int param within [minimum, maximum]."""
        value = self._get(name)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(name, _describe("an integer", minimum, maximum), value)
        if not _within(value, minimum, maximum):
            raise self._fail(name, _describe("an integer", minimum, maximum), value)
        return value

    def number(
        self,
        name: str,
        default: float,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        """Return a numeric param, as a float, within [minimum, maximum]."""
        value = self._get(name)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._fail(name, _describe("a number", minimum, maximum), value)
        if not _within(value, minimum, maximum):
            raise self._fail(name, _describe("a number", minimum, maximum), value)
        return float(value)

    def optional_number(
        self, name: str, minimum: float | None = None, maximum: float | None = None
    ) -> float | None:
        """Return a numeric param, or None when it is absent or null."""
        if self._params.get(name) is None:
            self._read.add(name)
            return None
        return self.number(name, 0.0, minimum, maximum)

    def text(self, name: str, default: str | None = None) -> str | None:
        """Return a string param, or ``default`` when it is absent or null."""
        value = self._get(name)
        if value is _MISSING or value is None:
            return default
        if not isinstance(value, str):
            raise self._fail(name, "a string", value)
        return value

    def texts(self, name: str) -> list[str] | None:
        """Return a non-empty list of strings, or None when it is absent."""
        value = self._get(name)
        if value is _MISSING or value is None:
            return None
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(item, str) for item in value)
        ):
            raise self._fail(name, "a non-empty list of strings", value)
        return list(value)

    def text_map(self, name: str) -> dict[str, str]:
        """Return a mapping of strings to strings; empty when absent."""
        value = self._get(name)
        if value is _MISSING or value is None:
            return {}
        if not isinstance(value, Mapping) or not all(
            isinstance(key, str) and isinstance(item, str) for key, item in value.items()
        ):
            raise self._fail(name, "a mapping of strings to strings", value)
        return dict(value)

    def raw(self, name: str, default: Any = None) -> Any:
        """Return a param as given, unchecked."""
        value = self._get(name)
        return default if value is _MISSING else value

    def finish(self) -> None:
        """Return None if every given param was read; raise RuntimeParamsError
        naming the unknown ones and the accepted ones otherwise."""
        unknown = sorted(set(self._params) - self._read)
        if unknown:
            raise RuntimeParamsError(
                f"{self._runtime} params: unknown {', '.join(map(repr, unknown))}; "
                f"accepted: {', '.join(sorted(self._read))}"
            )


def _within(value: float, minimum: float | None, maximum: float | None) -> bool:
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def _describe(kind: str, minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{kind} from {minimum} to {maximum}"
    if minimum is not None:
        return f"{kind} of at least {minimum}"
    if maximum is not None:
        return f"{kind} of at most {maximum}"
    return kind
