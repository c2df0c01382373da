"""The public functions of ``import faultspan``."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace

from faultspan._capture import replay_store as store
from faultspan._capture.exceptions import type_name
from faultspan._capture.runtime import current, internal_error
from faultspan._pipeline import breadcrumbs, recording
from faultspan._pipeline.log_processor import current_handling

F = TypeVar("F", bound=Callable[..., Any])
_TRACER = "faultspan"


def _tracer() -> trace.Tracer:
    return trace.get_tracer(_TRACER)


def capture_exception(
    exc: BaseException | None = None,
    *,
    operation: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    fingerprint: str | Sequence[str] | None = None,
) -> str | None:
    """Record ``exc`` (default: the exception being handled) on the current span, or on a new span."""
    try:
        if exc is None:
            exc = sys.exc_info()[1]
            if exc is None:
                return None
        return _record(exc, operation, attributes, fingerprint)
    except Exception as err:
        internal_error("capture_exception", "capture_exception failed", err)
        return None


def _record(
    exc: BaseException,
    operation: str | None,
    attributes: Mapping[str, Any] | None,
    fingerprint: str | Sequence[str] | None,
    replay: dict[str, Any] | None = None,
) -> str | None:
    """Record on the current span, or on a new one; ``replay`` is kept for that span's package."""
    span = trace.get_current_span()
    if span.is_recording():
        return _record_on(
            span, exc, operation=operation, attributes=attributes, fingerprint=fingerprint, replay=replay
        )
    untraced = not span.get_span_context().is_valid
    with _tracer().start_as_current_span(
        operation or type_name(exc), record_exception=False, set_status_on_exception=False
    ) as new_span:
        return _record_on(
            new_span,
            exc,
            operation=operation,
            attributes=attributes,
            fingerprint=fingerprint,
            replay=replay,
            untraced=untraced,
        )


def _record_on(
    span: trace.Span,
    exc: BaseException,
    *,
    operation: str | None,
    attributes: Mapping[str, Any] | None,
    fingerprint: str | Sequence[str] | None,
    replay: dict[str, Any] | None,
    untraced: bool = False,
) -> str | None:
    key = recording.record(
        span, exc, attributes=attributes, operation=operation, fingerprint=fingerprint, untraced=untraced
    )
    if replay is not None and key is not None:
        replay["fingerprint"] = key
        ids = span.get_span_context()
        store.remember(ids.trace_id, ids.span_id, replay)
    return key


