"""Failures survive head sampling (OTEL_PYTHON_FAULTSPAN_KEEP_FAILED_TRACES): in process with the real SDK,
and a sampled-at-2% app under opentelemetry-instrument through a real collector."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, TraceState

from faultspan._capture import runtime
from faultspan._pipeline.distro import install
from faultspan._pipeline.keep_failed import PROMOTED, HeldTraces, KeepFailedSampler, keeping_failed
from faultspan._pipeline.processor import FaultspanSpanProcessor
from support.collector import OtlpSink, ReceivedSpan, RotelCollector
from support.instrumented import run_instrumented
from support.metrics import failure_counts
from support.servers import EXAMPLES, AppServer, http_get

APPS = Path(__file__).parent / "apps"
NEVER = ParentBased(ALWAYS_OFF)


class Fixed(IdGenerator):
    """The same ids for every provider, so that two pipelines can be compared byte for byte."""

    def __init__(self) -> None:
        self._next = 0

    def generate_span_id(self) -> int:
        self._next += 1
        return self._next

    def generate_trace_id(self) -> int:
        return 0x1234


class Unsampled:
    def __init__(self, sampler: Sampler, held: HeldTraces | None = None, **kwargs: object) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(sampler=sampler, **kwargs)  # type: ignore[arg-type]
        self.processor = FaultspanSpanProcessor([SimpleSpanProcessor(self.exporter)])
        if held is not None:
            self.processor.held = held
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("tests")

    def spans(self) -> list[ReadableSpan]:
        self.provider.force_flush()
        return list(self.exporter.get_finished_spans())

    def trace_of_three(self, fail: str | None = None) -> None:
        """A root and two children; ``fail`` names the span whose status becomes ERROR."""
        with self.tracer.start_as_current_span("root") as root:
            for name in ("reserve", "charge"):
                with self.tracer.start_as_current_span(name) as child:
                    if fail == name:
                        child.set_status(StatusCode.ERROR)
            if fail == "root":
                root.set_status(StatusCode.ERROR)

    def close(self) -> None:
        self.provider.shutdown()


@pytest.fixture
def unsampled() -> Iterator[Unsampled]:
    unsampled = Unsampled(KeepFailedSampler(NEVER))
    yield unsampled
    unsampled.close()


def test_a_dropped_span_is_recorded_with_the_flags_and_state_the_sampler_chose() -> None:
    parent = SpanContext(0xABC, 0xDEF, is_remote=True, trace_state=TraceState([("vendor", "x")]))
    context = trace.set_span_in_context(NonRecordingSpan(parent))
    headers = []
    for sampler in (NEVER, KeepFailedSampler(NEVER)):
        tracer = TracerProvider(sampler=sampler, id_generator=Fixed()).get_tracer("t")
        with tracer.start_as_current_span("s", context=context, attributes={"order.id": 7}) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            headers.append(carrier)
            assert span.is_recording() is (sampler is not NEVER)
    plain, keeping = headers
    assert keeping == plain
    assert plain["traceparent"].endswith("-00")
    assert plain["tracestate"] == "vendor=x"
    assert span.attributes == {"order.id": 7}  # type: ignore[attr-defined]


def test_sampled_decisions_and_attributes_are_the_inner_samplers() -> None:
    class Tagging(Sampler):
        def should_sample(self, *args: object, **kwargs: object) -> SamplingResult:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, {"sampler.tag": "a"})

        def get_description(self) -> str:
            return "Tagging"

    sampler = KeepFailedSampler(Tagging())
    result = sampler.should_sample(None, 1, "s", attributes={"x": 1})
    assert result.decision is Decision.RECORD_AND_SAMPLE
    assert dict(result.attributes) == {"sampler.tag": "a"}
    assert keeping_failed(sampler) is sampler
    assert sampler.get_description() == "KeepFailed{Tagging}"


def test_a_failing_unsampled_trace_is_exported_whole_once(unsampled: Unsampled) -> None:
    unsampled.trace_of_three(fail="charge")
    spans = unsampled.spans()
    assert sorted(span.name for span in spans) == ["charge", "reserve", "root"]
    root = next(span for span in spans if span.name == "root")
    for span in spans:
        assert span.context.trace_flags.sampled
        assert span.attributes[PROMOTED] is True  # type: ignore[index]
        assert span.context.trace_id == root.context.trace_id
        if span is not root:
            assert span.parent is not None
            assert span.parent.span_id == root.context.span_id
    assert len(unsampled.processor.held) == 0  # type: ignore[arg-type]
    assert unsampled.processor.held.bytes == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("where", ["reserve", "root"])
def test_a_failure_anywhere_in_the_trace_releases_it(unsampled: Unsampled, where: str) -> None:
    unsampled.trace_of_three(fail=where)
    assert sorted(span.name for span in unsampled.spans()) == ["charge", "reserve", "root"]


def test_an_exception_event_counts_as_a_failure(unsampled: Unsampled) -> None:
    with (
        unsampled.tracer.start_as_current_span("root"),
        unsampled.tracer.start_as_current_span("child") as child,
    ):
        child.add_event("exception", {"exception.type": "ValueError", "exception.message": "handled"})
    assert sorted(span.name for span in unsampled.spans()) == ["child", "root"]


def test_a_handled_exception_captured_releases_the_trace(unsampled: Unsampled) -> None:
    import faultspan

    tracer = unsampled.tracer
    with tracer.start_as_current_span("root"):
        with tracer.start_as_current_span("lookup"):
            pass
        with tracer.start_as_current_span("charge"):
            try:
                raise LookupError("card 7 unknown")
            except LookupError:
                fingerprint = faultspan.capture_exception()
    spans = {span.name: span for span in unsampled.spans()}
    assert sorted(spans) == ["charge", "lookup", "root"]
    (event,) = spans["charge"].events
    assert event.attributes is not None
    assert event.attributes["faultspan.fingerprint"] == fingerprint


def test_a_trace_without_failure_is_discarded_when_its_last_span_ends(unsampled: Unsampled) -> None:
    for _ in range(3):
        unsampled.trace_of_three()
    assert unsampled.spans() == []
    assert len(unsampled.processor.held) == 0  # type: ignore[arg-type]
    assert unsampled.processor.held.bytes == 0  # type: ignore[union-attr]


def test_a_span_ending_after_the_failure_and_after_the_root_is_exported(unsampled: Unsampled) -> None:
    root = unsampled.tracer.start_span("root")
    context = trace.set_span_in_context(root)
    late = unsampled.tracer.start_span("late", context=context)
    with unsampled.tracer.start_as_current_span("failing", context=context) as failing:
        failing.set_status(StatusCode.ERROR)
    assert [span.name for span in unsampled.spans()] == ["failing"]
    root.end()
    late.end()
    assert [span.name for span in unsampled.spans()] == ["failing", "root", "late"]


def test_threads_ending_spans_at_once_lose_and_leak_nothing(unsampled: Unsampled) -> None:
    def run(thread: int) -> None:
        for index in range(200):
            unsampled.trace_of_three(fail="charge" if index % 10 == thread % 10 else None)

    threads = [threading.Thread(target=run, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spans = unsampled.spans()
    assert len(spans) == 8 * 20 * 3
    assert len({span.context.span_id for span in spans}) == len(spans)
    assert Counter(span.name for span in spans) == {"root": 160, "reserve": 160, "charge": 160}
    held = unsampled.processor.held
    assert held is not None
    assert (len(held), held.bytes, held.dropped_spans) == (0, 0, 0)


def test_sampled_traces_are_unaffected() -> None:
    unsampled = Unsampled(KeepFailedSampler(ALWAYS_ON))
    unsampled.trace_of_three(fail="charge")
    unsampled.trace_of_three()
    spans = unsampled.spans()
    assert len(spans) == 6
    assert len({span.context.span_id for span in spans}) == 6
    assert not any(PROMOTED in (span.attributes or {}) for span in spans)
    assert len(unsampled.processor.held) == 0  # type: ignore[arg-type]
    unsampled.close()


def test_the_exported_copy_encodes_as_the_span_did(unsampled: Unsampled) -> None:
    """OTLP carries no sampled flag: apart from the promotion mark, the copy is the span as recorded."""
    with unsampled.tracer.start_as_current_span("root", attributes={"order.id": 7}) as root:
        root.add_event("cache miss", {"cache.key": "orders:7"})
        root.set_status(StatusCode.ERROR, "declined")
    (exported,) = unsampled.spans()
    recorded = root._readable_span()  # type: ignore[attr-defined]
    assert not recorded.context.trace_flags.sampled
    promoted = encode_spans([exported])
    (attribute,) = [
        kv for kv in promoted.resource_spans[0].scope_spans[0].spans[0].attributes if kv.key == PROMOTED
    ]
    promoted.resource_spans[0].scope_spans[0].spans[0].attributes.remove(attribute)
    assert promoted == encode_spans([recorded])


def test_span_bound_per_trace_drops_and_counts_once(caplog: pytest.LogCaptureFixture) -> None:
    unsampled = Unsampled(KeepFailedSampler(NEVER), HeldTraces(max_traces=10, max_spans=2, max_bytes=1 << 20))
    with caplog.at_level(logging.WARNING, "faultspan"):
        for _ in range(2):
            with unsampled.tracer.start_as_current_span("root") as root:
                for index in range(4):
                    with unsampled.tracer.start_as_current_span(f"child {index}"):
                        pass
                root.set_status(StatusCode.ERROR)
    assert [span.name for span in unsampled.spans()] == ["child 0", "child 1", "root"] * 2
    assert unsampled.processor.held.dropped_spans == 4  # type: ignore[union-attr]
    warnings = [r.getMessage() for r in caplog.records if "KEEP_FAILED_MAX_SPANS" in r.getMessage()]
    assert len(warnings) <= 1  # once per process: an earlier test may have reported it already
    unsampled.close()


def test_trace_bound_evicts_the_oldest_trace() -> None:
    held = HeldTraces(max_traces=2, max_spans=10, max_bytes=1 << 20)
    unsampled = Unsampled(KeepFailedSampler(NEVER), held)
    roots = []
    for index in range(3):
        roots.append(root := unsampled.tracer.start_span(f"root {index}"))
        unsampled.tracer.start_span(f"child {index}", context=trace.set_span_in_context(root)).end()
    assert len(held) == 2
    assert held.dropped_spans == 1  # trace 0's child
    for root in roots:
        root.set_status(StatusCode.ERROR)
        root.end()
    # The evicted trace's root still fails: it is exported, without the child that was dropped.
    assert [span.name for span in unsampled.spans()] == ["root 0", "child 1", "root 1", "child 2", "root 2"]
    assert len(held) == 0
    unsampled.close()


def test_byte_bound_drops_what_does_not_fit() -> None:
    held = HeldTraces(max_traces=10, max_spans=100, max_bytes=9000)
    unsampled = Unsampled(KeepFailedSampler(NEVER), held)
    with unsampled.tracer.start_as_current_span("root") as root:
        for index in range(3):
            with unsampled.tracer.start_as_current_span(f"child {index}") as child:
                child.set_attribute("payload", "x" * 1500)
        assert held.bytes <= 9000
        root.set_status(StatusCode.ERROR)
    assert [span.name for span in unsampled.spans()] == ["child 0", "child 1", "root"]
    assert held.dropped_spans == 1
    assert held.bytes == 0
    unsampled.close()


def test_the_switch_off_keeps_the_plain_sampler() -> None:
    runtime.load({"keep_failed_traces": False})
    try:
        provider = TracerProvider(sampler=NEVER)
        assert install(provider).held is None
        assert provider.sampler is NEVER
    finally:
        runtime.load()
    provider = TracerProvider(sampler=NEVER)
    assert install(provider).held is not None
    assert isinstance(provider.sampler, KeepFailedSampler)


# ------------------------------------------------------------------------------------------------------------
# A real app under opentelemetry-instrument, through rotel
# ------------------------------------------------------------------------------------------------------------

TRACES = 2000
FAIL_EVERY = 50  # 40 failing traces


def run_sampled_app(
    collector: RotelCollector, env: dict[str, str], **variables: str
) -> tuple[set[str], set[str]]:
    result = run_instrumented(
        APPS / "sampled_app.py",
        str(TRACES),
        str(FAIL_EVERY),
        env=env,
        OTEL_SERVICE_NAME="sampled",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0.02",
        **collector.exporter_env(),
        **variables,
    )
    decided = json.loads(result.stdout.strip().splitlines()[-1])
    sampled, failed = set(decided["sampled"]), set(decided["failed"])
    assert len(failed) == TRACES // FAIL_EVERY
    return sampled, failed


def complete_traces(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    traces: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    return {trace_id: group for trace_id, group in traces.items() if len(group) >= 3}


def received_traces(sink: OtlpSink, expected: set[str]) -> dict[str, list[ReceivedSpan]]:
    """Once every expected trace arrived complete: every trace received, each span checked to be unique."""
    spans = sink.wait_for(lambda spans: expected <= set(complete_traces(spans)))
    counts = Counter(span.span_id for span in spans)
    assert max(counts.values()) == 1, "a span was exported twice"
    traces = complete_traces(spans)
    assert {span.trace_id for span in spans} == set(traces), "an incomplete trace arrived"
    return traces


def test_every_failing_trace_arrives_whole_and_the_rest_follows_the_sampler(
    collector: RotelCollector, otlp_sink: OtlpSink, app_env: dict[str, str]
) -> None:
    sampled, failed = run_sampled_app(collector, app_env)
    traces = received_traces(otlp_sink, sampled | failed)
    assert set(traces) == sampled | failed
    assert failed <= set(traces)  # 40 of 40
    fingerprints = set()
    for trace_id in failed:
        spans = {span.name: span for span in traces[trace_id]}
        assert sorted(spans) == ["charge", "order", "reserve"]
        root = spans["order"]
        assert spans["charge"].parent_span_id == spans["reserve"].parent_span_id == root.span_id
        for name in ("charge", "order"):  # the exception escapes both
            (event,) = spans[name].events_named("exception")
            assert event.attributes["exception.type"] == "__main__.PaymentDeclined"
            fingerprints.add(event.attributes["faultspan.fingerprint"])
            assert (
                spans[name].attributes["faultspan.fingerprint"] == event.attributes["faultspan.fingerprint"]
            )
        promoted = trace_id not in sampled
        assert all((span.attributes.get(PROMOTED) is True) is promoted for span in spans.values())
    assert len(fingerprints) == 1
    passing = set(traces) - failed
    assert passing == sampled - failed
    # About 2% of the 1,960 traces that did not fail: 39 expected, these bounds are 5 standard deviations out.
    assert 10 <= len(passing) <= 70, len(passing)


def test_switched_off_a_failing_trace_arrives_only_when_sampled(
    collector: RotelCollector, otlp_sink: OtlpSink, app_env: dict[str, str]
) -> None:
    sampled, failed = run_sampled_app(collector, app_env, OTEL_PYTHON_FAULTSPAN_KEEP_FAILED_TRACES="false")
    traces = received_traces(otlp_sink, sampled)
    assert set(traces) == sampled
    assert len(failed & set(traces)) < len(failed)
    assert not any(PROMOTED in span.attributes for spans in traces.values() for span in spans)


@pytest.mark.parametrize(
    "choice",
    [
        {"OTEL_PYTHON_CONFIGURATOR": "configurator"},
        {"OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator"},
    ],
    ids=["other-configurator", "other-distro-and-configurator"],
)
def test_failed_traces_are_kept_when_opentelemetry_distro_wins(
    choice: dict[str, str], collector: RotelCollector, otlp_sink: OtlpSink, app_env: dict[str, str]
) -> None:
    """faultspan's post-instrument hook wraps the sampler the other configurator gave the provider."""
    pytest.importorskip("opentelemetry.distro")
    result = run_instrumented(
        APPS / "sampled_app.py",
        "20",
        "5",
        env=app_env,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_TRACES_SAMPLER="always_off",
        **collector.exporter_env(),
        **choice,
    )
    decided = json.loads(result.stdout.strip().splitlines()[-1])
    assert decided["sampled"] == []
    assert set(received_traces(otlp_sink, set(decided["failed"]))) == set(decided["failed"])


