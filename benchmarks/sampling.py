"""Keeping failed traces: what an unsampled span costs when faultspan records it instead of dropping it.

    python benchmarks/sampling.py [--quick]

Every trace is a root and two children with five attributes each (fresh values per span), under
``parentbased_traceidratio`` at ratio 0, so every span is one the head sampler dropped. Rows, per span, the
median of alternating rounds:
- bare SDK, the plain sampler: NonRecordingSpans (the reference);
- faultspan with ``OTEL_PYTHON_FAULTSPAN_KEEP_FAILED_TRACES=false``: the plain sampler behind faultspan's
  processor (the same NonRecordingSpans);
- bare SDK, the sampler wrapped: the SDK recording the span (RECORD_ONLY), nobody holding it: the part of
  the cost that is the SDK's;
- faultspan, the default: the sampler wrapped (RECORD_ONLY), each trace held until its root ends, then
  discarded;
- a sampled span through faultspan (ratio 1), for scale: what the unsampled span is spared;
- the memory a held span takes (tracemalloc) against the estimate the byte bound counts.
CPU is the thread's own (``thread_time``); nothing is queued for the worker, so it is all there is.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased

from faultspan._pipeline.keep_failed import HeldTraces, KeepFailedSampler
from faultspan._pipeline.processor import FaultspanSpanProcessor


class Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _provider(case: str) -> TracerProvider:
    ratio = ParentBased(TraceIdRatioBased(1.0 if case == "sampled" else 0.0))
    sampler: Sampler = ratio if case in ("bare", "off") else KeepFailedSampler(ratio)
    provider = TracerProvider(sampler=sampler)
    if case in ("bare", "recorded"):
        provider.add_span_processor(BatchSpanProcessor(Discard(), max_queue_size=1 << 20))
        return provider
    # As faultspan's configurator wires it: its processor, then the exporter attached to it.
    processor = FaultspanSpanProcessor()
    if case == "off":
        processor.held = None
    provider.add_span_processor(processor)
    provider.add_span_processor(processor.attach(Discard(), max_queue_size=1 << 20))
    return provider


def _traces(provider: TracerProvider, count: int) -> tuple[float, float]:
    """Per span: CPU seconds of this thread, and its wall seconds."""
    tracer = provider.get_tracer("bench")
    thread = time.thread_time()
    start = time.perf_counter()
    for index in range(count):
        with tracer.start_as_current_span("GET /orders/{id}", attributes={"order.id": index}) as root:
            root.set_attribute("http.request.method", "GET")
            root.set_attribute("http.route", "/orders/{id}")
            root.set_attribute("url.path", f"/orders/{index}")
            root.set_attribute("user.id", f"user-{index % 97}")
            for name in ("SELECT orders", "POST /charge"):
                with tracer.start_as_current_span(name, attributes={"db.system": "postgresql"}) as child:
                    child.set_attribute("db.statement", f"SELECT * FROM orders WHERE id = {index}")
                    child.set_attribute("server.address", "db.internal")
                    child.set_attribute("server.port", 5432)
                    child.set_attribute("attempt", index % 3)
    wall = time.perf_counter() - start
    thread = time.thread_time() - thread
    provider.shutdown()
    spans = 3 * count
    return thread / spans, wall / spans


def _memory(count: int) -> tuple[float, float]:
    """Bytes per held span: measured with tracemalloc, and as the byte bound estimates it."""
    held = HeldTraces(max_traces=10, max_spans=count, max_bytes=1 << 40)
    provider = TracerProvider(sampler=KeepFailedSampler(ParentBased(TraceIdRatioBased(0.0))))
    processor = FaultspanSpanProcessor([])
    processor.held = held
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    root = tracer.start_span("GET /orders")
    context = trace.set_span_in_context(root)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for index in range(count):
        with tracer.start_as_current_span("SELECT orders", context=context) as child:
            child.set_attribute("db.system", "postgresql")
            child.set_attribute("db.statement", f"SELECT * FROM orders WHERE id = {index}")
            child.set_attribute("server.port", 5432)
    gc.collect()
    measured = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    estimated = held.bytes
    root.end()
    provider.shutdown()
    return measured / count, estimated / count


def print_rows(quick: bool) -> None:
    traces, rounds = (1_000, 3) if quick else (10_000, 7)
    cases = ("bare", "off", "recorded", "keep", "sampled")
    for case in cases:
        _traces(_provider(case), traces // 10)
    runs: dict[str, list[tuple[float, float]]] = {case: [] for case in cases}
    for _ in range(rounds):
        for case in cases:
            runs[case].append(_traces(_provider(case), traces))
    labels = {
        "bare": "bare SDK, plain sampler (dropped)",
        "off": "faultspan, KEEP_FAILED_TRACES=false",
        "recorded": "bare SDK, recorded (RECORD_ONLY), not held",
        "keep": "faultspan, keeping failed traces (default)",
        "sampled": "faultspan, a sampled span (for scale)",
    }
    print(f"unsampled span (root + 2 children, 5 attributes each)   {'CPU':>9} {'wall':>10} {'vs off':>8}")
    off_cpu = statistics.median(run[0] for run in runs["off"])
    for case in cases:
        cpu = statistics.median(run[0] for run in runs[case])
        wall = statistics.median(run[1] for run in runs[case])
        print(f"  {labels[case]:<52} {cpu * 1e6:>6.1f} µs {wall * 1e6:>7.1f} µs {cpu / off_cpu:>7.2f}x")
    cpu = {case: statistics.median(run[0] for run in runs[case]) for case in cases}
    for label, seconds in (
        ("cost of keeping failed traces per unsampled span", cpu["keep"] - off_cpu),
        ("  ... of which the SDK recording the span", cpu["recorded"] - cpu["bare"]),
        ("  ... and faultspan holding it", cpu["keep"] - cpu["recorded"]),
    ):
        print(f"  {label:<52} {seconds * 1e6:>6.1f} µs")
    measured, estimated = _memory(traces)
    print(f"held span: {measured:,.0f} bytes measured (tracemalloc), {estimated:,.0f} bytes estimated")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer traces and rounds (a smoke run)")
    print_rows(parser.parse_args().quick)


if __name__ == "__main__":
    main()
