"""The breadcrumb trail: remembered, never written to a span until a failure is recorded on it.

A crumb is kept twice, as the same object: in this context's trail (a ``ContextVar`` holding an immutable
tuple, so threads start empty and asyncio tasks inherit the trail at creation without leaking into their
parent), and, when a span was current, in the trail of that span's trace, shared by every thread and task
working for it (a sync view in a thread pool, a task group). A failure recorded on a span of trace T gets the
crumbs of T, whichever context added them and whether or not their span has ended; a failure with no trace
(faultspan opened the span because none was current: a crash, a ``log.exception`` outside any request) gets
this context's trail. Crumbs added with no span current belong to no trace, so they never reach a request's
failure (a server's start-up banner is not a breadcrumb of every request). Both trails are bounded:
``max_breadcrumbs`` crumbs each, and the traces of the ``TRACES`` most recently active traces.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import islice

from opentelemetry import trace

from faultspan._capture.exceptions import MAX_BREADCRUMB_MESSAGE, head_and_tail
from faultspan._capture.reprs import safe_repr
from faultspan._pipeline import log_events

EVENT = "breadcrumb"
_PRIMITIVES = (str, bool, int, float)
_STRUCTURED_ITEMS = 64
_STRUCTURED_DEPTH = 4
_STRUCTURED_TEXT = 4096
TRACES = 256


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
_traces: OrderedDict[int, deque[Crumb]] = OrderedDict()
_traces_lock = threading.Lock()


def attribute_value(value: object) -> str | bool | int | float:
    return value if type(value) in _PRIMITIVES else safe_repr(value)  # type: ignore[return-value]


def _jsonable(value: object, depth: int) -> object:
    """``value`` cut to a bounded size, as JSON-ready data: keys kept as keys, anything else a repr."""
    if value is None or type(value) in _PRIMITIVES:
        return value
    if depth >= _STRUCTURED_DEPTH:
        return safe_repr(value)
    if isinstance(value, Mapping):
        items = list(value.items())[:_STRUCTURED_ITEMS]
        return {str(key): _jsonable(item, depth + 1) for key, item in items}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, depth + 1) for item in value[:_STRUCTURED_ITEMS]]
    return safe_repr(value)


def structured_text(value: object) -> str:
    """A mapping or list as bounded JSON text (the redactor reads JSON keys with its key rules)."""
    text = json.dumps(_jsonable(value, 0), ensure_ascii=False)
    return text if len(text) <= _STRUCTURED_TEXT else safe_repr(value)


def add(
    category: str,
    message: str,
    level: str,
    data: Mapping[str, object],
    limit: int,
    *,
    logged: bool = False,
) -> Crumb:
    """``logged``: the crumb comes from a stdlib record that is an exported log record already. Under
    ``OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN=logs`` a crumb is a log record at once (docs/logs.md), and no
    failing span gets it as an event."""
    span = trace.get_current_span()
    ids = span.get_span_context()
    crumb = Crumb(
        timestamp=time.time_ns(),
        category=str(category),
        message=head_and_tail(message, MAX_BREADCRUMB_MESSAGE)
        if type(message) is str
        else safe_repr(message),
        level=str(level),
        data={str(key): attribute_value(value) for key, value in islice(data.items(), _STRUCTURED_ITEMS)},
        trace_id=ids.trace_id,
        span_id=ids.span_id,
    )
    remember(crumb, limit)
    if not logged and not log_events.signal().events:
        log_events.emit_breadcrumb(span, crumb.message, crumb.level, crumb.attributes(), crumb.timestamp)
    return crumb


def for_failure(trace_id: int, untraced: bool) -> Sequence[Crumb]:
    """The crumbs that led to a failure on a span of ``trace_id`` (``untraced``: on a span faultspan opened
    because none was current), oldest first."""
    trail = _trail.get()
    if untraced:
        return trail
    with _traces_lock:
        shared = _traces.get(trace_id)
        if shared is not None:
            return tuple(shared)
    return [crumb for crumb in trail if crumb.trace_id == trace_id]


def trail() -> tuple[Crumb, ...]:
    return _trail.get()


def remember(crumb: Crumb, limit: int) -> None:
    """Append ``crumb`` to this context's trail and to its trace's."""
    if limit <= 0:
        return
    trail = _trail.get()
    _trail.set((*trail[len(trail) - limit + 1 :], crumb) if len(trail) >= limit else (*trail, crumb))
    if not crumb.trace_id:
        return
    with _traces_lock:
        shared = _traces.get(crumb.trace_id)
        if shared is None or shared.maxlen != limit:
            shared = _traces[crumb.trace_id] = deque(shared or (), maxlen=limit)
            if len(_traces) > TRACES:
                _traces.popitem(last=False)
        else:
            _traces.move_to_end(crumb.trace_id)
        shared.append(crumb)