def test_a_failing_request_of_a_sampled_out_server_arrives_and_counts(
    collector: RotelCollector, otlp_sink: OtlpSink, app_env: dict[str, str], tmp_path: Path
) -> None:
    """The Flask example with nothing sampled: the 500 arrives with every span of its trace in the process
    (its server span, the outgoing call and the call's own server span), the 404 does not, and the failure
    is counted once (exported by the SIGTERM flush)."""
    pytest.importorskip("flask")
    env = {
        **app_env,
        **collector.exporter_env(),
        "OTEL_SERVICE_NAME": "flask-sampled-out",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_TRACES_SAMPLER": "parentbased_always_off",
    }
    with AppServer(EXAMPLES / "flask_app.py", env, tmp_path) as server:
        assert http_get(server.url("/orders/0?marker=handled"))[0] == 404
        assert http_get(server.url("/orders/7?marker=failed"))[0] == 500
    requests = otlp_sink.wait_for_metrics(lambda requests: bool(failure_counts(requests)))
    spans = otlp_sink.wait_for(lambda spans: sum(span.kind == 2 for span in spans) >= 2)
    assert {span.trace_id for span in spans} == {spans[0].trace_id}
    assert sorted((span.kind, span.name) for span in spans if span.kind != 1) == [
        (2, "GET /health"),
        (2, "GET /orders/<int:order_id>"),
        (3, "GET"),
    ]
    assert all(span.attributes[PROMOTED] is True for span in spans)
    (failing,) = [span for span in spans if span.events_named("exception")]
    fingerprint = failing.attributes["faultspan.fingerprint"]
    assert failure_counts(requests) == {("__main__.PaymentDeclined", fingerprint): 1}


