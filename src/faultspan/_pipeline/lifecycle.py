"""Bounded flushing: at exit, on SIGTERM and after a crash, faultspan never holds the process longer than
``OTEL_PYTHON_FAULTSPAN_SHUTDOWN_TIMEOUT_MILLIS``; durable delivery writes what it could not send to disk
within that time."""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
from collections.abc import Callable, Collection
from types import FrameType
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry._logs import get_logger_provider
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from faultspan._capture.runtime import current, internal_error

_exit_deadline: float | None = None
# The real ones, also while signal.signal and signal.getsignal are wrapped.
_set_handler = signal.signal
_get_handler = signal.getsignal


def _flush_providers(millis: int) -> bool:
    """The global tracer provider, then the logger provider (exception log records under the logs opt-in),
    then the meter provider (the failures counted since the last export), with what is left of the time."""
    deadline = time.monotonic() + millis / 1000
    ok = True
    for provider in (trace.get_tracer_provider(), get_logger_provider(), metrics.get_meter_provider()):
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            ok = bool(flush(int(max(deadline - time.monotonic(), 0) * 1000))) and ok
    return ok


def flush_within(timeout_millis: int | None = None) -> bool:
    """Flush the global providers; a stuck exporter is abandoned at the bound (its thread is a daemon)."""
    millis = current().settings.shutdown_timeout_millis if timeout_millis is None else timeout_millis
    outcome: list[bool] = []
    worker = threading.Thread(
        target=lambda: outcome.append(_flush_providers(millis)), name="faultspan-flush", daemon=True
    )
    worker.start()
    worker.join(millis / 1000)
    return bool(outcome and outcome[0])


def exit_deadline() -> float | None:
    """When the process is exiting: the ``time.monotonic()`` by which faultspan must be done."""
    return _exit_deadline


def flush_at_exit() -> bool:
    """The exit flush, once per process: later shutdown steps only have what is left of the same budget."""
    global _exit_deadline  # noqa: PLW0603 -- set once, when the process starts exiting
    if _exit_deadline is not None:
        return True
    millis = current().settings.shutdown_timeout_millis
    _exit_deadline = time.monotonic() + millis / 1000
    return flush_within(millis)


Handler = Callable[[int, FrameType | None], Any]
_PREVIOUS = "__faultspan_previous__"  # on faultspan's SIGTERM handler: the handler it chains to


def _chain(previous: signal._HANDLER) -> Handler:
    """A SIGTERM handler that flushes within the bound, then does what ``previous`` would have done."""

    def on_sigterm(signum: int, frame: FrameType | None) -> Any:
        try:
            flush_at_exit()
        except Exception as err:
            internal_error("sigterm-flush", "flush on SIGTERM failed", err)
        if callable(previous):
            return previous(signum, frame)
        # The default action, as if we had never been here: killed by SIGTERM (status 143 in a shell).
        _set_handler(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return None

    setattr(on_sigterm, _PREVIOUS, previous)
    return on_sigterm


def _unwrapped(handler: signal._HANDLER) -> signal._HANDLER:
    """The application's handler behind faultspan's (an application's own decorated handler stays whole)."""
    return getattr(handler, _PREVIOUS, handler) if callable(handler) else handler


class LifecycleInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """``faultspan_lifecycle``: the bounded flush at interpreter exit and on SIGTERM, reversible and disabled
    like any instrumentor (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=faultspan_lifecycle``).

    SIGTERM (main thread only): faultspan's handler flushes, then runs the application's handler, installed
    before or after this, and keeps its exit code; with none, the process dies by the signal as it would
    have. ``signal.signal``/``signal.getsignal`` are wrapped so that a handler the application installs
    later (most servers do, at start-up) gets the flush in front of it too, and so that the application
    still reads back its own handlers. ``uninstrument()`` puts both functions back, leaves the application's
    current handler (or the one from before) installed without faultspan's in front, and drops the exit
    flush.

    Instrument after the TracerProvider exists (the auto-instrumentation runs instrumentors after the
    configurator; ``configure()`` instruments last): atexit runs handlers last-in first-out, so this flush
    runs before the SDK's own shutdown, which then finds little left and shares the same deadline.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        atexit.register(flush_at_exit)
        self._replaced: tuple[Any, Any] | None = None
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            previous = _get_handler(signal.SIGTERM)
            if previous != signal.SIG_IGN:
                _set_handler(signal.SIGTERM, _chain(previous))
        except (ValueError, OSError) as err:
            internal_error("sigterm-hook", "could not install the SIGTERM flush", err)
            return
        self._replaced = (vars(signal)["signal"], vars(signal)["getsignal"])
        replaced_signal, replaced_getsignal = self._replaced

        def patched_signal(signalnum: int, handler: signal._HANDLER) -> signal._HANDLER:
            if signalnum == signal.SIGTERM and handler != signal.SIG_IGN:
                handler = _chain(_unwrapped(handler))
            return _unwrapped(replaced_signal(signalnum, handler))

        def patched_getsignal(signalnum: int) -> signal._HANDLER:
            return _unwrapped(replaced_getsignal(signalnum))

        signal.signal = patched_signal
        signal.getsignal = patched_getsignal

    def _uninstrument(self, **kwargs: Any) -> None:
        atexit.unregister(flush_at_exit)
        if self._replaced is None:
            return
        signal.signal, signal.getsignal = self._replaced
        self._replaced = None
        current = _get_handler(signal.SIGTERM)
        if callable(current) and hasattr(current, _PREVIOUS):
            restored = _unwrapped(current)
            try:  # a handler not installed from Python (None) cannot be put back: the default action can
                _set_handler(signal.SIGTERM, signal.SIG_DFL if restored is None else restored)
            except (ValueError, OSError) as err:
                internal_error("sigterm-unhook", "could not remove the SIGTERM flush", err)
