from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, StatusCode

from faultspan._capture.redaction import Redactor
from faultspan._pipeline import recording
from faultspan._pipeline.processor import FaultspanSpanProcessor, RedactOnce, redact_span

REDACTOR = Redactor()


def finished(**limits: int) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(**limits))  # type: ignore[arg-type]
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_clean_span_is_passed_through_without_a_copy() -> None:
    provider, exporter = finished()
    with provider.get_tracer("t").start_as_current_span("GET /orders") as span:
        span.set_attribute("http.route", "/orders")
        span.add_event("cache miss", {"cache.key": "orders:7"})
    (raw,) = exporter.get_finished_spans()
    assert redact_span(raw, REDACTOR) is raw


def test_every_place_is_redacted_and_reported() -> None:
    provider, exporter = finished()
    tracer = provider.get_tracer("t")
    link_context = tracer.start_span("other").get_span_context()
    with tracer.start_as_current_span(
        "GET /reset?token=abcdef0123456789abcdef",
        links=[Link(link_context, {"api_key": "k-1234567890abcdef"})],
    ) as span:
        span.set_attribute("http.request.header.authorization", "Bearer abcdef0123456789abcdef")
        span.set_attribute("payload", '{"user": "bob", "password": "hunter2hunter2"}')
        span.add_event("note", {"detail": "connect postgres://app:s3cr3t-pw-99@db/app"})
        span.set_status(StatusCode.ERROR, "login failed password=hunter2hunter2")
    (raw,) = exporter.get_finished_spans()
    out = redact_span(raw, REDACTOR)
    assert out is not raw
    assert out.name == "GET /reset?token=[REDACTED]"
    assert out.attributes["http.request.header.authorization"] == "[REDACTED]"
    assert out.attributes["payload"] == '{"user":"bob","password":"[REDACTED]"}'
    assert out.events[0].attributes["detail"] == "connect postgres://app:[REDACTED]@db/app"
    assert out.links[0].attributes["api_key"] == "[REDACTED]"
    assert out.status.description == "login failed password=[REDACTED]"
    assert out.attributes["redaction.masked.keys"].split(",") == [
        "name",
        "http.request.header.authorization",
        "payload.password",
        "event[0].detail",
        "link[0].api_key",
        "status.description",
    ]
    assert out.attributes["redaction.masked.count"] == 6
    # the original is untouched, so nothing else sharing it is affected
    assert raw.attributes["http.request.header.authorization"].startswith("Bearer ")


def test_dropped_counts_survive_the_copy() -> None:
    provider, exporter = finished(max_span_attributes=2, max_events=2)
    with provider.get_tracer("t").start_as_current_span("s") as span:
        span.set_attribute("a", 1)
        span.set_attribute("b", 2)
        span.set_attribute("secret", "x-very-secret-value")
        for index in range(4):
            span.add_event(f"e{index}", {"password": "hunter2hunter2"})
    (raw,) = exporter.get_finished_spans()
    out = redact_span(raw, REDACTOR)
    assert out is not raw
    assert out.dropped_attributes == raw.dropped_attributes == 1
    assert out.dropped_events == raw.dropped_events == 2
    assert [event.attributes["password"] for event in out.events] == ["[REDACTED]", "[REDACTED]"]


def test_exception_events_recorded_without_faultspan_get_a_fingerprint() -> None:
    provider, exporter = finished()
    span = provider.get_tracer("t").start_span("plain")
    try:
        raise ValueError("order 12 failed")
    except ValueError as exc:
        recording.sdk_record_exception(span, exc)
    span.end()
    (raw,) = exporter.get_finished_spans()
    out = redact_span(raw, REDACTOR)
    key = out.events[0].attributes["faultspan.fingerprint"]
    assert len(key) == 32
    assert out.attributes["faultspan.fingerprint"] == key
    assert out.status.status_code is StatusCode.ERROR


