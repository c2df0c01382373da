"""Recording an exception on a span: the enriched event, the trail that led to it, the span's verdict.

Every path ends here: the public API, and (through the ``faultspan_exceptions`` instrumentor) every call of
the SDK's ``Span.record_exception``, whether from the SDK's context managers, an official instrumentation or
user code. It never raises into the application unless strict mode is on.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.trace import Span, Status, StatusCode, get_current_span
from opentelemetry.util import types

from faultspan._capture import exceptions
from faultspan._capture.runtime import current, internal_error
from faultspan._otlp.sdk_private import max_attribute_length
from faultspan._pipeline import breadcrumbs, failure_metric, log_events, scope
from faultspan._pipeline.breadcrumbs import Crumb

SdkRecordException = Callable[..., None]
sdk_record_exception: SdkRecordException = SdkSpan.record_exception
_REMEMBERED = 8
# Exceptions cannot be weakly referenced, and holding them would hold their frames: the mark that an
# exception became an event lives on the exception itself, for hooks and log records that see it again later.
_RECORDED_MARK = "__faultspan_recorded__"
_REPORTS_MARK = "__faultspan_reported_by__"
_OWNER_MARK = "__faultspan_left_to_owner__"
# What the exception's first capture made: recorded again while its traceback has not grown and under the
# same length limit (the span it escapes from, its log line), it reuses that walk over frames and locals.
_CAPTURE_MARK = "__faultspan_capture__"


class _SpanMemory:
    """What a span already carries, so the same exception or crumb is never recorded on it twice."""

    __slots__ = ("crumbs", "exceptions")

    def __init__(self) -> None:
        self.exceptions: list[tuple[BaseException, str]] = []
        self.crumbs: set[Crumb] = set()


_memory: weakref.WeakKeyDictionary[Span, _SpanMemory] = weakref.WeakKeyDictionary()
_memory_lock = threading.Lock()


def _remember(span: Span) -> _SpanMemory:
    with _memory_lock:
        memory = _memory.get(span)
        if memory is None:
            memory = _memory[span] = _SpanMemory()
        return memory


def after_failure(crumb: Crumb) -> None:
    """A crumb left once the current span has failed (clean-up, a retry) joins that failure's trail too."""
    span = get_current_span()
    with _memory_lock:
        memory = _memory.get(span)
    if memory is not None and memory.exceptions and crumb not in memory.crumbs:
        memory.crumbs.add(crumb)
        span.add_event(breadcrumbs.EVENT, crumb.attributes(), timestamp=crumb.timestamp)


def record(
    span: Span,
    exc: BaseException,
    *,
    attributes: types.Attributes = None,
    timestamp: int | None = None,
    escaped: bool = False,
    operation: str | None = None,
    fingerprint: str | Sequence[str] | None = None,
    untraced: bool = False,
    fatal: bool = False,
) -> str | None:
    """Record ``exc`` on ``span`` (as ``OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN`` says); return its fingerprint,
    or None when the span is not recording.

    ``untraced``: faultspan opened ``span`` for this failure because no span was current, so the trail that
    led to it is this context's, not a trace's (see breadcrumbs). ``fatal``: the process dies of it.
    """
    try:
        return _record(
            span,
            exc,
            attributes=attributes,
            timestamp=timestamp,
            escaped=escaped,
            operation=operation,
            fingerprint=fingerprint,
            untraced=untraced,
            fatal=fatal,
        )
    except Exception as err:
        internal_error("record", "could not enrich an exception; recording it plainly", err)
        if isinstance(span, SdkSpan):
            sdk_record_exception(span, exc, attributes, timestamp, escaped)
        return None


def _record(
    span: Span,
    exc: BaseException,
    *,
    attributes: types.Attributes,
    timestamp: int | None,
    escaped: bool,
    operation: str | None,
    fingerprint: str | Sequence[str] | None,
    untraced: bool,
    fatal: bool,
) -> str | None:
    if not span.is_recording():
        return None
    memory = _remember(span)
    for seen, key in memory.exceptions:
        if seen is exc:
            return key
    captured = capture(
        exc,
        max_length=max_attribute_length(span),
        operation=operation,
        fingerprint=fingerprint,
        escaped=escaped,
    )
    signal = log_events.signal()
    reports = vars(exc).get(_REPORTS_MARK, ())
    # Under ``logs`` the trail is log records already, correlated by their trace: no breadcrumb events.
    for crumb in breadcrumbs.for_failure(span.get_span_context().trace_id, untraced) if signal.events else ():
        if crumb not in memory.crumbs and crumb not in reports:
            memory.crumbs.add(crumb)
            span.add_event(breadcrumbs.EVENT, crumb.attributes(), timestamp=crumb.timestamp)
    event: dict[str, Any] = dict(captured.attributes)
    if attributes:
        event.update(attributes)
    stamped = scope.current()
    if stamped:
        span.set_attributes(stamped)
    if signal.events:
        span.add_event(log_events.EXCEPTION_EVENT, event, timestamp=timestamp)
    if signal.logs:
        log_events.emit_exception(span, exc, event, timestamp=timestamp, fatal=fatal)
    span.set_attribute(exceptions.FINGERPRINT, captured.fingerprint)
    span.set_attribute(exceptions.FINGERPRINT_PATH, captured.path)
    status = getattr(span, "status", None)
    if status is None or status.status_code is StatusCode.UNSET:
        message = event[exceptions.EXCEPTION_MESSAGE]
        kind = event[exceptions.EXCEPTION_TYPE]
        description = f"{kind}: {message}" if message else str(kind)
        span.set_status(
            Status(StatusCode.ERROR, exceptions.head_and_tail(description, exceptions.MAX_STATUS))
        )
    memory.exceptions.append((exc, captured.fingerprint))
    del memory.exceptions[:-_REMEMBERED]
    if not was_recorded(exc):
        _count(str(captured.attributes[exceptions.EXCEPTION_TYPE]), captured.fingerprint)
    vars(exc)[_RECORDED_MARK] = True
    return captured.fingerprint