def _capture_replayable(
    exc: BaseException,
    *,
    operation: str,
    function: Callable[..., Any],
    wrapper: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """The call is encoded only now, on failure: the success path pays nothing (docs/replay.md)."""
    try:
        from faultspan._capture import replayable as replay_capture

        runtime = current()
        document = replay_capture.record_call(
            function=function,
            wrapper=wrapper,
            args=args,
            kwargs=kwargs,
            redactor=runtime.redactor,
            max_bytes=runtime.settings.max_replay_bytes,
        )
        attributes = None
        if runtime.settings.replay_in_otlp:
            attributes = {replay_capture.REPLAY_ATTRIBUTE: json.dumps(document, separators=(",", ":"))}
        _record(exc, operation, attributes, None, document)
    except Exception as err:
        internal_error("capture_replayable", "replayable capture failed", err)
        capture_exception(exc, operation=operation)


@overload
def capture(operation: F, *, replayable: bool = False) -> F: ...
@overload
def capture(operation: str | None = None, *, replayable: bool = False) -> Callable[[F], F]: ...
def capture(operation: str | Callable[..., Any] | None = None, *, replayable: bool = False) -> Any:
    """Decorator for sync and async callables: record the exception, re-raise the original.

    ``@capture`` and ``@capture("checkout")`` both work. With ``replayable=True`` a failing call's callable
    and arguments go to the span's replay package (docs/replay.md), never over OTLP unless
    ``OTEL_PYTHON_FAULTSPAN_REPLAY_IN_OTLP`` says so.
    """
    if callable(operation):
        return capture()(operation)

    def decorate(function: F) -> F:
        name = operation or getattr(function, "__qualname__", None) or repr(function)
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await function(*args, **kwargs)
                except Exception as exc:
                    if replayable:
                        _capture_replayable(
                            exc,
                            operation=name,
                            function=function,
                            wrapper=async_wrapper,
                            args=args,
                            kwargs=kwargs,
                        )
                    else:
                        capture_exception(exc, operation=name)
                    raise

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except Exception as exc:
                if replayable:
                    _capture_replayable(
                        exc, operation=name, function=function, wrapper=wrapper, args=args, kwargs=kwargs
                    )
                else:
                    capture_exception(exc, operation=name)
                raise

        return wrapper  # type: ignore[return-value]

    return decorate


class guard:
    """``with faultspan.guard("charge", order_id=7):`` (or ``async with``): a span named after the
    operation; an exception inside is recorded on it and re-raised unchanged."""

    __slots__ = ("_attributes", "_operation", "_spans")

    def __init__(self, operation: str, **attributes: Any) -> None:
        self._operation = operation
        self._attributes = {key: breadcrumbs.attribute_value(value) for key, value in attributes.items()}
        self._spans: list[tuple[trace.Span, object]] = []

    def __enter__(self) -> trace.Span:
        span = _tracer().start_span(self._operation, attributes=self._attributes)
        token = otel_context.attach(trace.set_span_in_context(span))
        self._spans.append((span, token))
        return span

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        span, token = self._spans.pop()
        try:
            if value is not None and isinstance(value, Exception):
                recording.record(span, value, escaped=True, operation=self._operation)
        finally:
            otel_context.detach(token)  # type: ignore[arg-type]
            span.end()

    async def __aenter__(self) -> trace.Span:
        return self.__enter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(kind, value, tb)


def breadcrumb(category: str, message: str, *, level: str = "info", **data: Any) -> None:
    """Add a breadcrumb to the trail; it becomes an event of the span where a failure is recorded."""
    _breadcrumb(category, message, level, data)


def _breadcrumb(category: str, message: str, level: str, data: Mapping[str, Any]) -> breadcrumbs.Crumb | None:
    try:
        crumb = breadcrumbs.add(category, message, level, data, current().settings.max_breadcrumbs)
        recording.after_failure(crumb)
        return crumb
    except Exception as err:
        internal_error("breadcrumb", "breadcrumb failed", err)
        return None


class BreadcrumbHandler(logging.Handler):
    """A ``logging.Handler`` turning records into breadcrumbs (category: the logger name).

    Records at ``capture_level`` or above that carry ``exc_info`` are also captured as exceptions, unless
    already recorded or left to the instrumentation that records it (``recording.leave_to_owner``). A
    record carrying an exception is never a breadcrumb of that exception.
    """

    def __init__(self, level: int = logging.INFO, capture_level: int | None = logging.ERROR) -> None:
        super().__init__(level)
        self.capture_level = capture_level

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".", 1)[0] == "faultspan":
            return
        state = current_handling()
        # Under the logs opt-in a record an OpenTelemetry logging handler already exported is not sent again.
        logged = state is not None and state.record is record and state.emitted
        try:
            crumb: breadcrumbs.Crumb | None = breadcrumbs.add(
                record.name,
                _message(record),
                record.levelname.lower(),
                _record_data(record),
                current().settings.max_breadcrumbs,
                logged=logged,
            )
        except Exception as err:
            internal_error("breadcrumb", "breadcrumb failed", err)
            crumb = None
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return
        if crumb is not None:
            recording.reported_by(exc, crumb)
        if (
            self.capture_level is not None
            and record.levelno >= self.capture_level
            and not recording.was_recorded(exc)  # ``log.exception`` after the span it escaped from ended
            and not recording.left_to_owner(exc)
        ):
            capture_exception(exc)


# What every record has; what else it holds came from ``extra=`` (or a filter) and is the crumb's data, as
# Sentry's logging integration keeps it. OpenTelemetry's log correlation adds its ``otel*`` fields.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _record_data(record: logging.LogRecord) -> dict[str, object]:
    data: dict[str, object] = {"logger": record.name}
    for key, value in vars(record).items():
        if key not in _RECORD_FIELDS and not key.startswith(("otel", "_")):
            data.setdefault(key, value)
    return data


def _message(record: logging.LogRecord) -> str:
    """A mapping or list logged as the message is kept as JSON text, whose keys the redactor's key rules
    read (``{"pin": 1234}``); its repr would only get the value rules."""
    if not record.args and isinstance(record.msg, (Mapping, list, tuple)):
        return breadcrumbs.structured_text(record.msg)
    try:
        return record.getMessage()
    except Exception:
        return str(record.msg)
