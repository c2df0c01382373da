"""The one log record processor that sees raw data: the span processor's guarantee for the logs signal.

On the thread that emits a record only what needs the live exception happens: a record that carries one
(the SDK's ``LoggingHandler`` and the contrib logging handler write ``exception.*`` for ``log.exception``)
gets faultspan's frames, chain and fingerprint of that exception, as its span event would. The record is
then queued; the worker redacts body (text, or structured maps and lists), attributes and ``exception.*``
once, fingerprints an exception whose live object was gone from its text, and hands the redacted record to
every downstream processor (one per exporter in ``OTEL_LOGS_EXPORTER``), so no logs exporter ever receives
unredacted data. A record that cannot be redacted is dropped (fail closed); the queue is bounded.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from opentelemetry.context import Context
from opentelemetry.sdk._logs import (
    LogRecordProcessor,
    ReadableLogRecord,
    ReadWriteLogRecord,
)
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from faultspan._capture import exceptions
from faultspan._capture.config import warn_once
from faultspan._capture.exceptions import (
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
    FINGERPRINT,
    type_name,
)
from faultspan._capture.redaction import Redactor, TaintScope
from faultspan._capture.runtime import current
from faultspan._otlp.sdk_private import bounded, plain_attributes
from faultspan._pipeline import log_events, recording
from faultspan._pipeline.processor import MASKED_COUNT, MASKED_KEYS, scrub_recorded, without_capture
from faultspan._pipeline.trace_logs import TRACE_LOGS
from faultspan._pipeline.worker import Worker, flush_through, shut_down_through

_logger = logging.getLogger("faultspan")
_SCALARS = (bool, int, float, bytes)
# Of the attributes ``exceptions.capture`` makes, these describe a recording, not the exception itself.
_RECORDING_ONLY = frozenset({exceptions.EXCEPTION_ESCAPED, exceptions.OPERATION})


class Handling:
    """The stdlib record whose handlers are running on this thread (set by faultspan's logging
    instrumentor), and whether an OpenTelemetry handler turned it into a log record meanwhile."""

    __slots__ = ("emitted", "record")

    def __init__(self, record: logging.LogRecord) -> None:
        self.record = record
        self.emitted = False


_handling: ContextVar[Handling | None] = ContextVar("faultspan_log_handling", default=None)


@contextmanager
def handling(record: logging.LogRecord) -> Iterator[Handling]:
    state = Handling(record)
    token = _handling.set(state)
    try:
        yield state
    finally:
        _handling.reset(token)


def current_handling() -> Handling | None:
    return _handling.get()


def _live_exception(record: ReadWriteLogRecord, attributes: Mapping[str, Any]) -> BaseException | None:
    """The exception object behind a record's ``exception.*`` attributes, where it can still be found: the
    record itself (``Logger.emit(exception=...)``), the stdlib record being handled, or the exception being
    handled on this thread when its type is the one the attributes name."""
    exc = getattr(record.log_record, "exception", None)
    if isinstance(exc, BaseException):
        return exc
    state = _handling.get()
    if state is not None and state.record.exc_info:
        return state.record.exc_info[1]
    handled = sys.exc_info()[1]
    if handled is not None and attributes.get(EXCEPTION_TYPE) in (type(handled).__name__, type_name(handled)):
        return handled
    return None


def _structured_message(record: ReadWriteLogRecord) -> None:
    """A mapping or list logged as the message (``log.info({"pin": 1234})``) stays structured in the body
    (as the SDK's own handler keeps it), so the key rules see its keys; its text would only get the value
    rules."""
    state = _handling.get()
    if state is None:
        return
    message = state.record.msg
    structured = not state.record.args and isinstance(message, (Mapping, list, tuple))
    if structured and isinstance(record.log_record.body, str):
        record.log_record.body = message


def enrich(record: ReadWriteLogRecord) -> None:
    """The work that needs the emitting thread: faultspan's view of a live exception."""
    state = _handling.get()
    if state is not None:
        state.emitted = True
    _structured_message(record)
    log = record.log_record
    attributes = log.attributes
    if attributes is None:
        return
    plain = plain_attributes(attributes)
    carries = EXCEPTION_TYPE in plain or EXCEPTION_STACKTRACE in plain
    if FINGERPRINT in plain or (not carries and getattr(log, "exception", None) is None):
        return  # faultspan's own exception records are complete already
    exc = _live_exception(record, plain)
    if exc is None:
        return
    captured = recording.capture(exc, max_length=record.limits.max_log_record_attribute_length)
    for key, value in captured.attributes.items():
        if key not in _RECORDING_ONLY:
            attributes[key] = value  # type: ignore[index]
    if log_events.signal().logs and not log.event_name and not log_events.was_logged(exc):
        # Under the opt-in, this line is the exception's log record: the span it escapes from adds none.
        log.event_name = log_events.EXCEPTION_EVENT
        log_events.mark_logged(exc)


def redact_log_record(record: ReadWriteLogRecord, redactor: Redactor) -> ReadWriteLogRecord:
    """The exportable form of ``record``: the same object when nothing needs changing, else a copy.

    As for a span, a secret masked anywhere in the record (a local in ``faultspan.frames``) is masked
    everywhere in it: the body and the exception text scrubbed before it are scrubbed once more."""
    scope = TaintScope()
    redacted = _redact_record(record, redactor, scope)
    return _redact_record(redacted, redactor, scope) if scope.secrets else redacted


def _redact_record(record: ReadWriteLogRecord, redactor: Redactor, masked: TaintScope) -> ReadWriteLogRecord:
    log = record.log_record
    body = log.body
    plain = body is None or type(body) in _SCALARS
    new_body = body if plain else redactor.scrub_value("", body, "body", masked)
    original = plain_attributes(log.attributes)
    attributes = scrub_recorded(redactor, original, "", masked)
    scrubbed = original if attributes is None else attributes
    extra: dict[str, Any] = {}
    if (EXCEPTION_TYPE in scrubbed or EXCEPTION_STACKTRACE in scrubbed) and FINGERPRINT not in scrubbed:
        scrubbed = attributes = without_capture(scrubbed)  # the span processor's text path
    if masked:
        paths = list(dict.fromkeys(masked))
        extra[MASKED_COUNT] = len(paths)
        extra[MASKED_KEYS] = ",".join(paths)
    if new_body is body and attributes is None and not extra:
        return record
    redacted = _shallow(log)
    redacted.body = new_body  # type: ignore[assignment]
    redacted.attributes = bounded({**scrubbed, **extra}, record.dropped_attributes)
    redacted.exception = None  # its frames hold every local of the failure: the attributes are enough
    exportable = _shallow(record)  # no __post_init__: the attributes are not validated again
    exportable.log_record = redacted
    return exportable


_T = TypeVar("_T")


def _shallow(instance: _T) -> _T:
    """``copy.copy`` for the SDK's plain record classes without its generic protocol (a fifth of its cost)."""
    copied: _T = object.__new__(type(instance))
    copied.__dict__.update(instance.__dict__)
    return copied


class _Attached(LogRecordProcessor):
    """What the configurator registers next to faultspan's processor for each exporter: the exporter's own
    processor sits behind faultspan's, so this one has nothing to do."""

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        return

    def shutdown(self) -> None:
        return

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


LogWiring = Callable[..., LogRecordProcessor]


def batch_wiring(exporter: LogRecordExporter, **kwargs: Any) -> LogRecordProcessor:
    return BatchLogRecordProcessor(exporter, **kwargs)


class FaultspanLogRecordProcessor(LogRecordProcessor):
    def __init__(
        self,
        downstream: Sequence[LogRecordProcessor] = (),
        max_queue_size: int | None = None,
        *,
        wiring: LogWiring = batch_wiring,
    ) -> None:
        self._downstream: list[LogRecordProcessor] = list(downstream)
        self._wiring = wiring
        self._max_queue = max_queue_size or current().settings.queue_size
        self._shutdown = False
        self.dropped = 0
        self._worker: Worker[ReadWriteLogRecord] = Worker(
            "faultspan-log-redactor", self._export, capacity=self._max_queue
        )
        TRACE_LOGS.drain = self._worker.flush

    @property
    def downstream(self) -> tuple[LogRecordProcessor, ...]:
        return tuple(self._downstream)

    def add_downstream(self, processor: LogRecordProcessor) -> None:
        self._downstream.append(processor)

    def attach(self, exporter: LogRecordExporter, **kwargs: Any) -> LogRecordProcessor:
        """For the SDK configurator's ``export_log_record_processor``: ``exporter``'s processor goes behind
        the redactor; the configurator registers the no-op this returns next to us."""
        self._downstream.append(self._wiring(exporter, **kwargs))
        return _ATTACHED

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        if self._shutdown or not (self._downstream or TRACE_LOGS.active):
            return  # no logs exporter (OTEL_LOGS_EXPORTER=none) and no package writer: it goes nowhere
        try:
            enrich(log_record)
        except Exception as err:
            # The record still goes out (redacted); only faultspan's additions are missing.
            warn_once("log-enrich", "faultspan: could not enrich a log record: %r", err)
        if not self._worker.put(log_record):
            self.dropped += 1
            warn_once("log-queue-full", "faultspan: log record queue full (%d); dropping", self._max_queue)

    def enabled(
        self,
        *,
        context: Context | None = None,
        instrumentation_scope: InstrumentationScope | None = None,
        severity_number: Any = None,
        event_name: str | None = None,
    ) -> bool:
        return not self._shutdown

    def _export(self, records: list[ReadWriteLogRecord], final: bool) -> None:
        if not records:
            return
        redactor = current().redactor
        keep = TRACE_LOGS.active
        for record in records:
            try:
                exportable = redact_log_record(record, redactor)
            except Exception:
                # Fail closed: a record we could not redact is not exported.
                self.dropped += 1
                _logger.exception("faultspan: could not redact a log record; dropped")
                continue
            for processor in self._downstream:
                try:
                    processor.on_emit(exportable)
                except Exception:  # noqa: PERF203 -- one broken exporter must not starve the others
                    _logger.exception("faultspan: downstream log processor %r failed", processor)
            if keep and exportable.log_record.trace_id:
                TRACE_LOGS.add(readable(exportable))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return flush_through(self._worker, self._downstream, timeout_millis)

    def shutdown(self) -> None:
        if self._shutdown:
            return
        self._shutdown = True
        shut_down_through(self._worker, self._downstream)


_ATTACHED = _Attached()


def readable(record: ReadWriteLogRecord) -> ReadableLogRecord:
    log = _shallow(record.log_record)
    log.context = Context()  # the package keeps the record, not the request's whole context
    return ReadableLogRecord(
        log_record=log,
        resource=record.resource,  # type: ignore[arg-type]
        instrumentation_scope=record.instrumentation_scope,
        limits=record.limits,
    )
