"""Bounded flushing: at exit, on SIGTERM and after a crash, faultspan never holds the process longer than
``OTEL_PYTHON_FAULTSPAN_SHUTDOWN_TIMEOUT_MILLIS``; durable delivery writes what it could not send to disk
within that time."""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from opentelemetry import trace

from faultspan._capture.runtime import current, internal_error

_exit_deadline: float | None = None
_hooks_installed = False
_set_handler = signal.signal  # the real one, also once signal.signal is patched


def flush_within(timeout_millis: int | None = None) -> bool:
    """Flush the global provider; a stuck exporter is abandoned at the bound (its thread is a daemon)."""
    flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if flush is None:
        return True
    millis = current().settings.shutdown_timeout_millis if timeout_millis is None else timeout_millis
    outcome: list[bool] = []
    worker = threading.Thread(
        target=lambda: outcome.append(bool(flush(millis))), name="faultspan-flush", daemon=True
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

    on_sigterm.__wrapped__ = previous  # type: ignore[attr-defined]
    return on_sigterm


def _unwrapped(handler: signal._HANDLER) -> signal._HANDLER:
    return getattr(handler, "__wrapped__", handler) if callable(handler) else handler


def _patch_signal_module() -> None:
    """An application that installs its SIGTERM handler after us (most servers do, at start-up) gets the flush
    in front of it too; ``signal.getsignal``/``signal.signal`` still hand back the application's handlers."""
    original_getsignal = signal.getsignal

    def patched_signal(signalnum: int, handler: signal._HANDLER) -> signal._HANDLER:
        if signalnum == signal.SIGTERM and handler != signal.SIG_IGN:
            handler = _chain(_unwrapped(handler))
        return _unwrapped(_set_handler(signalnum, handler))

    def patched_getsignal(signalnum: int) -> signal._HANDLER:
        return _unwrapped(original_getsignal(signalnum))

    signal.signal = patched_signal
    signal.getsignal = patched_getsignal


def install_exit_hooks() -> None:
    """The bounded flush at interpreter exit and on SIGTERM (main thread only; chains the app's handler,
    installed before or after this, and keeps its exit code).

    Call after the TracerProvider exists: atexit runs handlers last-in first-out, so this flush runs before
    the SDK's own shutdown, which then finds little left and shares the same deadline.
    """
    global _hooks_installed  # noqa: PLW0603 -- once per process
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(flush_at_exit)
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
        if previous != signal.SIG_IGN:
            signal.signal(signal.SIGTERM, _chain(previous))
        _patch_signal_module()
    except (ValueError, OSError) as err:
        internal_error("sigterm-hook", "could not install the SIGTERM flush", err)
