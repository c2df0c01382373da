"""``PackageSpanExporter``: the ``faultspan`` traces exporter writing one ``.fspkg`` per failing trace.

It sits behind faultspan's processor, so it only ever sees redacted spans. ``export`` runs on a
BatchSpanProcessor thread and only groups spans by trace; the exporter's own writer thread builds and writes
packages, so neither the application's thread nor the other exporters wait for the disk.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import format_span_id, format_trace_id

from faultspan._capture import replay_store
from faultspan._capture.config import warn_once
from faultspan._capture.exceptions import FINGERPRINT
from faultspan._capture.runtime import current
from faultspan._pipeline.trace_logs import TRACE_LOGS
from faultspan._pipeline.worker import Worker
from faultspan.packages import archive, runtime_facts
from faultspan.packages import format as fspkg
from faultspan.packages.store import PackageStore

MAX_TRACES = 256
MAX_SPANS_PER_TRACE = 1024
MAX_PACKAGED_REMEMBERED = 4096
# How long a package waits for the log processor to redact the trace's records still queued.
LOG_DRAIN_SECONDS = 0.5


@dataclass
class _Written:
    name: str
    created: datetime
    replay: dict[str, Any] | None


@dataclass
class _Trace:
    spans: list[ReadableSpan] = field(default_factory=list)
    failed_at: float | None = None
    root_ended: bool = False
    # The packages written for this trace by fingerprint, rewritten whole when a flush wrote them early.
    written: dict[str, _Written] = field(default_factory=dict)


_Due = tuple[list[ReadableSpan], _Trace]


def _has_exception(span: ReadableSpan) -> bool:
    """An ``exception`` event, or (under ``OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN=logs``, where the exception
    is a log record) the fingerprint every failing span gets."""
    return any(event.name == "exception" for event in span.events) or FINGERPRINT in (span.attributes or {})


def _is_local_root(span: ReadableSpan) -> bool:
    return span.parent is None or span.parent.is_remote


def _lineage(span_id: int, parents: Mapping[int, int | None]) -> list[int]:
    """``span_id`` and its ancestors, nearest first, ending at the root or at the first parent that is not
    among the spans (a parent still open, or remote); a cyclic chain of ids stops where it repeats."""
    line, seen = [span_id], {span_id}
    parent = parents.get(span_id)
    while parent is not None and parent not in seen:
        line.append(parent)
        seen.add(parent)
        parent = parents.get(parent)
    return line


def _parents(spans: Sequence[ReadableSpan]) -> dict[int, int | None]:
    return {span.context.span_id: span.parent.span_id if span.parent else None for span in spans}


def _event_fingerprint(span: ReadableSpan, attributes: Mapping[str, Any]) -> str:
    return str(attributes.get(FINGERPRINT) or (span.attributes or {}).get(FINGERPRINT, ""))


def _failures(spans: Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    """Each failure of the trace (by fingerprint) and the deepest span that carries it: where it was raised,
    not where it passed by. One exception recorded on nested spans is one failure; two bugs are two."""
    parents = _parents(spans)

    def depth(span: ReadableSpan) -> int:
        return sum(1 for span_id in _lineage(span.context.span_id, parents)[1:] if span_id in parents)

    deepest: dict[str, tuple[int, ReadableSpan]] = {}
    for span in spans:
        keys = [
            _event_fingerprint(span, event.attributes or {})
            for event in span.events
            if event.name == "exception"
        ]
        if not keys and FINGERPRINT in (span.attributes or {}):  # its exception is a log record (opt-in)
            keys = [_event_fingerprint(span, {})]
        for key in keys:
            if key not in deepest or depth(span) > deepest[key][0]:
                deepest[key] = (depth(span), span)
    return {key: span for key, (_, span) in deepest.items()}


def _replay_for(failing: ReadableSpan, spans: Sequence[ReadableSpan]) -> dict[str, Any] | None:
    """The replay document of the failing span or of its nearest ancestor: a replayable call whose
    exception was first recorded on a child span (a query, a ``guard`` block) stored it on its own span."""
    for span_id in _lineage(failing.context.span_id, _parents(spans)):
        replay = replay_store.take(failing.context.trace_id, span_id)
        if replay is not None:
            return replay
    return None


def _exception_records(
    span: ReadableSpan, fingerprint: str | None, logs: Sequence[ReadableLogRecord]
) -> list[Mapping[str, Any]]:
    """The attributes of the trace's ``exception`` log records of ``fingerprint``, the span's own first."""
    records = [record.log_record for record in logs if record.log_record.event_name == "exception"]
    if fingerprint is not None:
        records = [record for record in records if (record.attributes or {}).get(FINGERPRINT) == fingerprint]
    own = [record for record in records if record.span_id == span.context.span_id]
    return [record.attributes or {} for record in own or records]


def describe_failure(
    span: ReadableSpan, fingerprint: str | None = None, logs: Sequence[ReadableLogRecord] = ()
) -> fspkg.Failure:
    """The manifest's summary: the failing span's last exception event (of ``fingerprint``, when given),
    or its exception log record when the exception is one (docs/logs.md)."""
    events = [event for event in span.events if event.name == "exception"]
    if fingerprint is not None:
        events = [
            event for event in events if _event_fingerprint(span, event.attributes or {}) == fingerprint
        ]
    found = [event.attributes or {} for event in events] or _exception_records(span, fingerprint, logs)
    attributes = found[-1] if found else {}
    return fspkg.Failure(
        fingerprint=_event_fingerprint(span, attributes),
        exception_type=str(attributes.get("exception.type", "")),
        exception_message=str(attributes.get("exception.message", "")),
        service=str(span.resource.attributes.get("service.name", "")),
        trace_id=format_trace_id(span.context.trace_id),
        span_id=format_span_id(span.context.span_id),
    )


def _shedding_order(spans: Sequence[ReadableSpan], failing: ReadableSpan) -> tuple[list[ReadableSpan], int]:
    """Spans in the order they are kept under the size cap, and how many must be kept: the failing span and
    its ancestors first, then the others nearest first (hops in the span tree; unconnected spans last)."""
    by_id = {span.context.span_id: span for span in spans}
    neighbours: dict[int, list[int]] = {span_id: [] for span_id in by_id}
    for span in spans:
        if span.parent is not None and span.parent.span_id in by_id:
            neighbours[span.context.span_id].append(span.parent.span_id)
            neighbours[span.parent.span_id].append(span.context.span_id)
    lineage = _lineage(failing.context.span_id, _parents(spans))
    kept = [by_id[span_id] for span_id in lineage if span_id in by_id]
    seen = {span.context.span_id for span in kept}
    distance = {failing.context.span_id: 0}
    frontier = deque([failing.context.span_id])
    while frontier:
        span_id = frontier.popleft()
        for neighbour in neighbours[span_id]:
            if neighbour not in distance:
                distance[neighbour] = distance[span_id] + 1
                frontier.append(neighbour)
    rest = [span for span in spans if span.context.span_id not in seen]
    rest.sort(key=lambda span: distance.get(span.context.span_id, math.inf))
    return [*kept, *rest], len(kept)


class PackageSpanExporter(SpanExporter):
    """Buffers spans by trace; a trace with an exception event becomes a package once its local root ended,
    or ``package_wait_seconds`` after the failure was seen (the writer's own timer), or at flush/shutdown."""

    def __init__(self) -> None:
        settings = current().settings
        self.directory = Path(os.path.abspath(settings.package_dir))
        self._settings = settings
        self.store = PackageStore(self.directory, settings)
        self._runtime: bytes | None = None
        TRACE_LOGS.watch()  # from now on the log processor keeps each trace's records for its package
        self.dropped = 0
        self.truncated = 0
        self._closing = False
        self._reset()
        capacity = settings.package_queue_size or sys.maxsize
        # Woken by every trace handed over; otherwise sleeps until the next failure's wait or rewrite is due.
        # Its first round runs at once: stale temporaries go at start, not at the first failure.
        # One item per export() call (all the traces it completed), so a burst that completes many traces at
        # once (a flush at SIGTERM) is one item, not a queue overflow.
        self.writer: Worker[list[_Due]] = Worker(
            "faultspan-packages",
            self._write_round,
            capacity=capacity,
            batch=capacity,
            wake_at=1,
            interval=self._until_due,
            forked=self._reset,
            awake=True,
        )

    def _reset(self) -> None:
        """Fresh locks and buffers, also in a forked child: none of the parent's spans."""
        self._lock = threading.Lock()  # the buffered traces, shared by export() and the writer's timer
        self._write_lock = threading.Lock()  # the store, shared by the writer and direct write() calls
        self._traces: OrderedDict[int, _Trace] = OrderedDict()
        self._packaged: OrderedDict[int, None] = OrderedDict()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.writer.stopping:
            return SpanExportResult.FAILURE
        with self._lock:
            waiting = [self._add(span) for span in spans]
            due = self._take(everything=False)
        if due and not self.writer.put(due):
            self.dropped += len(due)
            warn_once(
                f"package-queue-full:{self.directory}",
                "faultspan: package queue full (%d); dropping failures",
                self._settings.package_queue_size,
            )
        if any(waiting):
            self.writer.wake()  # to re-arm its timer for the new failure
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Writes every failing trace now, root ended or not, and saves the occurrences counted so far. A
        trace still open stays buffered: its later spans (the root, later failures) rewrite its package."""
        return self.writer.flush(max(timeout_millis, 0) / 1000)

    def shutdown(self) -> None:
        self._closing = True  # the last round writes every trace as it is: nothing more will come
        self.writer.shutdown(self._settings.shutdown_timeout_millis / 1000)

    def _add(self, span: ReadableSpan) -> bool:
        """Buffers ``span``; True when its trace has just become a failing one waiting for its root."""
        trace_id = span.context.trace_id
        if trace_id in self._packaged:
            return False
        trace = self._traces.get(trace_id)
        if trace is None:
            trace = self._traces[trace_id] = _Trace()
            self._evict(keep=trace_id)
        kept = len(trace.spans) < MAX_SPANS_PER_TRACE
        if kept:
            trace.spans.append(span)
        if _is_local_root(span):
            trace.root_ended = True
        if kept and trace.failed_at is None and _has_exception(span):
            trace.failed_at = time.monotonic()
            return not trace.root_ended
        return False

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

    def _take(self, *, everything: bool, keep_open: bool = False) -> list[_Due]:
        """The failing traces due; with ``keep_open`` (a flush before the end), those whose root has not
        ended are written as they are now and stay buffered, their wait starting again."""
        now = time.monotonic()
        wait = self._settings.package_wait_seconds
        due: list[_Due] = []
        for trace_id, trace in list(self._traces.items()):
            if trace.failed_at is None:
                if trace.root_ended:
                    del self._traces[trace_id]
                    TRACE_LOGS.forget(trace_id)
                continue
            if keep_open and everything and not trace.root_ended:
                trace.failed_at = now
                due.append((list(trace.spans), trace))
            elif everything or trace.root_ended or now - trace.failed_at >= wait:
                del self._traces[trace_id]
                self._packaged[trace_id] = None
                if len(self._packaged) > MAX_PACKAGED_REMEMBERED:
                    self._packaged.popitem(last=False)
                due.append((trace.spans, trace))
        return due

    def _until_due(self) -> float | None:
        """Seconds until the next failure's wait is over or a rewrite is due; None when nothing is."""
        wait = self._settings.package_wait_seconds
        with self._lock:
            waits = [trace.failed_at + wait for trace in self._traces.values() if trace.failed_at is not None]
        rewrite = self.store.next_rewrite()
        due = min([*waits, *([rewrite] if rewrite is not None else [])], default=None)
        return None if due is None else due - time.monotonic()

    def _write_round(self, handed_over: list[list[_Due]], final: bool) -> None:
        """The writer's round: what was handed over plus the traces now due (every failing one in a
        flush or at shutdown), then the store's upkeep."""
        traces = [due for batch in handed_over for due in batch]
        with self._lock:
            traces.extend(self._take(everything=final, keep_open=not self._closing))
        for spans, trace in traces:
            self._guarded(self.write, spans, trace)
            trace_id = spans[0].context.trace_id if spans else 0
            with self._lock:
                if trace_id not in self._traces:  # written for good: its log records are not needed again
                    TRACE_LOGS.forget(trace_id)
        self._guarded(self._maintain, final)

    def _maintain(self, everything: bool) -> None:
        with self._write_lock:
            self.store.open()
            self.store.rewrite(everything=everything)
            self.store.sync()

    def _guarded(self, work: Callable[..., object], *args: object) -> None:
        try:
            work(*args)
        except Exception as error:  # a full disk or a bad directory must never reach the application
            warn_once(
                f"package-dir:{self.directory}",
                "faultspan: cannot write replay packages to %s: %s",
                self.directory,
                error,
            )

    def write(self, spans: Sequence[ReadableSpan], trace: _Trace | None = None) -> list[Path]:
        """Packages each failure of a trace now, on the calling thread: a package per fingerprint, or an
        occurrence counted in the fingerprint's newest package when its limit is reached. A failure this
        trace already wrote (an early flush) has its package rewritten with the spans seen since."""
        written = {} if trace is None else trace.written
        paths: list[Path] = []
        with self._write_lock:
            self.store.open()
        logs = TRACE_LOGS.records(spans[0].context.trace_id, LOG_DRAIN_SECONDS) if spans else []
        for fingerprint, failing in _failures(spans).items():
            failure = describe_failure(failing, fingerprint, logs)
            earlier = written.get(fingerprint)
            with self._write_lock, self.store.shared():
                if earlier is not None:
                    build = functools.partial(
                        self._build, failure, failing, spans, earlier.created, earlier.replay, logs=logs
                    )
                    paths.append(self.store.replace(earlier.name, build))
                    continue
                replay = _replay_for(failing, spans)
                created = datetime.now(timezone.utc)
                if not self.store.admit(failure.fingerprint, created.timestamp()):
                    continue
                data = self._build(failure, failing, spans, created, replay, logs=logs)
                path = self.store.add(
                    fspkg.file_name(failure, created), data, failure.fingerprint, created.timestamp()
                )
                written[fingerprint] = _Written(path.name, created, replay)
                paths.append(path)
        return paths

    def _runtime_facts(self) -> bytes:
        if self._runtime is None:
            settings = self._settings
            self._runtime = fspkg.dump(
                runtime_facts.runtime_facts(
                    argv=settings.package_include_argv,
                    environment=settings.package_include_env,
                    redactor=current().redactor,
                )
            )
        return self._runtime

    def _build(
        self,
        failure: fspkg.Failure,
        failing: ReadableSpan,
        spans: Sequence[ReadableSpan],
        created: datetime,
        replay: dict[str, Any] | None,
        *,
        logs: Sequence[ReadableLogRecord] = (),
        **counts: Any,
    ) -> bytes:
        """The package, under the size caps; ``counts`` carry the occurrences a rewritten package had."""

        def build(kept: Sequence[ReadableSpan], **fields: Any) -> bytes:
            return fspkg.build(
                failure,
                kept,
                created,
                replay=replay,
                logs=logs,
                runtime=self._runtime_facts(),
                signing_key=self._settings.signing_key,
                **counts,
                **fields,
            )

        cap = self._settings.package_max_bytes

        def fits(data: bytes) -> bool:
            """Within the configured cap, and within what the reader accepts whatever the cap."""
            return (not cap or len(data) <= cap) and archive.expands_within_limit(data)

        data = build(spans)
        if fits(data):
            return data
        order, required = _shedding_order(spans, failing)

        def shed(count: int) -> bytes:
            """The package of the first ``count`` spans to keep, in their original order."""
            kept = {id(span) for span in order[:count]}
            return build(
                [span for span in spans if id(span) in kept], truncated=True, dropped_spans=len(order) - count
            )

        low, high = required, len(order) - 1  # the largest count of kept spans that fits is in [low, high]
        best = shed(low)
        while low < high:
            middle = (low + high + 1) // 2
            candidate = shed(middle)
            if fits(candidate):
                low, best = middle, candidate
            else:
                high = middle - 1
        self.truncated += 1
        return best
