"""Attributes set by ``faultspan.context(...)``: stamped on every span started inside it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType, TracebackType

from faultspan._pipeline.breadcrumbs import attribute_value

AttributeValue = str | bool | int | float
_EMPTY: Mapping[str, AttributeValue] = MappingProxyType({})
_attributes: ContextVar[Mapping[str, AttributeValue]] = ContextVar("faultspan_context", default=_EMPTY)


current: Callable[[], Mapping[str, AttributeValue]] = _attributes.get  # read on every span's start


class context:
    """``with faultspan.context(user_id=7):`` (or ``async with``); nested blocks merge, inner values win."""

    __slots__ = ("_attributes", "_tokens")

    def __init__(self, **attributes: object) -> None:
        self._attributes = {key: attribute_value(value) for key, value in attributes.items()}
        self._tokens: list[Token[Mapping[str, AttributeValue]]] = []

    def __enter__(self) -> context:
        merged = MappingProxyType({**_attributes.get(), **self._attributes})
        self._tokens.append(_attributes.set(merged))
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        _attributes.reset(self._tokens.pop())

    async def __aenter__(self) -> context:
        return self.__enter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(kind, value, tb)
