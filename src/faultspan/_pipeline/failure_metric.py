"""The ``faultspan.failures`` counter: one per recorded failure, by exception type and fingerprint.

It goes through the global MeterProvider, so whatever ``OTEL_METRICS_EXPORTER`` (or ``configure()``) set up
exports it. The instrument is created at the first failure, on the provider set by then (a proxy that
binds later when none is set yet). ``recording`` counts an exception object once, where it is first recorded,
however many spans it passes through. The fingerprint attribute has at most
``OTEL_PYTHON_FAULTSPAN_METRIC_FINGERPRINTS`` distinct values per process: the first ones seen; any later
fingerprint is counted as ``_other``.
"""

from __future__ import annotations

import threading

from opentelemetry import metrics

from faultspan._capture.config import env_name, warn_once
from faultspan._capture.exceptions import EXCEPTION_TYPE, FINGERPRINT
from faultspan._capture.runtime import current

NAME = "faultspan.failures"
UNIT = "{failure}"
OTHER = "_other"


class FailureCounter:
    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        self._meter_provider = meter_provider
        self._counter: metrics.Counter | None = None
        self._fingerprints: set[str] = set()
        self._lock = threading.Lock()

    def _instrument(self) -> metrics.Counter:
        with self._lock:
            if self._counter is None:
                meter = metrics.get_meter("faultspan", meter_provider=self._meter_provider)
                self._counter = meter.create_counter(
                    NAME, unit=UNIT, description="Failures recorded by faultspan"
                )
            return self._counter

    def _bounded(self, fingerprint: str, limit: int) -> str:
        if fingerprint in self._fingerprints:
            return fingerprint
        with self._lock:
            if len(self._fingerprints) < limit:
                self._fingerprints.add(fingerprint)
                return fingerprint
        warn_once(
            "metric-fingerprints",
            "faultspan: %s distinct fingerprints counted (%s); further ones are counted as %r",
            limit,
            env_name("metric_fingerprints"),
            OTHER,
        )
        return OTHER

    def add(self, exception_type: str, fingerprint: str, limit: int) -> None:
        counter = self._counter or self._instrument()
        counter.add(1, {EXCEPTION_TYPE: exception_type, FINGERPRINT: self._bounded(fingerprint, limit)})


_process = FailureCounter()


def count(exception_type: str, fingerprint: str) -> None:
    """One failure, through the global MeterProvider."""
    _process.add(exception_type, fingerprint, current().settings.metric_fingerprints)
