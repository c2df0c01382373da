"""``faultspan_unhandled``: the failures nobody caught, delivered once, without changing what the user sees.

Hooks ``sys.excepthook`` (the process dies), ``threading.excepthook`` (a thread dies), ``sys.unraisablehook``
(``__del__``, finalizers) and asyncio's ``BaseEventLoop.call_exception_handler`` (a task whose exception is
never retrieved, a failing callback). asyncio is hooked at the class, on the dispatcher that every loop
calls, because loops are created after instrumentation (``asyncio.run``, ``asyncio.Runner``, custom
policies and loop factories): the loop, its policy and a handler set with ``loop.set_exception_handler`` are
all left as they are, and that handler still runs. Loops that do not derive from ``BaseEventLoop`` (uvloop)
are not covered.

Each hook records the exception (``exception.escaped=true``, ``faultspan.unhandled.hook`` naming the hook)
on the span current where the hook runs when that span still records, otherwise on a new span
``unhandled <Type>`` that stays current while the previous hook runs, so a log line the previous hook
writes (asyncio logs the failure) lands on the same span and is not captured twice. An exception already
recorded on a span (the one it escaped from) is not recorded again. Then the previous hook runs, so stderr
and the exit code do not change. When the failure ends the process or a thread, faultspan flushes its
exporters, bounded by ``OTEL_PYTHON_FAULTSPAN_SHUTDOWN_TIMEOUT_MILLIS``.

Only ``Exception`` subclasses are recorded: ``KeyboardInterrupt`` (and any other ``BaseException`` that is not
an ``Exception``) is the user stopping the program, not a failure, as in Sentry; ``SystemExit`` never
reaches these hooks.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Collection, Mapping
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from faultspan._capture.exceptions import type_name
from faultspan._capture.runtime import internal_error
from faultspan._pipeline import recording
from faultspan._pipeline.lifecycle import flush_within
from faultspan_instrumentation._base import Patches

HOOK = "faultspan.unhandled.hook"


def _record(exc: BaseException, hook: str, attributes: Mapping[str, str | int]) -> trace.Span | None:
    """Record ``exc``; return the span started for it (current until :func:`_deliver` ends it), if any."""
    event = {HOOK: hook, **attributes}
    fatal = hook == "sys.excepthook"  # the process dies of it: a FATAL log record under the logs opt-in
    span = trace.get_current_span()
    if span.is_recording():
        recording.record(span, exc, escaped=True, attributes=event, fatal=fatal)
        return None
    untraced = not span.get_span_context().is_valid
    started = trace.get_tracer("faultspan").start_span(f"unhandled {type_name(exc)}", attributes=event)
    recording.record(started, exc, escaped=True, attributes=event, untraced=untraced, fatal=fatal)
    return started


def _deliver(
    exc: BaseException | None,
    hook: str,
    previous: Callable[[], object],
    *,
    fatal: bool,
    attributes: Mapping[str, str | int] | None = None,
) -> None:
    """Record ``exc`` (unless ignored or already recorded), run the previous hook, then flush if fatal
    (also when the span the exception escaped from recorded it: that span must leave before the process)."""
    failure = exc if isinstance(exc, Exception) else None
    span: trace.Span | None = None
    token: object = None
    if failure is not None and not recording.was_recorded(failure) and is_instrumentation_enabled():
        try:
            span = _record(failure, hook, attributes or {})
            if span is not None:
                token = otel_context.attach(trace.set_span_in_context(span))
        except Exception as err:
            internal_error("unhandled", f"could not record an exception from {hook}", err)
    try:
        previous()
    finally:
        if span is not None:
            if token is not None:
                otel_context.detach(token)  # type: ignore[arg-type]
            span.end()
        if failure is not None and fatal:
            flush_within()


def _excepthook(previous: Callable[..., object]) -> Callable[..., None]:
    def excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        _deliver(value, "sys.excepthook", lambda: previous(kind, value, tb), fatal=True)

    return excepthook


def _threading_excepthook(previous: Callable[..., object]) -> Callable[[threading.ExceptHookArgs], None]:
    def excepthook(args: threading.ExceptHookArgs) -> None:
        thread = args.thread
        attributes: dict[str, str | int] = {}
        if thread is not None:
            attributes["thread.name"] = thread.name
            if thread.ident is not None:
                attributes["thread.id"] = thread.ident
        _deliver(
            args.exc_value, "threading.excepthook", lambda: previous(args), fatal=True, attributes=attributes
        )

    return excepthook


def _unraisablehook(previous: Callable[..., object]) -> Callable[[Any], None]:
    def unraisablehook(unraisable: Any) -> None:
        _deliver(unraisable.exc_value, "sys.unraisablehook", lambda: previous(unraisable), fatal=False)

    return unraisablehook


def _call_exception_handler(previous: Callable[..., object]) -> Callable[..., None]:
    def call_exception_handler(loop: asyncio.BaseEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        _deliver(
            exc if isinstance(exc, BaseException) else None,
            "asyncio",
            lambda: previous(loop, context),
            fatal=False,
        )

    return call_exception_handler


class UnhandledInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        self._patches = Patches()
        self._patches.wrap(sys, "excepthook", _excepthook)
        self._patches.wrap(threading, "excepthook", _threading_excepthook)
        self._patches.wrap(sys, "unraisablehook", _unraisablehook)
        self._patches.wrap(asyncio.BaseEventLoop, "call_exception_handler", _call_exception_handler)

    def _uninstrument(self, **kwargs: Any) -> None:
        self._patches.restore()
