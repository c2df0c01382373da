"""faultspan against the bare OpenTelemetry SDK, measured in the same run.

    python benchmarks/run.py [--quick]

Prints, for each case, the bare SDK figure, faultspan's, and the ratio (bare = 1.00):
- hot path: wall time per span on the thread that starts and ends it (5 attributes), BatchSpanProcessor
  with a discarding exporter for the bare SDK, faultspan's processor in front of the same for faultspan;
- total CPU per span: process CPU time (all threads) for the same spans, flush included;
- exception capture: one exception raised 10 frames deep with 5 locals per frame, recorded on a span:
  the SDK's own ``Span.record_exception`` versus faultspan's enrichment (frames, locals, chain, fingerprint),
  then the same plus the redaction the processor applies to that event off the hot path.
- the same spans exported for real: OTLP/gRPC into a rotel collector (blackhole exporter), wall time of the
  loop and total CPU per span, flush included;
Runs alternate bare and faultspan rounds and report the median round, so drift hits both sides alike.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from faultspan import recording
from faultspan.processor import FaultspanSpanProcessor, redact_span
from faultspan.runtime import current
from support.collector import RotelCollector


class Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _provider(with_faultspan: bool, exporter: SpanExporter | None = None) -> TracerProvider:
    provider = TracerProvider()
    batch = BatchSpanProcessor(exporter or Discard(), max_queue_size=1 << 20)
    provider.add_span_processor(FaultspanSpanProcessor([batch]) if with_faultspan else batch)
    return provider


def _spans(provider: TracerProvider, count: int) -> tuple[float, float, float]:
    """Per span: CPU seconds of this thread, its wall seconds, process CPU seconds (flush included)."""
    tracer = provider.get_tracer("bench")
    cpu = time.process_time()
    thread = time.thread_time()
    start = time.perf_counter()
    for index in range(count):
        with tracer.start_as_current_span("GET /orders/{id}") as span:
            span.set_attribute("http.request.method", "GET")
            span.set_attribute("http.route", "/orders/{id}")
            span.set_attribute("http.response.status_code", 200)
            span.set_attribute("order.id", index)
            span.set_attribute("user_agent.original", "curl/8.4.0")
    wall = time.perf_counter() - start
    thread = time.thread_time() - thread
    provider.force_flush()
    cpu = time.process_time() - cpu
    provider.shutdown()
    return thread / count, wall / count, cpu / count


def _deep(depth: int) -> None:
    order_id = 8812 + depth
    customer = {"id": depth, "email": "jane@example.com", "tier": "gold"}
    items = [("sku-1", 2), ("sku-2", 1)]
    note = "retry with backoff" * 2
    total = 42.5 * depth
    if depth == 0:
        raise ValueError(f"order {order_id} failed: total {total} for {customer['email']}")
    _deep(depth - 1)
    del items, note


def _exception() -> BaseException:
    try:
        _deep(9)
    except ValueError as exc:
        return exc
    raise AssertionError("unreachable")


def _capture(count: int, enrich: bool, redact: bool) -> float:
    """Seconds per exception recorded; with ``redact``, each span is also ended and redacted like the
    processor's worker would (the bare side ends its spans too, so both sides do the same extra work)."""
    provider = TracerProvider()
    tracer = provider.get_tracer("bench")
    spans = [tracer.start_span("s") for _ in range(count)]
    exc = _exception()
    redactor = current().redactor
    record = recording.record if enrich else recording.sdk_record_exception
    start = time.perf_counter()
    for span in spans:
        record(span, exc)
        if redact:
            span.end()
            if enrich:
                redact_span(span, redactor)  # type: ignore[arg-type]
    return (time.perf_counter() - start) / count


def _rounds(bare: Callable[[], float], ours: Callable[[], float], rounds: int) -> tuple[float, float]:
    bare_times, our_times = [], []
    for _ in range(rounds):
        bare_times.append(bare())
        our_times.append(ours())
    return statistics.median(bare_times), statistics.median(our_times)


def _row(label: str, bare: float, ours: float) -> None:
    print(f"{label:<44} {bare * 1e6:>9.1f} µs {ours * 1e6:>9.1f} µs {ours / bare:>7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer spans and rounds (a smoke run)")
    args = parser.parse_args()
    spans, rounds, captures = (2_000, 3, 200) if args.quick else (20_000, 7, 2_000)
    print(f"{'case':<44} {'bare SDK':>12} {'faultspan':>12} {'ratio':>8}")
    for warm_up in (False, True):
        _spans(_provider(warm_up), spans // 10)
    bare_runs = []
    our_runs = []
    for _ in range(rounds):
        bare_runs.append(_spans(_provider(False), spans))
        our_runs.append(_spans(_provider(True), spans))
    labels = (
        "hot path: CPU of the thread ending spans",
        "  ... its wall time (GIL shared with workers)",
        "total CPU per span (all threads, flushed)",
    )
    for index, label in enumerate(labels):
        bare = statistics.median(run[index] for run in bare_runs)
        _row(label, bare, statistics.median(run[index] for run in our_runs))
    with RotelCollector(None) as collector:
        otlp = [
            [
                _spans(_provider(mode, OTLPSpanExporter(collector.grpc_endpoint, insecure=True)), spans)
                for mode in (False, True)
            ]
            for _ in range(max(rounds // 2, 1))
        ]
    _row(
        "exported over OTLP/gRPC to rotel: wall per span",
        statistics.median(pair[0][1] for pair in otlp),
        statistics.median(pair[1][1] for pair in otlp),
    )
    _row(
        "  ... total CPU per span",
        statistics.median(pair[0][2] for pair in otlp),
        statistics.median(pair[1][2] for pair in otlp),
    )
    for redact, label in (
        (False, "exception capture (10 frames x 5 locals)"),
        (True, "  ... ended and redacted"),
    ):
        bare, ours = _rounds(
            lambda: _capture(captures, enrich=False, redact=redact),  # noqa: B023 -- called within the loop
            lambda: _capture(captures, enrich=True, redact=redact),  # noqa: B023
            rounds,
        )
        _row(label, bare, ours)


if __name__ == "__main__":
    main()
