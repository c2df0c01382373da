"""Durable delivery: end-to-end throughput into a rotel collector, and a burst that must not drop.

    python benchmarks/delivery.py [--quick]

Rows, measured in the same run (median of alternating rounds, so drift hits every configuration alike):
- spans/s from the first span started to ``force_flush`` returning, OTLP/gRPC into rotel (blackhole
  exporter), for the stock SDK alone (BatchSpanProcessor, queue large enough), faultspan with the spool off
  (its processor in front of the same), and faultspan with the spool on (durable processor);
- a burst ended as fast as the loop can go with default queue sizes: the share of spans the stock SDK
  exported (the rest it dropped with "Queue full"), and the share faultspan's durable processor sent or
  spooled (none may be dropped: the burst fits the spool's budget).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from faultspan._capture.runtime import current
from faultspan._pipeline.durable import DurableSpanProcessor, transport_for
from faultspan._pipeline.processor import FaultspanSpanProcessor, RedactOnce
from faultspan._pipeline.spool import Spool
from support.collector import RotelCollector

Row = tuple[str, float, str]
_LARGE_QUEUE = 1 << 20


class Counting(SpanExporter):
    """The stock OTLP exporter, counting the spans it exported successfully."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()


def _durable(endpoint: str, directory: Path, max_queue_size: int) -> DurableSpanProcessor:
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
    spool = Spool(directory, current().settings.spool_max_bytes)
    transport = transport_for(exporter)
    assert transport is not None
    return DurableSpanProcessor(exporter, transport, spool, RedactOnce(), max_queue_size=max_queue_size)


def _run(provider: TracerProvider, count: int) -> float:
    """Spans per second, from the first span to the flush returning."""
    tracer = provider.get_tracer("bench")
    start = time.perf_counter()
    for index in range(count):
        with tracer.start_as_current_span("request") as span:
            span.set_attributes({"http.method": "GET", "http.route": "/items", "index": index})
    provider.force_flush()
    seconds = time.perf_counter() - start
    provider.shutdown()
    return count / seconds


def _provider(processor: SpanProcessor) -> TracerProvider:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return provider


def throughput(endpoint: str, count: int, rounds: int, directory: Path) -> list[Row]:
    configurations: dict[str, Callable[[], SpanProcessor]] = {
        "stock SDK alone": lambda: BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, insecure=True), max_queue_size=_LARGE_QUEUE
        ),
        "faultspan, spool off": lambda: FaultspanSpanProcessor(
            [
                BatchSpanProcessor(
                    OTLPSpanExporter(endpoint=endpoint, insecure=True), max_queue_size=_LARGE_QUEUE
                )
            ],
            max_queue_size=_LARGE_QUEUE,
        ),
        "faultspan, spool on": lambda: FaultspanSpanProcessor(
            [_durable(endpoint, directory, _LARGE_QUEUE)], max_queue_size=_LARGE_QUEUE
        ),
    }
    results: dict[str, list[float]] = {label: [] for label in configurations}
    for _ in range(rounds):
        for label, make in configurations.items():
            results[label].append(_run(_provider(make()), count))
    return [
        (f"throughput into rotel, {label}", statistics.median(values), "spans/s")
        for label, values in results.items()
    ]


def burst(endpoint: str, count: int, directory: Path) -> list[Row]:
    """A burst of ``count`` with default queues (the SDK's 2048; OTEL_PYTHON_FAULTSPAN_QUEUE_SIZE)."""
    stock_exporter = Counting(OTLPSpanExporter(endpoint=endpoint, insecure=True))
    stock = _provider(BatchSpanProcessor(stock_exporter))
    _run(stock, count)

    durable = _durable(endpoint, directory, current().settings.queue_size)
    redactor = FaultspanSpanProcessor([durable])
    _run(_provider(redactor), count)
    kept = durable.sent + durable.spooled
    return [
        (f"burst of {count}: stock SDK exported", 100 * stock_exporter.exported / count, "%"),
        (f"burst of {count}: faultspan sent or spooled", 100 * kept / count, "%"),
        (f"burst of {count}: faultspan spooled (sent later)", 100 * durable.spooled / count, "%"),
        (f"burst of {count}: faultspan dropped", count - kept + redactor.dropped, "spans"),
    ]


def rows(quick: bool = False) -> list[Row]:
    """Every row of this benchmark, with a collector of its own (started and stopped here)."""
    count, rounds, burst_count = (3000, 1, 10000) if quick else (20000, 3, 50000)
    with RotelCollector(None) as collector, tempfile.TemporaryDirectory(prefix="spool-") as directory:
        endpoint = collector.grpc_endpoint
        return [
            *throughput(endpoint, count, rounds, Path(directory)),
            *burst(endpoint, burst_count, Path(directory)),
        ]


def print_rows(quick: bool) -> None:
    for label, value, unit in rows(quick):
        print(f"{label:<55} {value:>12,.1f} {unit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer spans, one round (a smoke run)")
    print_rows(parser.parse_args().quick)


if __name__ == "__main__":
    main()
