"""Ends one span, then sends itself SIGTERM while that span still waits in the batch processor.

Usage: python lifecycle_app.py {instrument|configure} {app|default}
``configure`` sets faultspan up with ``faultspan.configure()`` (console exporter); ``instrument`` expects to
run under opentelemetry-instrument with ``OTEL_TRACES_EXPORTER=console``. ``app`` installs an application
SIGTERM handler (after faultspan) that prints and leaves with ``os._exit(7)``, so no exit hook runs: the span
can only reach stdout if faultspan flushed on SIGTERM. ``default`` keeps the default action (death by
SIGTERM).
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

from opentelemetry import trace

mode, handler = sys.argv[1:3]
if mode == "configure":
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    import faultspan

    faultspan.configure(service_name="lifecycle", exporters=[ConsoleSpanExporter()])


def on_term(signum: int, frame: FrameType | None) -> None:
    print("application handler", flush=True)
    os._exit(7)


if handler == "app":
    signal.signal(signal.SIGTERM, on_term)
    if signal.getsignal(signal.SIGTERM) is not on_term:
        raise SystemExit("signal.getsignal does not hand back the application's handler")
with trace.get_tracer("lifecycle").start_as_current_span("before-term"):
    pass
os.kill(os.getpid(), signal.SIGTERM)
raise SystemExit("SIGTERM did not end the process")
