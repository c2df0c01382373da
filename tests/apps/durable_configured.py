"""An app using faultspan.configure() that installed its own SIGTERM handler first, then SIGTERMs itself.

Usage: python durable_configured.py COUNT  (ends COUNT spans ``configured <i>``; the handler exits 5)
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def on_term(signum: int, frame: FrameType | None) -> None:
    print("application handler", flush=True)
    sys.exit(5)


signal.signal(signal.SIGTERM, on_term)

from opentelemetry import trace  # noqa: E402 -- the handler must exist before faultspan is configured

import faultspan  # noqa: E402

faultspan.configure(service_name="durable-configured")
tracer = trace.get_tracer("durable-configured")
for index in range(int(sys.argv[1])):
    with tracer.start_as_current_span(f"configured {index}"):
        pass
os.kill(os.getpid(), signal.SIGTERM)
