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
- package writing, for a failure like the one above (root span + failing child): the writer's time per
  package and packages per second through the exporter's queue and writer thread, the package's size, and
  the application thread's CPU and wall time per failure without and with the ``faultspan`` package
  exporter next to the (discarding) span exporter;
- the span path (benchmarks/span_path.py, also runnable alone): 15 string attributes per span, the same
  values on every span and fresh ``url.path`` / ``client.address`` values, against the bare SDK and the
  do-nothing floor, medians of per-round ratios;
- durable delivery (benchmarks/delivery.py, also runnable alone): spans/s into rotel for the stock SDK,
  faultspan with the spool off and on, and the share of a 50,000-span burst each delivered or kept;
- the CLI's start time (benchmarks/cli_start.py, also runnable alone) against a bare interpreter start;
- keeping failed traces (benchmarks/sampling.py, also runnable alone): CPU per span the head sampler
  dropped, against the plain sampler, and a held span's memory.
Runs alternate bare and faultspan rounds and report the median round, so drift hits both sides alike.
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
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import cli_start
import delivery
import sampling
import span_path
from faultspan._capture import runtime
from faultspan._capture.runtime import current
from faultspan._pipeline import recording
from faultspan._pipeline.processor import FaultspanSpanProcessor, redact_span
from faultspan.packages.exporter import PackageSpanExporter
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
    # A fresh exception per span: faultspan keeps the keys of an exception object it has seen.
    raised = [_exception() for _ in range(count)]
    redactor = current().redactor
    record = recording.record if enrich else recording.sdk_record_exception
    start = time.perf_counter()
    for span, exc in zip(spans, raised, strict=True):
        record(span, exc)
        if redact:
            span.end()
            if enrich:
                redact_span(span, redactor)  # type: ignore[arg-type]
    return (time.perf_counter() - start) / count


def _failures(
    provider: TracerProvider, count: int, exporter: PackageSpanExporter | None = None
) -> tuple[float, float]:
    """Per failure, on the application thread: CPU seconds and wall seconds of a request span whose child
    records the benchmark exception (flushing, with the packages on disk, is not timed)."""
    tracer = provider.get_tracer("bench")
    raised = [_exception() for _ in range(count)]
    thread = time.thread_time()
    start = time.perf_counter()
    for exc in raised:
        with tracer.start_as_current_span("POST /orders"), tracer.start_as_current_span("charge") as span:
            recording.record(span, exc)
    wall = time.perf_counter() - start
    thread = time.thread_time() - thread
    provider.force_flush()
    if exporter is not None:  # a BatchSpanProcessor's flush does not flush its exporter
        exporter.force_flush()
    provider.shutdown()
    return thread / count, wall / count


def _failures_with(count: int, packages: bool) -> tuple[float, float]:
    """Batches leave every 50 ms, so that the packages are written while the failures go on."""
    provider = TracerProvider()
    batching = {"max_queue_size": 1 << 16, "schedule_delay_millis": 50}
    downstream = [BatchSpanProcessor(Discard(), **batching)]
    exporter = PackageSpanExporter() if packages else None
    if exporter is not None:
        downstream.append(BatchSpanProcessor(exporter, **batching))
    provider.add_span_processor(FaultspanSpanProcessor(downstream))
    return _failures(provider, count, exporter)


def _failing_trace() -> list[ReadableSpan]:
    """The spans of one failure, redacted as the package exporter receives them."""
    provider = TracerProvider()
    captured: list[ReadableSpan] = []

    class Keep(Discard):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            captured.extend(spans)
            return SpanExportResult.SUCCESS

    provider.add_span_processor(FaultspanSpanProcessor([BatchSpanProcessor(Keep())]))
    _failures(provider, 1)
    return captured


def _package_dir(directory: Path, count: int) -> None:
    """Packages go to ``directory``, and every failure is written: no per-fingerprint limit, no eviction."""
    runtime.load({"package_dir": directory, "package_max_per_fingerprint": 0, "package_queue_size": count})


def _packages(count: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        _package_dir(directory / "writer", count)
        spans = _failing_trace()
        exporter = PackageSpanExporter()
        first = exporter.write(spans)
        assert first is not None
        size = first.stat().st_size
        chunks = []  # the median of 5 chunks, as other rows take the median round
        for _ in range(5):
            cpu = time.thread_time()
            start = time.perf_counter()
            for _ in range(count // 5):
                exporter.write(spans)
            chunks.append(
                ((time.thread_time() - cpu) / (count // 5), (time.perf_counter() - start) / (count // 5))
            )
        cpu_per_package = statistics.median(chunk[0] for chunk in chunks)
        per_package = statistics.median(chunk[1] for chunk in chunks)
        start = time.perf_counter()
        for index in range(count):
            exporter.export([_renumbered(span, index) for span in spans])
        exporter.force_flush()
        queued_rate = count / (time.perf_counter() - start)
        exporter.shutdown()
        print(f"package writing (root span + failing child, {size / 1024:.1f} KiB per package):")
        print(f"  {'writer: CPU per package':<42} {cpu_per_package * 1e6:>9.1f} µs")
        print(f"  {'  ... wall time':<42} {per_package * 1e6:>9.1f} µs  ({1 / per_package:,.0f} packages/s)")
        print(f"  {'through export(), queue and writer thread':<42} {queued_rate:>9,.0f} packages/s")
        print(f"{'application thread per failure':<44} {'without':>12} {'with pkgs':>12} {'ratio':>8}")
        without, with_packages = [], []
        for round_number in range(rounds):
            for packages, runs in ((False, without), (True, with_packages)):
                # Both sides start alike: a fresh runtime (cold redaction caches), an empty package directory.
                _package_dir(directory / f"round-{round_number}", count)
                runs.append(_failures_with(count, packages=packages))
        for index, label in enumerate(("  CPU of the thread recording failures", "  ... its wall time")):
            _row(
                label,
                statistics.median(run[index] for run in without),
                statistics.median(run[index] for run in with_packages),
            )
        runtime.load()


def _renumbered(span: ReadableSpan, trace_id: int) -> ReadableSpan:
    """The span in another trace, so that each export is a failure of its own."""
    context = SpanContext(trace_id + 1, span.context.span_id, is_remote=False)
    parent = span.parent and SpanContext(trace_id + 1, span.parent.span_id, is_remote=False)
    return ReadableSpan(
        name=span.name,
        context=context,
        parent=parent,
        resource=span.resource,
        attributes=span.attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


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
    _packages(captures // 5, max(rounds // 2, 1))
    span_path.print_rows(args.quick)
    print("durable delivery into rotel (stock SDK measured in the same run):")
    delivery.print_rows(args.quick)
    print("CLI start time (benchmarks/cli_start.py):")
    cli_start.print_rows(7 if args.quick else 21)
    print("keeping failed traces (benchmarks/sampling.py):")
    sampling.print_rows(args.quick)


if __name__ == "__main__":
    main()