class Recorder(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self.lock:
            self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def test_fan_out_redacts_once_for_every_exporter(monkeypatch: object) -> None:
    calls = []
    original = redact_span

    def counting(span: ReadableSpan, redactor: Redactor) -> ReadableSpan:
        calls.append(span.name)
        return original(span, redactor)

    import faultspan._pipeline.processor as module

    setattr(module, "redact_span", counting)  # noqa: B010
    try:
        first, second = Recorder(), Recorder()
        processor = FaultspanSpanProcessor()
        provider = TracerProvider()
        provider.add_span_processor(processor)
        provider.add_span_processor(processor.attach(first))
        provider.add_span_processor(processor.attach(second))
        tracer = provider.get_tracer("t")
        for index in range(300):
            with tracer.start_as_current_span(f"s{index}") as span:
                span.set_attribute("password", "hunter2hunter2")
        assert provider.force_flush()
        provider.shutdown()
    finally:
        setattr(module, "redact_span", original)  # noqa: B010
    assert len(calls) == 300
    for exporter in (first, second):
        assert len(exporter.spans) == 300
        assert {span.attributes["password"] for span in exporter.spans} == {"[REDACTED]"}


def test_shutdown_drains_the_queue() -> None:
    recorder = Recorder()
    processor = FaultspanSpanProcessor([SimpleSpanProcessor(recorder)])
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    for index in range(50):
        tracer.start_span(f"s{index}").end()
    provider.shutdown()
    assert len(recorder.spans) == 50
    tracer.start_span("after").end()
    assert len(recorder.spans) == 50


def test_unredactable_span_is_dropped_not_leaked(monkeypatch: object) -> None:
    import faultspan._pipeline.processor as module

    def broken(span: ReadableSpan, redactor: Redactor) -> ReadableSpan:
        raise RuntimeError("redactor bug")

    recorder = Recorder()
    original = module.redact_span
    setattr(module, "redact_span", broken)  # noqa: B010
    try:
        processor = FaultspanSpanProcessor([SimpleSpanProcessor(recorder)])
        provider = TracerProvider()
        provider.add_span_processor(processor)
        provider.get_tracer("t").start_span("leaky").end()
        provider.force_flush()
    finally:
        setattr(module, "redact_span", original)  # noqa: B010
    assert recorder.spans == []
    assert processor.dropped == 1
    provider.shutdown()


def test_unredactable_span_is_dropped_by_every_attached_exporter_and_counted_once(
    monkeypatch: object,
) -> None:
    import faultspan._pipeline.processor as module

    def broken(span: ReadableSpan, redactor: Redactor) -> ReadableSpan:
        raise RuntimeError("redactor bug")

    first, second = Recorder(), Recorder()
    original = module.redact_span
    setattr(module, "redact_span", broken)  # noqa: B010
    try:
        processor = FaultspanSpanProcessor()
        provider = TracerProvider()
        provider.add_span_processor(processor)
        provider.add_span_processor(processor.attach(first))
        provider.add_span_processor(processor.attach(second))
        provider.get_tracer("t").start_span("leaky").end()
        assert provider.force_flush()
    finally:
        setattr(module, "redact_span", original)  # noqa: B010
    assert first.spans == second.spans == []
    assert processor.dropped == 1
    provider.shutdown()


def test_copies_shared_between_exporters_go_with_the_raw_spans() -> None:
    """Two exporters: the second gets the first one's copy; once no queue holds the raw span, neither is
    kept (the memory of RedactOnce is bounded by the exporters' queues)."""
    redact = RedactOnce()
    redact.sinks = 2
    provider = TracerProvider()
    recorder = Recorder()
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    with provider.get_tracer("t").start_as_current_span("s") as span:
        span.set_attribute("password", "hunter2hunter2")
    (raw,) = recorder.spans
    (first,) = redact.batch([raw])
    (second,) = redact.batch([raw])
    assert first is second is not raw
    assert first.attributes["password"] == "[REDACTED]"
    copy = weakref.ref(first)
    del raw, first, second, span
    recorder.spans.clear()
    gc.collect()
    assert copy() is None


class Blocking(SimpleSpanProcessor):
    """A downstream that holds the worker inside its first span until released."""

    def __init__(self) -> None:
        super().__init__(Recorder())
        self.entered = threading.Event()
        self.release = threading.Event()

    def on_end(self, span: ReadableSpan) -> None:
        self.entered.set()
        self.release.wait(10)


def test_full_queue_drops_and_counts_without_blocking() -> None:
    blocking = Blocking()
    processor = FaultspanSpanProcessor([blocking], max_queue_size=10)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    tracer.start_span("first").end()
    assert blocking.entered.wait(10)
    for index in range(25):
        tracer.start_span(f"s{index}").end()
    assert processor.dropped == 15
    blocking.release.set()
    provider.shutdown()