def capture(
    exc: BaseException,
    *,
    max_length: int | None,
    operation: str | None = None,
    fingerprint: str | Sequence[str] | None = None,
    escaped: bool = False,
) -> exceptions.Capture:
    """faultspan's attributes of ``exc`` (its keys are the same wherever it is recorded); recorded again
    while its traceback has not grown (the span it escapes from, its log line), the first capture's walk
    over frames and locals is reused."""
    known = vars(exc).get(_CAPTURE_MARK)
    where = (max_length, id(exc.__traceback__))  # a traceback grows at its head as the exception propagates
    if type(known) is tuple and known[0] == where and fingerprint is None:
        first: exceptions.Capture = known[1]
        if first.attributes.get(exceptions.OPERATION) == operation:
            attributes = {**first.attributes, exceptions.EXCEPTION_ESCAPED: str(escaped)}
            return exceptions.Capture(attributes, first.fingerprint, first.path)
    runtime = current()
    captured = exceptions.capture(
        exc,
        runtime.settings,
        runtime.redactor,
        operation=operation,
        fingerprint=fingerprint,
        max_length=max_length,
        escaped=escaped,
    )
    if fingerprint is None:
        vars(exc)[_CAPTURE_MARK] = (where, captured)
    return captured


def _count(exception_type: str, fingerprint: str) -> None:
    """One failure for ``faultspan.failures``: an exception counts where it is first recorded only."""
    try:
        failure_metric.count(exception_type, fingerprint)
    except Exception as err:
        internal_error("failure-metric", "could not count a failure", err)


def was_recorded(exc: BaseException) -> bool:
    """True once ``exc`` is an event on some span (usually the one it escaped from)."""
    return bool(vars(exc).get(_RECORDED_MARK))


def reported_by(exc: BaseException, crumb: Crumb) -> None:
    """``crumb`` reports ``exc`` itself (a log record carrying it): it is no breadcrumb of ``exc``."""
    reports = vars(exc).setdefault(_REPORTS_MARK, [])
    if len(reports) < _REMEMBERED:
        reports.append(crumb)


def leave_to_owner(exc: BaseException) -> None:
    """The instrumentation that owns the current server span records ``exc`` itself, later (the official
    Django and Flask ones, when the response is done): faultspan's log capture leaves it to that one."""
    vars(exc)[_OWNER_MARK] = True


def left_to_owner(exc: BaseException) -> bool:
    return bool(vars(exc).get(_OWNER_MARK))


def enriched_record_exception(
    self: SdkSpan,
    exception: BaseException,
    attributes: types.Attributes = None,
    timestamp: int | None = None,
    escaped: bool = False,
) -> None:
    """Drop-in for ``opentelemetry.sdk.trace.Span.record_exception`` (installed by the instrumentor); plain
    under the contrib ``suppress_instrumentation()``. The helper is imported here, not with the module: it
    costs ~90 ms to import, and this function is installed only where the instrumentation is loaded."""
    from opentelemetry.instrumentation.utils import is_instrumentation_enabled

    if not isinstance(exception, BaseException) or not is_instrumentation_enabled():
        sdk_record_exception(self, exception, attributes, timestamp, escaped)
        return
    record(self, exception, attributes=attributes, timestamp=timestamp, escaped=escaped)


_replaced_record_exception: Any = None


def wrap_record_exception() -> None:
    """``Span.record_exception`` replaced at class level by the enriched one; idempotent, undone by
    ``unwrap_record_exception``."""
    global _replaced_record_exception  # noqa: PLW0603 -- one class-level wrap per process
    if _replaced_record_exception is None:
        _replaced_record_exception = SdkSpan.__dict__["record_exception"]
        SdkSpan.record_exception = enriched_record_exception  # type: ignore[method-assign]


def unwrap_record_exception() -> None:
    global _replaced_record_exception  # noqa: PLW0603
    if _replaced_record_exception is not None:
        SdkSpan.record_exception = _replaced_record_exception  # type: ignore[method-assign]
        _replaced_record_exception = None
