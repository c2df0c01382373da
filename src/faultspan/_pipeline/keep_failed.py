"""Failures survive head sampling: unsampled local traces are held in memory until they fail or complete.

``KeepFailedSampler`` wraps whatever sampler is configured. Where it says DROP, the span is recorded instead
(RECORD_ONLY): its trace flags, trace state and ids are exactly the ones the DROP would have produced, so what
this service propagates downstream does not change (sampled flag clear). ``HeldTraces`` keeps the ended spans
of each unsampled local trace, bounded; the first span of the trace that ends failed (status ERROR or an
``exception`` event) releases them for export, and every span of that trace ending later goes straight to
export. When the last open span of a trace ends without a failure, its spans are forgotten.

The exported form of a released span is a copy with the sampled flag set (the SDK's batch processors skip
unsampled spans; OTLP does not carry that flag) and ``faultspan.sampling.promoted`` = true: docs/sampling.md.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from faultspan._capture.config import Settings, env_name, warn_once
from faultspan._otlp.sdk_private import has_events, plain_attributes, span_attributes

PROMOTED = "faultspan.sampling.promoted"
# The estimate of a held span's memory: fixed costs per span, event and attribute, plus the length of
# every key and text value; fitted to tracemalloc on CPython 3.11 (benchmarks/sampling.py prints both).
_SPAN_BYTES = 2600
_EVENT_BYTES = 460
_VALUE_BYTES = 112


class KeepFailedSampler(Sampler):
    """``inner``'s decisions, except that DROP becomes RECORD_ONLY (same flags, same trace state)."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

    def should_sample(  # noqa: PLR0917 -- the SDK's Sampler signature
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        # Called as the SDK calls a sampler: custom ones may not take ``trace_state``, which it never passes.
        if trace_state is None:
            result = self.inner.should_sample(parent_context, trace_id, name, kind, attributes, links)
        else:
            result = self.inner.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )
        if result.decision is not Decision.DROP:
            return result
        # The span's attributes come from the result: a DROP result has none (the SDK's samplers discard
        # them), so the span starts with its own attributes, plus any the sampler gave anyway.
        if result.attributes:
            attributes = {**(attributes or {}), **result.attributes}
        return SamplingResult(Decision.RECORD_ONLY, attributes, result.trace_state)

    def get_description(self) -> str:
        return f"KeepFailed{{{self.inner.get_description()}}}"


def keeping_failed(sampler: Sampler) -> Sampler:
    """``sampler`` wrapped once (idempotent)."""
    return sampler if isinstance(sampler, KeepFailedSampler) else KeepFailedSampler(sampler)


def sampled_context(context: SpanContext) -> SpanContext:
    """``context`` with the sampled flag set and every other flag, id and the trace state kept."""
    return SpanContext(
        context.trace_id,
        context.span_id,
        context.is_remote,
        TraceFlags(context.trace_flags | TraceFlags.SAMPLED),
        context.trace_state,
    )


def _value_bytes(value: object) -> int:
    kind = type(value)
    if kind is str or kind is bytes:
        return _VALUE_BYTES + len(value)  # type: ignore[arg-type]
    if kind is tuple or kind is list:
        return _VALUE_BYTES + sum(_value_bytes(item) for item in value)  # type: ignore[attr-defined,misc]
    if kind is dict:
        return _VALUE_BYTES + _attributes_bytes(value)  # type: ignore[arg-type]
    return _VALUE_BYTES


def _attributes_bytes(attributes: Mapping[str, Any]) -> int:
    size = len(attributes) * _VALUE_BYTES
    for key, value in attributes.items():
        size += len(key)
        if type(value) is str:  # the usual case, without a call per value
            size += len(value)
        elif type(value) is not int and type(value) is not bool and type(value) is not float:
            size += _value_bytes(value) - _VALUE_BYTES
    return size


def _estimated_bytes(span: ReadableSpan, events: Sequence[Event]) -> int:
    """What holding ``span`` costs in memory, about (benchmarks/sampling.py measures both)."""
    size = _SPAN_BYTES + len(span.name) + _attributes_bytes(span_attributes(span))
    for event in events:
        size += _EVENT_BYTES + _attributes_bytes(plain_attributes(event.attributes))
    return size


