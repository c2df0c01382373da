"""The span path against the bare SDK: spans with 15 string attributes, interleaved rounds in one process.

    python benchmarks/span_path.py [--quick]

Each round runs the bare SDK (a BatchSpanProcessor with a discarding exporter), the floor (a processor that
does nothing in front of the same), and faultspan as its configurator wires it (its processor, then the
exporter attached to it), one after the other;
the figures are the medians of the per-round ratios to the bare SDK, for the wall time of the loop that
starts and ends the spans (the hot path) and for the process CPU time, flush included. Two workloads: the
same 15 values on every span, and fresh ``url.path`` / ``client.address`` values on every span (what
production sends: a value cache does not hide the first scan of each new value).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from faultspan._capture import runtime
from faultspan._pipeline.processor import FaultspanSpanProcessor

Attributes = Callable[[int], dict[str, str]]
_SAME = {
    "http.request.method": "GET",
    "http.route": "/orders/{id}",
    "url.scheme": "https",
    "url.path": "/orders/1234",
    "server.address": "shop.example.com",
    "client.address": "10.1.2.3",
    "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
    "network.protocol.version": "1.1",
    "http.request.header.accept": "application/json",
    "http.request.header.content-type": "application/json",
    "service.version": "2.4.1",
    "deployment.environment": "production",
    "enduser.role": "customer",
    "code.function": "get_order",
    "code.namespace": "shop.views",
}


def same_values(index: int) -> dict[str, str]:
    return _SAME


def fresh_values(index: int) -> dict[str, str]:
    return {
        **_SAME,
        "url.path": f"/orders/{index}",
        "client.address": f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}",
    }


class Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class Forward(SpanProcessor):
    """The floor: a processor in front of the batch processor that does nothing but forward."""

    def __init__(self, inner: SpanProcessor) -> None:
        self._inner = inner

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self._inner.on_end(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._inner.shutdown()


def _bare(provider: TracerProvider) -> None:
    provider.add_span_processor(BatchSpanProcessor(Discard(), max_queue_size=_QUEUE))


def _floor(provider: TracerProvider) -> None:
    provider.add_span_processor(Forward(BatchSpanProcessor(Discard(), max_queue_size=_QUEUE)))


def _faultspan(provider: TracerProvider) -> None:
    """As faultspan's configurator builds it: the processor first, then each exporter attached to it."""
    processor = FaultspanSpanProcessor(max_queue_size=_QUEUE)
    provider.add_span_processor(processor)
    provider.add_span_processor(processor.attach(Discard(), max_queue_size=_QUEUE))


_QUEUE = 1 << 20
MODES: dict[str, Callable[[TracerProvider], None]] = {"bare": _bare, "floor": _floor, "faultspan": _faultspan}


def run(mode: str, attributes: Attributes, count: int, offset: int) -> tuple[float, float]:
    """Wall seconds of the loop and process CPU seconds (flush included), per span."""
    runtime.load()  # cold redaction caches on every side, as a new process would have
    provider = TracerProvider(shutdown_on_exit=False)
    MODES[mode](provider)
    tracer = provider.get_tracer("bench")
    values = [attributes(offset + index) for index in range(count)]
    cpu = time.process_time()
    start = time.perf_counter()
    for index in range(count):
        with tracer.start_as_current_span("GET /orders/{id}", attributes=values[index]):
            pass
    wall = time.perf_counter() - start
    provider.force_flush()
    cpu = time.process_time() - cpu
    provider.shutdown()
    return wall / count, cpu / count


def measure(attributes: Attributes, count: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Per mode: the median per-round ratio to the bare SDK of the wall time and of the CPU time."""
    ratios: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES if mode != "bare"}
    for round_number in range(rounds):
        offset = round_number * count * len(MODES)  # fresh values stay fresh across rounds and modes
        bare = run("bare", attributes, count, offset)
        for position, mode in enumerate(ratios, start=1):
            ours = run(mode, attributes, count, offset + position * count)
            ratios[mode].append((ours[0] / bare[0], ours[1] / bare[1]))
    return {
        mode: (statistics.median(r[0] for r in values), statistics.median(r[1] for r in values))
        for mode, values in ratios.items()
    }


def print_rows(quick: bool) -> None:
    count, rounds = (2_000, 3) if quick else (10_000, 9)
    print(
        f"span path, 15 string attributes ({rounds} interleaved rounds of {count:,} spans; bare SDK = 1.00):"
    )
    print(f"  {'workload':<34} {'mode':<10} {'hot-path wall':>14} {'process CPU':>12}")
    for label, attributes in (
        ("same 15 values on every span", same_values),
        ("fresh url.path, client.address", fresh_values),
    ):
        for mode, (wall, cpu) in measure(attributes, count, rounds).items():
            print(f"  {label:<34} {mode:<10} {wall:>13.3f}x {cpu:>11.3f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer spans and rounds (a smoke run)")
    print_rows(parser.parse_args().quick)
