"""Where exceptions (and breadcrumbs) go: ``OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN`` and the log records.

The semantic conventions ask instrumentations that record exceptions as span events to support this
variable: unset, span events (as before); ``logs/dup``, span events and log records; ``logs``, log records
only. faultspan applies it to every exception it records (docs/logs.md). An exception log record is emitted
through the global LoggerProvider, correlated with the failing span (its context, not the current one),
with event name ``exception``, severity ERROR (FATAL when the process dies of it) and the attributes the
span event has. One exception object becomes at most one ``exception`` log record, whichever path saw it
first (a ``log.exception`` line through an OpenTelemetry logging handler, or the span it escaped from).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber, get_logger, get_logger_provider
from opentelemetry.sdk._logs import LoggerProvider

from faultspan._capture.config import warn_once

OPT_IN = "OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN"
EXCEPTION_EVENT = "exception"
BREADCRUMB_EVENT = "breadcrumb"
_LOGGER = "faultspan"
_LOGGED_MARK = "__faultspan_logged__"
_CRUMB_SEVERITY = {
    "debug": SeverityNumber.DEBUG,
    "info": SeverityNumber.INFO,
    "warning": SeverityNumber.WARN,
    "warn": SeverityNumber.WARN,
    "error": SeverityNumber.ERROR,
    "fatal": SeverityNumber.FATAL,
    "critical": SeverityNumber.FATAL,
}


class Signal(enum.Enum):
    SPANS = ""
    DUP = "logs/dup"
    LOGS = "logs"

    @property
    def events(self) -> bool:
        """Exceptions (and breadcrumbs) become span events."""
        return self is not Signal.LOGS

    @property
    def logs(self) -> bool:
        """Exceptions become log records."""
        return self is not Signal.SPANS


def signal() -> Signal:
    """The variable's choice, read each time (a comma list as the other ``OTEL_SEMCONV_*_OPT_IN`` take;
    ``logs/dup`` wins over ``logs``); an unknown value is reported once and means unset."""
    raw = os.environ.get(OPT_IN, "")
    values = {value.strip().lower() for value in raw.split(",") if value.strip()}
    if Signal.DUP.value in values:
        return Signal.DUP
    if Signal.LOGS.value in values:
        return Signal.LOGS
    if values:
        warn_once(
            f"opt-in:{raw}",
            "faultspan: %s=%r is not 'logs' or 'logs/dup'; exceptions stay span events",
            OPT_IN,
            raw,
        )
    return Signal.SPANS


def was_logged(exc: BaseException) -> bool:
    """True once ``exc`` is an ``exception`` log record."""
    return bool(vars(exc).get(_LOGGED_MARK))


def mark_logged(exc: BaseException) -> None:
    vars(exc)[_LOGGED_MARK] = True


def emit_exception(
    span: trace.Span,
    exc: BaseException,
    attributes: Mapping[str, Any],
    *,
    timestamp: int | None,
    fatal: bool,
) -> None:
    """The ``exception`` log record of ``exc``, once per exception object."""
    if was_logged(exc):
        return
    mark_logged(exc)
    if not isinstance(get_logger_provider(), LoggerProvider):
        warn_once(
            "opt-in-no-logs",
            "faultspan: %s asks for exception log records, but no LoggerProvider is set: they go nowhere "
            "(set OTEL_LOGS_EXPORTER under opentelemetry-instrument, or set a LoggerProvider)",
            OPT_IN,
        )
    severity = SeverityNumber.FATAL if fatal else SeverityNumber.ERROR
    get_logger(_LOGGER).emit(
        timestamp=timestamp,
        context=trace.set_span_in_context(span),
        severity_number=severity,
        severity_text=severity.name,
        attributes=dict(attributes),
        event_name=EXCEPTION_EVENT,
    )


def emit_breadcrumb(
    span: trace.Span, message: str, level: str, attributes: Mapping[str, Any], timestamp: int
) -> None:
    """A breadcrumb under ``logs``: a log record with event name ``breadcrumb``, the message as its body."""
    severity = _CRUMB_SEVERITY.get(level.lower(), SeverityNumber.INFO)
    get_logger(_LOGGER).emit(
        timestamp=timestamp,
        context=trace.set_span_in_context(span),
        severity_number=severity,
        severity_text=severity.name,
        body=message,
        attributes=dict(attributes),
        event_name=BREADCRUMB_EVENT,
    )
