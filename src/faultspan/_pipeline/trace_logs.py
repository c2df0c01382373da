"""The recent redacted log records of each trace, for the package writer's ``logs.json``.

Kept only once a package exporter asked for them (``watch``), bounded in traces and in records per trace;
the oldest trace goes first. The package writer reads a trace's records when it writes its packages, and
tells this buffer to forget a trace once it is written for good or ended without a failure.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from opentelemetry.sdk._logs import ReadableLogRecord

MAX_TRACES = 256
MAX_RECORDS_PER_TRACE = 256


class TraceLogs:
    def __init__(self, max_traces: int = MAX_TRACES, max_records: int = MAX_RECORDS_PER_TRACE) -> None:
        self.active = False
        self.dropped = 0
        self._max_traces = max_traces
        self._max_records = max_records
        self._lock = threading.Lock()
        self._traces: OrderedDict[int, list[ReadableLogRecord]] = OrderedDict()
        self.drain: Callable[[float], bool] | None = None
        """Set by the log processor: runs its queue through redaction (and into this buffer) now."""

    def watch(self) -> None:
        self.active = True

    def add(self, record: ReadableLogRecord) -> None:
        trace_id = record.log_record.trace_id
        if not trace_id:
            return
        with self._lock:
            records = self._traces.get(trace_id)
            if records is None:
                records = self._traces[trace_id] = []
                if len(self._traces) > self._max_traces:
                    self._traces.popitem(last=False)
            if len(records) < self._max_records:
                records.append(record)
            else:
                self.dropped += 1

    def records(self, trace_id: int, timeout: float = 0.0) -> list[ReadableLogRecord]:
        """The trace's records so far, oldest first, after waiting up to ``timeout`` seconds for the log
        processor to redact what is still queued (a trace written early is written again later)."""
        drain = self.drain
        if timeout > 0 and drain is not None:
            drain(timeout)
        with self._lock:
            return list(self._traces.get(trace_id, ()))

    def forget(self, trace_id: int) -> None:
        with self._lock:
            self._traces.pop(trace_id, None)


TRACE_LOGS = TraceLogs()