SAMPLER_PLUGIN = '''
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult


class EveryOther(Sampler):
    """Samples the root spans whose app.index is even (and their children), nothing else."""

    def __init__(self, arg):
        self.arg = arg

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None):
        from opentelemetry import trace

        parent = trace.get_current_span(parent_context).get_span_context()
        if parent.is_valid:
            return SamplingResult(Decision.RECORD_AND_SAMPLE if parent.trace_flags.sampled else Decision.DROP)
        index = (attributes or {}).get("app.index", 1)
        return SamplingResult(Decision.RECORD_AND_SAMPLE if index % 2 == 0 else Decision.DROP, attributes)

    def get_description(self):
        return "EveryOther"


def factory(arg):
    return EveryOther(arg)
'''


def test_a_custom_entry_point_sampler_is_wrapped_too(
    collector: RotelCollector, otlp_sink: OtlpSink, app_env: dict[str, str], tmp_path: Path
) -> None:
    """``OTEL_TRACES_SAMPLER`` names a sampler that an installed distribution registers as an entry point."""
    (tmp_path / "every_other.py").write_text(SAMPLER_PLUGIN)
    info = tmp_path / "every_other-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: every-other\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[opentelemetry_traces_sampler]\nevery_other = every_other:factory\n"
    )
    path = os.pathsep.join([str(tmp_path), *sys.path])
    result = run_instrumented(
        APPS / "sampled_app.py",
        "20",
        "5",
        env={**app_env, "PYTHONPATH": path},
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_TRACES_SAMPLER="every_other",
        **collector.exporter_env(),
    )
    decided = json.loads(result.stdout.strip().splitlines()[-1])
    sampled, failed = set(decided["sampled"]), set(decided["failed"])
    assert (len(sampled), len(failed), len(failed - sampled)) == (10, 4, 2)  # indexes 5 and 15 unsampled
    assert set(received_traces(otlp_sink, sampled | failed)) == sampled | failed
