"""An attribute kept under a name it had before its code moved: one part's method, reached
through the object that used to own it, with its signature intact for mypy."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

_Part = TypeVar("_Part")
_Params = ParamSpec("_Params")
_Result = TypeVar("_Result")


class Forwarded(Generic[_Part, _Params, _Result]):
    """``name = Forwarded("part", Part.method)`` in a class body makes ``owner.name(...)``
    call ``owner.part.method(...)``; a part of another type is a TypeError when reached."""

    def __init__(
        self,
        part: str,
        method: Callable[Concatenate[_Part, _Params], Coroutine[Any, Any, _Result]],
    ) -> None:
        self._part = part
        self._method = method

    def __get__(
        self, owner: object, owner_type: type | None = None
    ) -> Callable[_Params, Coroutine[Any, Any, _Result]]:
        part = getattr(owner, self._part)
        expected = self._method.__qualname__.partition(".")[0]
        if type(part).__name__ != expected:
            msg = f"{type(owner).__name__}.{self._part} is a {type(part).__name__}, not {expected}"
            raise TypeError(msg)
        return partial(self._method, part)
