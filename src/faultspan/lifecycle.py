"""Bounded flushing: at exit, on SIGTERM and after a crash, faultspan never holds the process longer than
``OTEL_PYTHON_FAULTSPAN_SHUTDOWN_TIMEOUT_MILLIS``."""

from __future__ import annotations

import threading

from opentelemetry import trace

from faultspan.runtime import current


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
