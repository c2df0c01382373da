"""One trace, two bugs; in between, another thread dies of an unhandled exception (which flushes).

python two_failures.py [--crash-between]
"""

from __future__ import annotations

import sys
import threading

from opentelemetry import trace

import faultspan

tracer = trace.get_tracer("two-failures")


def crash() -> None:
    raise RuntimeError("worker thread died")


def step(name: str, error: Exception) -> None:
    with tracer.start_as_current_span(name):
        try:
            raise error
        except Exception:
            faultspan.capture_exception()


def main(crash_between: bool) -> None:
    with tracer.start_as_current_span("job"):
        step("step 1", ValueError("step 1 failed"))
        if crash_between:
            thread = threading.Thread(target=crash)
            thread.start()
            thread.join()
        step("step 2", KeyError("order"))


if __name__ == "__main__":
    main("--crash-between" in sys.argv)