class _Trace:
    __slots__ = ("bytes", "open", "promoted", "spans")

    def __init__(self) -> None:
        self.open = 0
        self.spans: list[ReadableSpan] = []
        self.bytes = 0
        self.promoted = False


class HeldTraces:
    """The unsampled local traces of this process, each until it fails or its last open span ends.

    Bounds (each drop is counted in ``dropped_spans`` and reported once per bound): ``max_traces`` traces
    held at once (a new trace evicts the oldest, whose held spans are dropped), ``max_spans`` ended spans per
    trace and ``max_bytes`` estimated bytes over all traces (a span that does not fit is dropped). A failing
    span is never dropped: it does not wait in memory.
    """

    def __init__(self, max_traces: int, max_spans: int, max_bytes: int) -> None:
        self.max_traces = max(max_traces, 1)
        self.max_spans = max_spans
        self.max_bytes = max_bytes
        self.dropped_spans = 0
        self.bytes = 0
        self._traces: dict[int, _Trace] = {}
        self._lock = threading.Lock()
        if hasattr(os, "register_at_fork"):
            clear = weakref.WeakMethod(self.clear)
            os.register_at_fork(after_in_child=lambda: (method := clear()) and method())

    @classmethod
    def from_settings(cls, settings: Settings) -> HeldTraces | None:
        if not settings.keep_failed_traces:
            return None
        return cls(
            settings.keep_failed_max_traces, settings.keep_failed_max_spans, settings.keep_failed_max_bytes
        )

    def __len__(self) -> int:
        return len(self._traces)

    def clear(self) -> None:
        """Also the after-fork hook: a child holds none of its parent's traces."""
        self._lock = threading.Lock()
        self._traces = {}
        self.bytes = 0

    def on_start(self, span: Span) -> None:
        trace_id = span.context.trace_id
        evicted = False
        with self._lock:
            held = self._traces.get(trace_id)
            if held is None:
                if len(self._traces) >= self.max_traces:
                    oldest = self._traces.pop(next(iter(self._traces)))
                    self.bytes -= oldest.bytes
                    self.dropped_spans += len(oldest.spans)
                    evicted = True
                held = self._traces[trace_id] = _Trace()
            held.open += 1
        if evicted:
            _report("max_traces")

    def on_end(self, span: ReadableSpan) -> list[ReadableSpan]:
        """The spans to export now: none, or ``span`` (after its trace failed), or the trace's held spans
        and ``span`` (when ``span`` is its first failure)."""
        events = span.events if has_events(span) else ()
        failing = span.status.status_code is StatusCode.ERROR or any(
            event.name == "exception" for event in events
        )
        with self._lock:
            released, bound = self._ended(span, events, failing)
        if bound is not None:  # reported outside the lock: a logging handler may end spans of its own
            _report(bound)
        return released

    def _ended(
        self, span: ReadableSpan, events: Sequence[Event], failing: bool
    ) -> tuple[list[ReadableSpan], str | None]:
        trace_id = span.context.trace_id
        held = self._traces.get(trace_id)
        if held is None:  # evicted, or started before faultspan was installed
            return ([span] if failing else []), None
        held.open -= 1
        if held.open <= 0:
            del self._traces[trace_id]
            self.bytes -= held.bytes
        if held.promoted:
            return [span], None
        if failing:
            released, held.spans, held.promoted = held.spans, [], True
            if held.open > 0:
                self.bytes -= held.bytes
            held.bytes = 0
            released.append(span)
            return released, None
        if held.open <= 0:  # the trace is over: nothing to hold, nothing to estimate
            return [], None
        if len(held.spans) >= self.max_spans:
            bound = "max_spans"
        elif self.bytes + (size := _estimated_bytes(span, events)) > self.max_bytes:
            bound = "max_bytes"
        else:
            held.spans.append(span)
            held.bytes += size
            self.bytes += size
            return [], None
        self.dropped_spans += 1
        return [], bound


def _report(bound: str) -> None:
    warn_once(
        f"keep-failed:{bound}",
        "faultspan: %s reached; unsampled spans that a later failure would have exported are dropped "
        "(counted, not reported again)",
        env_name(f"keep_failed_{bound}"),
    )
