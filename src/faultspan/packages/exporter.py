"""``PackageSpanExporter``: the ``faultspan`` traces exporter writing one ``.fspkg`` per failing trace.

It sits behind faultspan's processor, so it only ever sees redacted spans, on a BatchSpanProcessor worker
thread; disk I/O here never runs on the application's thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import format_span_id, format_trace_id

from faultspan.packages import format as fspkg
from faultspan.runtime import current

_logger = logging.getLogger(__name__)

WAIT_SECONDS = 5.0
MAX_TRACES = 256
MAX_SPANS_PER_TRACE = 1024
MAX_PACKAGED_REMEMBERED = 4096


@dataclass
class _Trace:
    spans: list[ReadableSpan] = field(default_factory=list)
    failed_at: float | None = None
    root_ended: bool = False


def _has_exception(span: ReadableSpan) -> bool:
    return any(event.name == "exception" for event in span.events)


def _is_local_root(span: ReadableSpan) -> bool:
    return span.parent is None or span.parent.is_remote


def _failing_span(spans: Sequence[ReadableSpan]) -> ReadableSpan:
    """The deepest span carrying an exception event: where the failure was raised, not where it passed by."""
    parents = {span.context.span_id: span.parent.span_id if span.parent else None for span in spans}

    def depth(span: ReadableSpan) -> int:
        steps, parent = 0, parents.get(span.context.span_id)
        while parent is not None and parent in parents and steps < len(parents):
            steps, parent = steps + 1, parents[parent]
        return steps

    return max((span for span in spans if _has_exception(span)), key=depth)


def describe_failure(spans: Sequence[ReadableSpan]) -> fspkg.Failure:
    """The manifest's summary: the last exception event of the deepest failing span."""
    span = _failing_span(spans)
    event = [event for event in span.events if event.name == "exception"][-1]
    attributes = event.attributes or {}
    fingerprint = attributes.get("faultspan.fingerprint") or (span.attributes or {}).get(
        "faultspan.fingerprint", ""
    )
    return fspkg.Failure(
        fingerprint=str(fingerprint),
        exception_type=str(attributes.get("exception.type", "")),
        exception_message=str(attributes.get("exception.message", "")),
        service=str(span.resource.attributes.get("service.name", "")),
        trace_id=format_trace_id(span.context.trace_id),
        span_id=format_span_id(span.context.span_id),
    )


class PackageSpanExporter(SpanExporter):
    """Buffers spans by trace; a trace with an exception event becomes a package once its local root ended,
    or ``WAIT_SECONDS`` after the failure was seen (checked at the next export), or at flush/shutdown."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = Path(os.path.abspath(current().settings.package_dir))
        self._clock = clock
        self._lock = threading.Lock()
        self._traces: OrderedDict[int, _Trace] = OrderedDict()
        self._packaged: OrderedDict[int, None] = OrderedDict()
        self._warned = False
        self._shutdown = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        with self._lock:
            for span in spans:
                self._add(span)
            due = self._take(everything=False)
        return self._write_all(due)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Writes every failing trace now, whether or not its root has ended."""
        with self._lock:
            due = self._take(everything=True)
        return self._write_all(due) is SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.force_flush()
        self._shutdown = True

    def _add(self, span: ReadableSpan) -> None:
        trace_id = span.context.trace_id
        if trace_id in self._packaged:
            return
        trace = self._traces.get(trace_id)
        if trace is None:
            trace = self._traces[trace_id] = _Trace()
            self._evict(keep=trace_id)
        kept = len(trace.spans) < MAX_SPANS_PER_TRACE
        if kept:
            trace.spans.append(span)
        if kept and trace.failed_at is None and _has_exception(span):
            trace.failed_at = self._clock()
        if _is_local_root(span):
            trace.root_ended = True

    def _evict(self, keep: int) -> None:
        """Over the bound, drop the oldest trace without a failure (other than ``keep``, just added); if every
        other trace failed, the oldest is packaged early by marking its wait as over."""
        if len(self._traces) <= MAX_TRACES:
            return
        for trace_id, trace in self._traces.items():
            if trace.failed_at is None and trace_id != keep:
                del self._traces[trace_id]
                return
        next(iter(self._traces.values())).root_ended = True

    def _take(self, *, everything: bool) -> list[list[ReadableSpan]]:
        now = self._clock()
        due: list[list[ReadableSpan]] = []
        for trace_id, trace in list(self._traces.items()):
            if trace.failed_at is None:
                if trace.root_ended:
                    del self._traces[trace_id]
                continue
            if everything or trace.root_ended or now - trace.failed_at >= WAIT_SECONDS:
                del self._traces[trace_id]
                self._packaged[trace_id] = None
                if len(self._packaged) > MAX_PACKAGED_REMEMBERED:
                    self._packaged.popitem(last=False)
                due.append(trace.spans)
        return due

    def _write_all(self, traces: list[list[ReadableSpan]]) -> SpanExportResult:
        written = [self._write_logged(spans) for spans in traces]
        return SpanExportResult.SUCCESS if all(written) else SpanExportResult.FAILURE

    def _write_logged(self, spans: Sequence[ReadableSpan]) -> bool:
        try:
            self.write(spans)
        except Exception as error:  # a full disk or a bad directory must never reach the application
            if not self._warned:
                self._warned = True
                _logger.warning("faultspan: cannot write replay packages to %s: %s", self.directory, error)
            return False
        return True

    def write(self, spans: Sequence[ReadableSpan]) -> Path:
        failure = describe_failure(spans)
        created = datetime.now(timezone.utc)
        data = fspkg.build(failure, spans, created)
        return fspkg.write_atomic(self.directory, fspkg.file_name(failure, created), data)
