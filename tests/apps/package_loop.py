"""Forks writers of replay packages for a crash test to kill.

    python package_loop.py

Configured by the environment (``OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR`` and the limits). Loads everything once
(the runtime facts included), then forks one writer per ``run`` line read from stdin, so that each run
starts in milliseconds. A writer prints ``<pid>`` once its first package is on disk and goes on writing
through the real ``faultspan`` exporter until it is killed: each round ends a trace whose nested span
failed, with a large attribute so that a write takes a while. Each exception type fails twice in a row (with
``OTEL_PYTHON_FAULTSPAN_PACKAGE_MAX_PER_FINGERPRINT=1`` the second is counted in the first's package) and
every third round flushes, so new packages and rewrites of packages for counted occurrences are both under
way when the kill comes; every writer starts again at the first type, so it also counts occurrences in the
packages of the writers killed before it.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from faultspan._capture.runtime import current
from faultspan._pipeline import recording
from faultspan._pipeline.processor import FaultspanSpanProcessor
from faultspan.packages import runtime_facts
from faultspan.packages.exporter import PackageSpanExporter

FAILURES: dict[int, type[Exception]] = {}
PAYLOAD = os.urandom(16 * 1024).hex()


def write_until_killed() -> None:
    exporter = PackageSpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(FaultspanSpanProcessor([SimpleSpanProcessor(exporter)]))
    tracer = provider.get_tracer("package-loop")
    for round_number in itertools.count():
        with tracer.start_as_current_span("POST /checkout") as root:
            root.set_attribute("payload", PAYLOAD)
            with tracer.start_as_current_span("charge") as span:
                kind = round_number // 2
                failure = FAILURES.setdefault(kind, type(f"Declined{kind}", (Exception,), {}))
                recording.record(span, failure("card declined"))
        if round_number % 3 == 0:
            exporter.force_flush()  # the SimpleSpanProcessor does not flush its exporter
        if round_number == 0:
            print(os.getpid(), flush=True)


def main() -> None:
    runtime_facts.runtime_facts(
        argv=False, environment=False, redactor=current().redactor
    )  # cached for the children
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # killed writers are reaped by the kernel
    for line in sys.stdin:
        if line.strip() == "run" and os.fork() == 0:
            write_until_killed()


if __name__ == "__main__":
    main()
