from __future__ import annotations

import contextlib
import gc
import random
import threading
import weakref
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, StatusCode

from faultspan._capture import runtime
from faultspan._capture.redaction import Redactor
from faultspan._otlp.sdk_private import plain_spans
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
    assert out.attributes["payload"] == '{"user": "bob", "password": "[REDACTED]"}'
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


def mixed_spans(rng: random.Random, count: int, built: bool = False) -> list[ReadableSpan]:
    """Spans as production sends them, and the ones every shortcut must leave to the walk: fresh paths and
    addresses, a card number in a path, secrets in values and under secret keys, a secret or a fresh id in
    the name, events, links, a status text, scalars, tuples, and spans built without the SDK."""
    token = "ghp_" + "Q1w2E3r4T5y6U7i8O9p0" * 2
    provider, exporter = finished()
    tracer = provider.get_tracer("t")
    other = tracer.start_span("other").get_span_context()
    for _ in range(count):
        number = rng.randint(1, 10**9)
        attributes: dict[str, object] = {
            "http.request.method": rng.choice(["GET", "POST"]),
            "url.path": rng.choice(
                [f"/orders/{number}", f"/orders/{number}?a=b", "/orders/4111111111111111"]
            ),
            "client.address": f"10.{number & 255}.{number >> 8 & 255}.{number >> 16 & 255}",
        }
        pick = rng.random()
        if pick < 0.05:
            attributes["url.full"] = f"https://shop.example.com/?q={token}"
        elif pick < 0.1:
            attributes["password"] = rng.choice(["hunter2hunter2", "", "GET", f"/orders/{number}"])
        elif pick < 0.15:
            attributes.update({"http.response.status_code": 200, "ratio": 0.5, "ok": True})
        elif pick < 0.2:
            attributes["tags"] = ("a", token)
        name = rng.choice(["GET /orders/{id}"] * 8 + [f"GET /orders/{number}", f"GET /?token={token}"])
        with tracer.start_as_current_span(
            name,
            attributes=attributes,
            links=[Link(other)] if pick > 0.97 else None,  # type: ignore[arg-type]
        ) as span:
            if 0.9 < pick < 0.95:
                span.add_event("note", {"detail": rng.choice(["fine", f"key {token}"])})
            if 0.85 < pick < 0.9:
                span.set_status(StatusCode.ERROR, rng.choice(["failed", f"token={token}"]))
    spans = list(exporter.get_finished_spans())
    if built:  # a batch with a list value (unhashable) is left to the walk whole
        spans += [
            ReadableSpan("built", attributes={"k": ["a", "b"]}),
            ReadableSpan("built", attributes={"url.path": "/orders/7"}, events=(), links=()),
            ReadableSpan("built", status=None),  # type: ignore[arg-type]  # not redactable: dropped both ways
        ]
    return spans


def exported(span: ReadableSpan) -> str:
    return span.to_json()


def test_a_batch_redacts_as_span_by_span_without_the_shortcut() -> None:
    """RedactOnce tells most spans of a batch unchanged at once (Redactor.leaves_spans); the very spans and
    copies that redact_span gives one at a time come out, with warm and cold caches, one exporter or two."""
    rng = random.Random(12)
    rules = runtime.current().redactor.rules
    for sinks in (1, 2):
        runtime.load()  # cold caches: the first batches learn, the later ones meet known values and shapes
        redact = RedactOnce()
        redact.sinks = sinks
        plain = Redactor(rules)
        for round_number in range(6):
            spans = mixed_spans(rng, 300, built=round_number == 3)
            pairs = [(span, out) for span in spans if (out := redact._redacted(span, plain)) is not None]
            got = redact.batch(spans)
            assert [exported(out) for out in got] == [exported(out) for _, out in pairs]
            same = [out is span for (span, _), out in zip(pairs, got, strict=True)]
            assert same == [out is span for span, out in pairs]
            assert 0 < sum(same) < len(same)


def test_the_batch_shortcut_answers_the_usual_batch_and_only_what_the_walk_keeps() -> None:
    rng = random.Random(4)
    redactor = Redactor()
    batches = [mixed_spans(rng, 200, built=True) for _ in range(4)]
    for spans in batches:
        for span in spans:  # the walk learns the values and the shapes
            with contextlib.suppress(AttributeError):
                redact_span(span, redactor)
    for spans in batches:
        names, attributes = plain_spans(spans)
        told = redactor.leaves_spans(names, attributes)
        for span, unchanged in zip(spans, told, strict=True):
            if unchanged:
                assert redact_span(span, Redactor()) is span
    provider, exporter = finished()
    for index in range(1024):  # fresh values on every span, in shapes the walk learns from the first half
        with provider.get_tracer("t").start_as_current_span("GET /orders/{id}") as span:
            span.set_attributes({"url.path": f"/orders/{100000 + index}", "net.peer.port": index % 10})
    learning, fresh = exporter.get_finished_spans()[:512], exporter.get_finished_spans()[512:]
    for span in learning:
        redact_span(span, redactor)
    assert all(redactor.leaves_spans(*plain_spans(fresh)))
