"""pytest plugin loaded into the official OpenTelemetry test suites by ``run_official_suites.py``.

``FAULTSPAN_COMPAT_MODE`` chooses what faultspan does in the suite's process:

* ``plain``: nothing (the baseline);
* ``b1``: every ``faultspan_*`` instrumentor of the ``opentelemetry_instrumentor`` entry-point group is
  instrumented at session start, as ``opentelemetry-instrument`` would;
* ``b2``: as b1, and every span processor a test registers on a ``TracerProvider`` sits behind faultspan's
  processor (it receives faultspan's redacted copies). ``on_end`` returns once faultspan's worker has
  handed the span on, as the tests read their exporters right after a span ends.

``FAULTSPAN_COMPAT_FILTER=1`` hides faultspan's documented additions (attributes named ``faultspan.*`` and
``redaction.masked.*``, on spans and events) from the tests, for the tests that compare attribute sets
exactly. ``FAULTSPAN_COMPAT_OUTCOMES`` names the JSON file that receives every test's outcome.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any

import pytest

MODE = os.environ.get("FAULTSPAN_COMPAT_MODE", "plain")
ADDITIONS = ("faultspan.", "redaction.masked.")
_RANK = {"passed": 0, "skipped": 1, "failed": 2}
_outcomes: dict[str, str] = {}


def _instrument_faultspan() -> None:
    for entry_point in entry_points(group="opentelemetry_instrumentor"):
        if entry_point.name.startswith("faultspan_"):
            entry_point.load()().instrument()


def _without_additions(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {key: value for key, value in (attributes or {}).items() if not key.startswith(ADDITIONS)}


def _filter_additions() -> None:
    from opentelemetry.sdk.trace import Event, ReadableSpan

    span_attributes = ReadableSpan.attributes.fget
    event_attributes = Event.attributes.fget
    assert span_attributes is not None and event_attributes is not None
    ReadableSpan.attributes = property(  # type: ignore[assignment,method-assign]
        lambda span: MappingProxyType(_without_additions(span_attributes(span)))
    )
    Event.attributes = property(  # type: ignore[assignment,method-assign]
        lambda event: _without_additions(event_attributes(event))
    )


def _put_faultspan_in_front() -> None:
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

    from faultspan._pipeline.processor import FaultspanSpanProcessor

    class InFront(FaultspanSpanProcessor):
        """faultspan's processor, waiting for its worker to hand each span on before ``on_end`` returns
        (without flushing the downstream processors, whose own timing the tests check)."""

        def __init__(self, downstream: SpanProcessor) -> None:
            super().__init__([downstream])

        def on_end(self, span: ReadableSpan) -> None:
            super().on_end(span)
            self._worker.flush(30)

    register = TracerProvider.add_span_processor

    def add_span_processor(provider: TracerProvider, span_processor: SpanProcessor) -> None:
        register(provider, InFront(span_processor))

    TracerProvider.add_span_processor = add_span_processor  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("FAULTSPAN_COMPAT_FILTER") == "1":
        _filter_additions()
    if MODE in ("b1", "b2"):
        _instrument_faultspan()
    if MODE == "b2":
        _put_faultspan_in_front()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Every phase and every subtest: a test counts as passed only when none of them failed."""
    outcome = "failed" if report.failed else ("skipped" if report.skipped else "passed")
    previous = _outcomes.get(report.nodeid, "passed")
    _outcomes[report.nodeid] = max(previous, outcome, key=_RANK.__getitem__)


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("FAULTSPAN_COMPAT_OUTCOMES")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(_outcomes, out, indent=0, sort_keys=True)
