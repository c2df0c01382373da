"""The one span processor that sees raw data: redact and fingerprint once per span, then fan out.

The thread that ends a span only appends it to a bounded queue. A worker thread redacts each span once,
completes fingerprints the capture path could not compute (events recorded without the instrumentor), and
hands the redacted copy to every downstream processor (usually one BatchSpanProcessor per exporter named in
``OTEL_TRACES_EXPORTER``), so no exporter ever receives unredacted data and none pays for redaction again.
Which processor an exporter gets is the wiring's choice (``Wiring``), made where the pipeline is assembled.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, TraceFlags

from faultspan._capture import fingerprint as fp
from faultspan._capture.config import warn_once
from faultspan._capture.exceptions import (
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
    FINGERPRINT,
    FINGERPRINT_PATH,
    GROUPING,
    MAX_MESSAGE,
    MAX_STACKTRACE,
    MAX_STATUS,
    MAX_STRUCTURE,
    fit_grouping,
    head_and_tail,
)
from faultspan._capture.redaction import Redactor, TaintScope
from faultspan._capture.runtime import current
from faultspan._otlp.sdk_private import (
    TRACE_FLAGS,
    bounded,
    has_events,
    has_links,
    kind_and_context,
    lone_attributes,
    plain_attributes,
    plain_spans,
    span_attributes,
    span_context,
)
from faultspan._pipeline import scope
from faultspan._pipeline.calls import remember_call
from faultspan._pipeline.keep_failed import PROMOTED, HeldTraces, sampled_context
from faultspan._pipeline.worker import Worker, flush_through, shut_down_through

MASKED_COUNT = "redaction.masked.count"
MASKED_KEYS = "redaction.masked.keys"
_logger = logging.getLogger("faultspan")
# Read on every span: an enum member read through its class costs a metaclass lookup (70 ns), and the
# ``sampled`` property one more call than the flag's bit.
_CLIENT = SpanKind.CLIENT
_SAMPLED = TraceFlags.SAMPLED


def _text_fingerprints(attributes: Mapping[str, Any]) -> dict[str, str]:
    """The keys of an event recorded without faultspan, from its text, as the live path would give them."""
    keys, info = fp.text_fingerprints(
        str(attributes.get(EXCEPTION_TYPE, "")),
        str(attributes.get(EXCEPTION_MESSAGE, "")),
        str(attributes.get(EXCEPTION_STACKTRACE, "")),
    )
    return {GROUPING: fit_grouping(info, MAX_STRUCTURE), FINGERPRINT_PATH: keys.path, FINGERPRINT: keys.root}


def _bounded_exception_text(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """An event recorded without faultspan's capture, its message and stack trace bounded as capture bounds
    its own (the SDK copies the whole ``str(exc)``)."""
    bounded = dict(attributes)
    for key, limit in ((EXCEPTION_MESSAGE, MAX_MESSAGE), (EXCEPTION_STACKTRACE, MAX_STACKTRACE)):
        value = bounded.get(key)
        if isinstance(value, str):
            bounded[key] = head_and_tail(value, limit)
    return bounded


def without_capture(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """An exception recorded without faultspan's capture (an SDK span event, a log handler's record): its
    text bounded as capture bounds its own, and its keys from that text, as the live path would give them."""
    recorded = _bounded_exception_text(attributes)
    return {**recorded, **_text_fingerprints(recorded)}


def scrub_recorded(
    redactor: Redactor, attributes: Mapping[str, Any], prefix: str, masked: TaintScope
) -> dict[str, Any] | None:
    """``scrub_attributes`` for an event or record that may carry an exception: its grouping info, derived
    from the scrubbed message, gets the capture's secrets masked, but what is masked in it alone (its
    template writes digits as ``<n>``: ``SHA256:`` reads ``SHA<n>:``) spreads nowhere else."""
    derived = attributes.get(GROUPING)
    if type(derived) is not str:
        return redactor.scrub_attributes(attributes, prefix, masked)
    own = {key: value for key, value in attributes.items() if key != GROUPING}
    scrubbed = redactor.scrub_attributes(own, prefix, masked)
    reader = masked.reader()
    grouping = redactor.scrub_value(GROUPING, derived, prefix + GROUPING, reader)
    masked.extend(reader)
    if scrubbed is None and grouping is derived:
        return None
    return {**(own if scrubbed is None else scrubbed), GROUPING: grouping}


def _events(
    span: ReadableSpan, redactor: Redactor, masked: TaintScope
) -> tuple[list[Event] | None, tuple[str, str | None] | None]:
    """Redacted events (None when unchanged) and the keys (fingerprint, path) of the last exception event."""
    changed: list[Event] | None = None
    last: tuple[str, str | None] | None = None
    for index, event in enumerate(span.events):
        original = plain_attributes(event.attributes)
        attributes = scrub_recorded(redactor, original, f"event[{index}].", masked)
        if event.name == "exception":
            current = attributes or original
            if not isinstance(current.get(FINGERPRINT), str):
                attributes = current = without_capture(current)
            path = current.get(FINGERPRINT_PATH)
            last = (str(current[FINGERPRINT]), path if isinstance(path, str) else None)
        if attributes is not None:
            if changed is None:
                changed = list(span.events[:index])
            changed.append(Event(event.name, bounded(attributes, event.dropped_attributes), event.timestamp))
        elif changed is not None:
            changed.append(event)
    return changed, last


def _links(span: ReadableSpan, redactor: Redactor, masked: list[str]) -> list[Link] | None:
    changed: list[Link] | None = None
    for index, link in enumerate(span.links):
        original = plain_attributes(link.attributes)
        attributes = redactor.scrub_attributes(original, f"link[{index}].", masked)
        if attributes is not None:
            if changed is None:
                changed = list(span.links[:index])
            changed.append(Link(link.context, bounded(attributes, link.dropped_attributes)))
        elif changed is not None:
            changed.append(link)
    return changed


def _with_dropped(items: list[Any], dropped: int) -> BoundedList[Any]:
    copy: BoundedList[Any] = BoundedList(None)
    copy.extend(items)
    copy.dropped = dropped
    return copy


def redact_span(span: ReadableSpan, redactor: Redactor) -> ReadableSpan:
    """The exportable form of ``span``: the same object when nothing needs changing, else a copy.

    A secret masked anywhere in the span is masked everywhere in it; one found after the strings that also
    hold it (a local in the frames JSON after the message) is caught by a second pass over the copy."""
    attributes = None if span.status.description else lone_attributes(span)
    if attributes is not None:
        # Most spans: no events, links or status text, and nothing to mask in the name and attributes.
        name = span.name
        if redactor.scrub_text(name) is name and redactor.leaves_attributes(attributes):
            return span
    scope = TaintScope()
    redacted = _redact(span, redactor, scope)
    return _redact(redacted, redactor, scope) if scope.secrets else redacted


def _redact(span: ReadableSpan, redactor: Redactor, masked: TaintScope) -> ReadableSpan:
    status = span.status
    name = redactor.scrub_text(span.name, masked)
    if name is not span.name:
        masked.append("name")
    original_attributes = span_attributes(span)
    attributes = redactor.scrub_attributes(original_attributes, "", masked)
    # Most spans carry no events or links: skip the SDK's tuple copies of empty sequences.
    events, last_keys = _events(span, redactor, masked) if has_events(span) else (None, None)
    last_fingerprint = last_keys[0] if last_keys else None
    links = _links(span, redactor, masked) if has_links(span) else None
    description = status.description
    if description:
        # The SDK's own use_span / Span.__exit__ put the whole str(exc) here.
        description = head_and_tail(description, MAX_STATUS)
        scrubbed = redactor.scrub_text(description, masked)
        if scrubbed is not description:
            masked.append("status.description")
            description = scrubbed
    code = (
        StatusCode.ERROR
        if last_fingerprint and status.status_code is StatusCode.UNSET
        else status.status_code
    )
    extra: dict[str, Any] = {}
    if last_keys:
        extra.update(
            (key, value)
            for key, value in zip((FINGERPRINT, FINGERPRINT_PATH), last_keys, strict=True)
            if value and original_attributes.get(key) != value
        )
    if masked:
        paths = list(dict.fromkeys(masked))
        extra[MASKED_COUNT] = len(paths)
        extra[MASKED_KEYS] = ",".join(paths)
    if (
        attributes is None
        and events is None
        and links is None
        and not extra
        and description is status.description
        and code is status.status_code
    ):
        return span
    return ReadableSpan(
        name=name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=bounded({**(attributes or original_attributes), **extra}, span.dropped_attributes),
        events=_with_dropped(list(span.events) if events is None else events, span.dropped_events),
        links=_with_dropped(list(span.links) if links is None else links, span.dropped_links),
        kind=span.kind,
        status=Status(code, description if code is StatusCode.ERROR else None),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def promoted(span: ReadableSpan) -> ReadableSpan:
    """An unsampled span that ``HeldTraces`` released because its trace failed, as it is exported: marked
    sampled (the SDK's processors skip unsampled spans; OTLP does not carry the flag) and ``PROMOTED``."""
    return ReadableSpan(
        name=span.name,
        context=sampled_context(span.context),
        parent=span.parent,
        resource=span.resource,
        attributes=bounded({**span_attributes(span), PROMOTED: True}, span.dropped_attributes),
        events=_with_dropped(list(span.events), span.dropped_events),
        links=_with_dropped(list(span.links), span.dropped_links),
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def unchanged_spans(spans: Sequence[ReadableSpan], redactor: Redactor) -> list[bool]:
    """For each span, True when ``redact_span`` would return it as it is, told for the batch at once
    (``Redactor.leaves_spans``); False where ``redact_span`` itself has to decide."""
    try:
        return redactor.leaves_spans(*plain_spans(spans))
    except Exception:  # an attribute value that cannot be compared: each span's redaction then decides
        return [False] * len(spans)


_UNCHANGED = object()


class RedactOnce:
    """Redaction on the export threads. Each span is redacted once however many exporters' threads ask: the
    first one redacts, the others get the same copy, kept while the raw span lives (while some exporter's
    queue still holds it). A span whose redaction fails is dropped for every exporter and counted once."""

    def __init__(self) -> None:
        self.sinks = 0
        self.dropped = 0
        self._lock = threading.Lock()
        # The copy, _UNCHANGED (never the span itself: it would keep its own key alive), or None (dropped).
        self._copies: weakref.WeakKeyDictionary[ReadableSpan, object] = weakref.WeakKeyDictionary()

    def batch(self, spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
        redactor = current().redactor
        unchanged = unchanged_spans(spans, redactor)
        if self.sinks < 2:
            if all(unchanged):
                return list(spans)
            return [
                copy
                for copy in (
                    span if same else self._redacted(span, redactor)
                    for span, same in zip(spans, unchanged, strict=True)
                )
                if copy is not None
            ]
        kept: list[ReadableSpan] = []
        with self._lock:
            for span, same in zip(spans, unchanged, strict=True):
                known = self._copies.get(span)
                if known is None and span not in self._copies:
                    copy = span if same else self._redacted(span, redactor)
                    known = self._copies[span] = _UNCHANGED if copy is span else copy
                if known is _UNCHANGED:
                    kept.append(span)
                elif isinstance(known, ReadableSpan):
                    kept.append(known)
        return kept

    def one(self, span: ReadableSpan) -> ReadableSpan | None:
        """``span`` redacted now, for the thread that ends it (no waiting on the export threads)."""
        return self._redacted(span, current().redactor)

    def _redacted(self, span: ReadableSpan, redactor: Redactor) -> ReadableSpan | None:
        try:
            return redact_span(span, redactor)
        except Exception:
            # Fail closed: a span we could not redact is not exported.
            self.dropped += 1
            _logger.exception("faultspan: could not redact span %r; dropped", span.name)
            return None


class Redacting(SpanExporter):
    """``exporter`` behind redaction: what its batch processor's thread exports was redacted there."""

    def __init__(self, exporter: SpanExporter, redact: RedactOnce) -> None:
        self._exporter = exporter
        self._redact = redact

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        redacted = self._redact.batch(spans)
        return self._exporter.export(redacted) if redacted else SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._exporter.shutdown()


Wiring = Callable[..., SpanProcessor]
"""``wiring(exporter, redact, **batch_processor_options)``: the processor exporting for ``exporter``, for
the SDK to register after faultspan's. It receives raw spans on the thread that ends them and must pass
every one through ``redact`` (a ``RedactOnce``) before anything leaves the process or reaches the disk."""


class _FlushingBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's ``force_flush`` exports the queue but never flushes the exporter; the package writer keeps
    its own queue, which a flush at exit or on SIGTERM must empty too."""

    def __init__(self, exporter: SpanExporter, **kwargs: Any) -> None:
        super().__init__(exporter, **kwargs)
        self._flushed_exporter = exporter

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        timeout_millis = 30000 if timeout_millis is None else timeout_millis
        deadline = time.monotonic() + timeout_millis / 1000
        ok = super().force_flush(timeout_millis)
        remaining = int(max(deadline - time.monotonic(), 0) * 1000)
        return self._flushed_exporter.force_flush(remaining) and ok


def batch_wiring(exporter: SpanExporter, redact: RedactOnce, **kwargs: Any) -> SpanProcessor:
    """The default ``Wiring``: the SDK's batch processor, redacting each batch on its thread, that also
    flushes its exporter."""
    return _FlushingBatchSpanProcessor(Redacting(exporter, redact), **kwargs)


class FaultspanSpanProcessor(SpanProcessor):
    def __init__(
        self,
        downstream: Sequence[SpanProcessor] = (),
        max_queue_size: int | None = None,
        *,
        wiring: Wiring = batch_wiring,
    ) -> None:
        self._downstream: list[SpanProcessor] = list(downstream)
        self._wiring = wiring
        self._redact = RedactOnce()
        self._redact.sinks = 1 if self._downstream else 0  # the processors behind this one count as one
        self._max_queue = max_queue_size or current().settings.queue_size
        self._shutdown = False
        self._dropped = 0
        self._attached: list[SpanProcessor] = []
        self.held = HeldTraces.from_settings(current().settings)
        self._worker: Worker[ReadableSpan] = Worker(
            "faultspan-redactor", self._export, capacity=self._max_queue
        )

    @property
    def dropped(self) -> int:
        """Spans not exported: the queue was full, or their redaction failed."""
        return self._dropped + self._redact.dropped

    @property
    def downstream(self) -> tuple[SpanProcessor, ...]:
        return tuple(self._downstream)

    def add_downstream(self, processor: SpanProcessor) -> None:
        if not self._downstream:
            self._redact.sinks += 1
        self._downstream.append(processor)

    def attach(self, exporter: SpanExporter, **kwargs: Any) -> SpanProcessor:
        """For the SDK configurator's ``export_span_processor``: ``exporter``'s processor (the wiring's
        choice), for the SDK to register after this one. It redacts on its own export thread, once per span
        however many exporters there are; this processor's queue and thread serve only the processors
        placed behind it (``downstream``: another configurator's, re-parented)."""
        self._redact.sinks += 1
        processor = self._wiring(exporter, self._redact, **kwargs)
        self._attached.append(processor)
        return processor

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        stamped = scope.current()
        if stamped:
            span.set_attributes(stamped)
        if self.held is not None and not (span_context(span)[TRACE_FLAGS] & _SAMPLED):
            self.held.on_start(span)
        for processor in self._downstream:
            processor.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Span) -> None:
        """The SDK's hook before a span becomes read-only, passed on as it would reach a processor of the
        provider (an exporter's batch processor does nothing here)."""
        for processor in self._downstream:
            processor._on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        kind, context = kind_and_context(span)
        if kind is _CLIENT:
            # An outgoing call joins the trail of the context that made it (this thread, this request).
            remember_call(span)
        if self._shutdown:
            return
        if not (context[TRACE_FLAGS] & _SAMPLED):
            if self.held is not None:
                for released in self.held.on_end(span):
                    self._release(promoted(released))
            return
        if self._downstream:
            self._enqueue(span)

    def _release(self, span: ReadableSpan) -> None:
        """A span of a failed unsampled trace, now sampled: to every processor exporting behind faultspan,
        as the SDK hands them a sampled span (the attached ones, on this thread; the re-parented ones)."""
        for processor in self._attached:
            try:
                processor.on_end(span)
            except Exception:  # noqa: PERF203 -- one broken exporter must not starve the others
                _logger.exception("faultspan: exporting processor %r failed", processor)
        if self._downstream:
            self._enqueue(span)

    def _enqueue(self, span: ReadableSpan) -> None:
        if not self._worker.put(span):
            self._dropped += 1
            warn_once("queue-full", "faultspan: span queue full (%d); dropping spans", self._max_queue)

    def _export(self, spans: list[ReadableSpan], final: bool) -> None:
        if not spans:
            return
        for exportable in self._redact.batch(spans):
            for processor in self._downstream:
                try:
                    processor.on_end(exportable)
                except Exception:  # noqa: PERF203 -- one broken exporter must not starve the others
                    _logger.exception("faultspan: downstream processor %r failed", processor)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return flush_through(self._worker, self._downstream, timeout_millis)

    def shutdown(self) -> None:
        if self._shutdown:
            return
        self._shutdown = True
        shut_down_through(self._worker, self._downstream)
