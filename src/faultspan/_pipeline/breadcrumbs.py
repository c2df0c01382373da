"""The breadcrumb trail: per context (threads and asyncio tasks isolated), bounded, immutable snapshots.

Each breadcrumb is added as a ``breadcrumb`` event to the span current when it happens, and remembered in the
trail with that span's ids, so a capture can copy onto the failing span whatever part of the trail that span
does not already carry (crumbs recorded on children that have ended, or on its ancestors).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from opentelemetry import trace

from faultspan._capture.exceptions import MAX_BREADCRUMB_MESSAGE, head_and_tail
from faultspan._capture.reprs import safe_repr

EVENT = "breadcrumb"
_PRIMITIVES = (str, bool, int, float)


@dataclass(frozen=True, eq=False)
class Crumb:
    """Hashed by identity: a span remembers which crumbs it already carries."""

    timestamp: int
    category: str
    message: str
    level: str
    data: Mapping[str, str | bool | int | float]
    trace_id: int
    span_id: int

    def attributes(self) -> dict[str, str | bool | int | float]:
        attributes: dict[str, str | bool | int | float] = {
            "breadcrumb.category": self.category,
            "breadcrumb.message": self.message,
            "breadcrumb.level": self.level,
        }
        for key, value in self.data.items():
            attributes[f"breadcrumb.data.{key}"] = value
        return attributes


_trail: ContextVar[tuple[Crumb, ...]] = ContextVar("faultspan_breadcrumbs", default=())


def attribute_value(value: object) -> str | bool | int | float:
    return value if type(value) in _PRIMITIVES else safe_repr(value)  # type: ignore[return-value]


def add(category: str, message: str, level: str, data: Mapping[str, object], limit: int) -> None:
    span = trace.get_current_span()
    ids = span.get_span_context()
    crumb = Crumb(
        timestamp=time.time_ns(),
        category=str(category),
        message=head_and_tail(message, MAX_BREADCRUMB_MESSAGE)
        if type(message) is str
        else safe_repr(message),
        level=str(level),
        data={str(key): attribute_value(value) for key, value in data.items()},
        trace_id=ids.trace_id,
        span_id=ids.span_id,
    )
    if limit <= 0:
        return
    remember(crumb, limit)
    if span.is_recording():
        span.add_event(EVENT, crumb.attributes(), timestamp=crumb.timestamp)


def missing_from(trace_id: int, span_id: int) -> list[Crumb]:
    """The crumbs of this context's trail that belong to the trace (or to no trace) but not to this span."""
    return [crumb for crumb in _trail.get() if crumb.span_id != span_id and crumb.trace_id in (trace_id, 0)]


def trail() -> tuple[Crumb, ...]:
    return _trail.get()


def remember(crumb: Crumb, limit: int) -> None:
    """Append ``crumb`` to this context's trail without a span event (an outgoing call whose own span
    already carries it in the trace); a capture copies it onto the failing span."""
    if limit <= 0:
        return
    trail = _trail.get()
    _trail.set((*trail[len(trail) - limit + 1 :], crumb) if len(trail) >= limit else (*trail, crumb))
