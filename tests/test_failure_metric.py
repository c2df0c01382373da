"""The ``faultspan.failures`` counter: in process with the real metrics SDK, and from real apps (under
opentelemetry-instrument and with ``configure()``) through a real collector."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from conftest import Pipeline
from faultspan._pipeline import failure_metric
from support.collector import OtlpSink, ReceivedSpan, RotelCollector
from support.instrumented import INSTRUMENT, run_instrumented
from support.metrics import Counts, failure_counts

APP = Path(__file__).parent / "apps" / "failures_app.py"


class Meter:
    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        self.counter = failure_metric.FailureCounter(self.provider)

    def counts(self) -> Counts:
        counts: Counts = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    assert metric.name == "faultspan.failures"
                    assert metric.unit == "{failure}"
                    for point in metric.data.data_points:  # type: ignore[union-attr]
                        attributes = point.attributes or {}
                        key = (str(attributes["exception.type"]), str(attributes["faultspan.fingerprint"]))
                        counts[key] = int(point.value)  # type: ignore[union-attr]
        return counts


@pytest.fixture
def meter(monkeypatch: pytest.MonkeyPatch) -> Iterator[Meter]:
    """The process counter replaced by one on a MeterProvider of this test's own."""
    meter = Meter()
    monkeypatch.setattr(failure_metric, "_process", meter.counter)
    yield meter
    meter.provider.shutdown()


def test_fingerprints_beyond_the_bound_are_counted_as_other() -> None:
    meter = Meter()
    for fingerprint in ["a", "b", "c", "a", "d", "b"]:
        meter.counter.add("ValueError", fingerprint, limit=2)
    assert meter.counts() == {("ValueError", "a"): 2, ("ValueError", "b"): 2, ("ValueError", "_other"): 2}


def test_one_exception_through_nested_spans_counts_once(meter: Meter, pipeline: Pipeline) -> None:
    import faultspan

    tracer = pipeline.tracer
    for attempt in range(2):
        with (
            pytest.raises(KeyError),
            tracer.start_as_current_span("request"),
            tracer.start_as_current_span("handler"),
            tracer.start_as_current_span("lookup"),
        ):
            try:
                {}[f"customer-{attempt}"]
            except KeyError:
                faultspan.capture_exception()
                raise
    spans = pipeline.spans()
    fingerprints = {span.attributes["faultspan.fingerprint"] for span in spans}
    assert len(spans) == 6
    (fingerprint,) = fingerprints
    assert meter.counts() == {("KeyError", fingerprint): 2}


def test_counting_never_reaches_the_application(meter: Meter, pipeline: Pipeline) -> None:
    import faultspan

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("meter broken")

    meter.counter.add = broken  # type: ignore[method-assign]
    try:
        raise ValueError("payment declined")
    except ValueError:
        fingerprint = faultspan.capture_exception()
    assert fingerprint is not None
    (span,) = pipeline.spans()
    assert [event.name for event in span.events].count("exception") == 1  # recorded once, not twice


# ------------------------------------------------------------------------------------------------------------
# Real apps through rotel
# ------------------------------------------------------------------------------------------------------------


def run_app(
    mode: str, collector: RotelCollector, env: dict[str, str], **variables: str
) -> subprocess.CompletedProcess[str]:
    exporters = {**collector.exporter_env(), **variables}
    if mode == "instrument":
        return run_instrumented(
            APP, env=env, OTEL_TRACES_EXPORTER="otlp", OTEL_METRICS_EXPORTER="otlp", **exporters
        )
    result = subprocess.run(
        [sys.executable, str(APP), "--configure"],
        env={**env, **exporters},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def span_fingerprints(spans: list[ReceivedSpan]) -> dict[str, set[object]]:
    by_type: dict[str, set[object]] = {}
    for span in spans:
        for event in span.events_named("exception"):
            kind = str(event.attributes["exception.type"])
            by_type.setdefault(kind, set()).add(event.attributes["faultspan.fingerprint"])
            assert span.attributes["faultspan.fingerprint"] == event.attributes["faultspan.fingerprint"]
    return by_type


def failing_handlers(spans: list[ReceivedSpan]) -> bool:
    return sum(1 for span in spans if span.name == "handler" and span.events_named("exception")) == 9


@pytest.mark.parametrize("mode", ["instrument", "configure"])
def test_three_bugs_arrive_as_counts_with_the_fingerprints_the_spans_carry(
    mode: str, collector: RotelCollector, otlp_sink: OtlpSink, app_env: dict[str, str]
) -> None:
    run_app(mode, collector, app_env)
    requests = otlp_sink.wait_for_metrics(lambda requests: sum(failure_counts(requests).values()) >= 9)
    counts = failure_counts(requests)
    fingerprints = span_fingerprints(otlp_sink.wait_for(failing_handlers))
    assert sorted(fingerprints) == ["KeyError", "ValueError", "ZeroDivisionError"]
    assert all(len(keys) == 1 for keys in fingerprints.values())  # one bug, one fingerprint
    expected = {"ValueError": 5, "KeyError": 3, "ZeroDivisionError": 1}
    assert counts == {(kind, str(next(iter(fingerprints[kind])))): n for kind, n in expected.items()}


def test_the_fingerprint_bound_holds_through_the_collector(
    collector: RotelCollector, otlp_sink: OtlpSink, app_env: dict[str, str]
) -> None:
    result = run_app("instrument", collector, app_env, OTEL_PYTHON_FAULTSPAN_METRIC_FINGERPRINTS="2")
    requests = otlp_sink.wait_for_metrics(lambda requests: sum(failure_counts(requests).values()) >= 9)
    fingerprints = span_fingerprints(otlp_sink.wait_for(failing_handlers))
    counts = failure_counts(requests)
    assert counts == {
        ("ValueError", str(next(iter(fingerprints["ValueError"])))): 5,
        ("KeyError", str(next(iter(fingerprints["KeyError"])))): 3,
        ("ZeroDivisionError", "_other"): 1,
    }
    assert result.stderr.count("OTEL_PYTHON_FAULTSPAN_METRIC_FINGERPRINTS") == 1


def test_failures_counted_before_sigterm_are_exported(
    collector: RotelCollector, otlp_sink: OtlpSink, app_env: dict[str, str]
) -> None:
    """Killed by SIGTERM long before the first periodic export: faultspan's SIGTERM flush sends the counts."""
    env = {
        **app_env,
        **collector.exporter_env(),
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
    }
    with subprocess.Popen(
        [str(INSTRUMENT), sys.executable, str(APP), "--wait"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as app:
        assert app.stdout is not None
        assert app.stdout.readline() == "ready\n"
        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=30) == -signal.SIGTERM
    requests = otlp_sink.wait_for_metrics(lambda requests: sum(failure_counts(requests).values()) >= 9)
    assert sorted(failure_counts(requests).values()) == [1, 3, 5]
