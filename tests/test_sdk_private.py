"""Every private name of the OpenTelemetry SDK that faultspan uses (faultspan/_otlp/sdk_private.py), checked
against the installed SDK: after an upgrade, a failure here names the SDK version and what changed."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import version

import pytest
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, StatusCode

from faultspan._otlp import sdk_private

SDK = (
    f"opentelemetry-sdk {version('opentelemetry-sdk')}, "
    f"opentelemetry-exporter-otlp-proto-grpc {version('opentelemetry-exporter-otlp-proto-grpc')}, "
    f"opentelemetry-exporter-otlp-proto-http {version('opentelemetry-exporter-otlp-proto-http')}"
)


@contextlib.contextmanager
def sdk_check(what: str) -> Iterator[None]:
    try:
        yield
    except Exception as error:
        pytest.fail(
            f"{SDK}: {what} no longer works as faultspan/_otlp/sdk_private.py expects "
            f"({type(error).__name__}: {error})"
        )


def ended_span(provider: TracerProvider | None = None, **attributes: str) -> ReadableSpan:
    exporter = InMemorySpanExporter()
    provider = provider or TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("s", attributes=attributes) as span:
        span.add_event("e")
    (finished,) = exporter.get_finished_spans()
    return finished


def test_bounded_attributes_expose_their_dict() -> None:
    with sdk_check("BoundedAttributes._dict"):
        attributes = BoundedAttributes(maxlen=4, attributes={"a": "1"}, immutable=True)
        plain = sdk_private.plain_attributes(attributes)
        assert type(plain) is dict
        assert plain == {"a": "1"}
    assert sdk_private.plain_attributes({"b": 2}) == {"b": 2}
    assert sdk_private.plain_attributes(None) == {}


def test_a_copy_keeps_the_dropped_count_and_stays_immutable() -> None:
    with sdk_check("BoundedAttributes._dict / ._immutable / .dropped"):
        copy = sdk_private.bounded({"a": "1"}, 3)
        assert isinstance(copy, BoundedAttributes)
        assert dict(copy) == {"a": "1"}
        assert copy.dropped == 3
        with pytest.raises(TypeError):
            copy["b"] = "2"
    plain = {"a": "1"}
    assert sdk_private.bounded(plain, 0) is plain


def test_span_attributes_events_and_links_without_copies() -> None:
    with sdk_check("ReadableSpan._attributes / ._events / ._links"):
        span = ended_span(key="value")
        assert sdk_private.span_attributes(span) == {"key": "value"}
        assert type(sdk_private.span_attributes(span)) is dict
        assert sdk_private.has_events(span)
        assert not sdk_private.has_links(span)
        assert sdk_private.lone_attributes(span) is None
        provider = TracerProvider()
        with provider.get_tracer("t").start_as_current_span("plain", attributes={"k": "v"}) as live:
            assert not sdk_private.has_events(live)  # type: ignore[arg-type]
            lone = sdk_private.lone_attributes(live)  # type: ignore[arg-type]
            assert type(lone) is dict
            assert lone == {"k": "v"}
            live.add_event("now")
            assert sdk_private.has_events(live)  # type: ignore[arg-type]
            assert sdk_private.lone_attributes(live) is None  # type: ignore[arg-type]
    linked = ReadableSpan("linked", links=(Link(span.context),), events=())
    assert sdk_private.has_links(linked)
    assert not sdk_private.has_events(linked)
    assert sdk_private.lone_attributes(linked) is None
    assert sdk_private.lone_attributes(ReadableSpan("bare", attributes={"a": 1})) == {"a": 1}


def test_plain_spans_and_the_context_read_without_properties() -> None:
    with sdk_check("ReadableSpan._name / ._status / Status._description / ._kind / ._context"):
        provider = TracerProvider()
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("plain", attributes={"k": "v"}, kind=SpanKind.CLIENT) as live:
            assert sdk_private.span_context(live) is live.get_span_context()  # type: ignore[arg-type]
            assert sdk_private.kind_and_context(live) == (SpanKind.CLIENT, live.get_span_context())  # type: ignore[arg-type]
        with tracer.start_as_current_span("failed") as failed:
            failed.set_status(StatusCode.ERROR, "why")
        with tracer.start_as_current_span("coded") as coded:
            coded.set_status(StatusCode.ERROR)
        spans = [live, failed, coded, ended_span(key="value")]
        names, attributes = sdk_private.plain_spans(spans)  # type: ignore[arg-type]
        assert names == [span.name for span in spans]
        assert attributes == [{"k": "v"}, None, {}, None]
        assert type(attributes[0]) is dict
        for span in spans:
            context = span.get_span_context()
            assert context is not None
            assert sdk_private.span_context(span)[sdk_private.TRACE_FLAGS] is context.trace_flags  # type: ignore[arg-type]
    built = [
        ReadableSpan("bare", attributes={"a": 1}),
        ReadableSpan("linked", links=(Link(span.context),)),
        ReadableSpan("none", status=None),  # type: ignore[arg-type]
    ]
    assert sdk_private.plain_spans(built) == (["bare", "linked", "none"], [{"a": 1}, None, None])


def test_the_attribute_length_limit_of_a_live_span() -> None:
    with sdk_check("Span._limits.max_attribute_length"):
        provider = TracerProvider(span_limits=SpanLimits(max_attribute_length=7))
        with provider.get_tracer("t").start_as_current_span("s") as span:
            assert sdk_private.max_attribute_length(span) == 7
        with TracerProvider().get_tracer("t").start_as_current_span("s") as span:
            assert sdk_private.max_attribute_length(span) is None
    assert sdk_private.max_attribute_length(object()) is None


class Recording(SpanProcessor):
    def __init__(self) -> None:
        self.ended: list[str] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span.name)


def test_the_providers_processors_can_be_swapped() -> None:
    provider = TracerProvider()
    first, second = Recording(), Recording()
    provider.add_span_processor(first)
    seen: list[tuple[SpanProcessor, ...]] = []

    def replace(existing: tuple[SpanProcessor, ...]) -> tuple[SpanProcessor, ...]:
        seen.append(existing)
        return (second,)

    with sdk_check("TracerProvider._active_span_processor._lock / ._span_processors"):
        sdk_private.replace_span_processors(provider, replace)
        assert seen == [(first,)]
        provider.get_tracer("t").start_span("after").end()
        assert (first.ended, second.ended) == ([], ["after"])
        sdk_private.replace_span_processors(provider, lambda existing: None)
        provider.get_tracer("t").start_span("unchanged").end()
        assert second.ended == ["after", "unchanged"]


def test_exporter_names_resolve_as_the_sdk_resolves_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    with sdk_check("sdk._configuration._get_exporter_entry_point / _import_exporters"):
        assert sdk_private.trace_exporter_classes("console") == [ConsoleSpanExporter]
        assert sdk_private.trace_exporter_classes("otlp") == [HttpExporter]
        with pytest.raises(RuntimeError):
            sdk_private.trace_exporter_classes("no-such-exporter")


def test_metrics_exporter_names_resolve_as_the_sdk_resolves_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc")
    with sdk_check("sdk._configuration._get_exporter_entry_point / _import_exporters (metrics)"):
        assert sdk_private.metric_exporter_classes("console") == [ConsoleMetricExporter]
        assert sdk_private.metric_exporter_classes("otlp") == [OTLPMetricExporter]
        with pytest.raises(RuntimeError):
            sdk_private.metric_exporter_classes("no-such-exporter")


def test_the_sampler_is_built_as_the_sdk_configurator_builds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    with sdk_check("sdk._configuration._get_sampler / _import_sampler, sampling._get_from_env_or_default"):
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
        sampler = sdk_private.configured_sampler()
        assert isinstance(sampler, ParentBased)
        assert sampler.get_description() == ParentBased(TraceIdRatioBased(0.25)).get_description()
        monkeypatch.delenv("OTEL_TRACES_SAMPLER")
        assert sdk_private.configured_sampler().get_description().startswith("ParentBased{root:AlwaysOn")


def test_the_sdk_configurator_takes_processors_before_the_exporters() -> None:
    """In a fresh interpreter: the SDK sets its global provider once."""
    script = textwrap.dedent(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import SpanProcessor
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from faultspan._otlp import sdk_private

        class Front(SpanProcessor):
            pass

        class Configurator(sdk_private.SdkConfigurator):
            def _configure(self, **kwargs):
                sdk_private.configure_sdk(
                    self, span_processors=[Front()], export_span_processor=SimpleSpanProcessor, **kwargs
                )

        Configurator().configure()
        multi = trace.get_tracer_provider()._active_span_processor
        print([type(p).__name__ for p in multi._span_processors])
        """
    )
    environment = {
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )
    with sdk_check(
        "sdk._configuration._OTelSDKConfigurator._configure(span_processors, export_span_processor)"
    ):
        assert result.returncode == 0, result.stderr
        assert result.stdout.split("\n")[-2] == "['Front', 'SimpleSpanProcessor']"


@pytest.fixture
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in os.environ:
        if name.startswith("OTEL_EXPORTER_OTLP_") or name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_how_a_grpc_exporter_sends(plain_environment: pytest.MonkeyPatch) -> None:
    import grpc

    with sdk_check(
        "grpc OTLPSpanExporter._endpoint / ._insecure / ._headers / ._timeout / ._compression / "
        "._channel_options / ._credentials"
    ):
        exporter = GrpcExporter(
            endpoint="http://127.0.0.1:9/",
            insecure=True,
            headers={"k": "v"},
            timeout=3,
            compression=grpc.Compression.Gzip,
            channel_options=(("grpc.max_send_message_length", 1234),),  # type: ignore[arg-type]
        )
        target = sdk_private.exporter_target(exporter)
        assert target is not None
        assert target.channel_options[-1] == ("grpc.max_send_message_length", 1234)
        assert dataclasses.replace(target, channel_options=()) == sdk_private.ExporterTarget(
            "grpc", "127.0.0.1:9", True, (("k", "v"),), 3.0, "gzip"
        )
        exporter.shutdown()
        credentials = grpc.ssl_channel_credentials()
        exporter = GrpcExporter(endpoint="https://127.0.0.1:9", credentials=credentials)
        target = sdk_private.exporter_target(exporter)
        assert target is not None
        assert (target.insecure, target.credentials, target.unsupported) == (False, credentials, None)
        exporter.shutdown()
    assert sdk_private.exporter_target(ConsoleSpanExporter()) is None


def test_how_an_http_exporter_sends(plain_environment: pytest.MonkeyPatch) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression

    plain_environment.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-env=1,authorization=from-env")
    with sdk_check(
        "http OTLPSpanExporter._client._endpoint / ._headers / ._timeout / ._compression / "
        "._transport._session (verify, cert)"
    ):
        exporter = HttpExporter(
            endpoint="https://127.0.0.1:9/v1/traces",
            headers={"Authorization": "Bearer synthetic"},
            timeout=4,
            compression=Compression.Deflate,
            certificate_file="/ca.pem",
            client_certificate_file="/client.pem",
            client_key_file="/client.key",
        )
        target = sdk_private.exporter_target(exporter)
        assert target is not None
        headers = dict(target.headers)
        assert (headers["authorization"], headers["x-env"]) == ("Bearer synthetic", "1")  # the code wins
        assert dataclasses.replace(target, headers=()) == sdk_private.ExporterTarget(
            "http/protobuf",
            "https://127.0.0.1:9/v1/traces",
            False,
            (),
            4.0,
            "deflate",
            certificate="/ca.pem",
            client_certificate="/client.pem",
            client_key="/client.key",
        )
        exporter.shutdown()  # type: ignore[no-untyped-call]


def test_the_authorities_an_http_exporter_verifies_with(plain_environment: pytest.MonkeyPatch) -> None:
    from requests.utils import DEFAULT_CA_BUNDLE_PATH

    def authorities(**kwargs: str) -> str | None:
        exporter = HttpExporter(endpoint="https://127.0.0.1:9/v1/traces", **kwargs)  # type: ignore[arg-type]
        target = sdk_private.exporter_target(exporter)
        exporter.shutdown()  # type: ignore[no-untyped-call]
        assert target is not None
        return target.certificate

    with sdk_check("http OTLPSpanExporter._client._transport._session.verify"):
        assert authorities() == DEFAULT_CA_BUNDLE_PATH  # requests' own bundle, not the system's
        plain_environment.setenv("REQUESTS_CA_BUNDLE", "/bundle.pem")
        assert authorities(certificate_file="/ca.pem") == "/bundle.pem"  # as requests merges them


def test_what_faultspan_cannot_send_as_the_http_exporter_does(plain_environment: pytest.MonkeyPatch) -> None:
    import requests

    class Session(requests.Session):
        pass

    with_auth, with_hook = requests.Session(), requests.Session()
    with_auth.auth = ("user", "synthetic")
    with_hook.hooks["response"].append(lambda response, **kwargs: response)
    with sdk_check("http OTLPSpanExporter._client._transport._session"):
        for session, reason in (
            (None, None),
            (with_auth, "a session with its own auth"),
            (with_hook, "a session with its own hooks"),
            (Session(), "a session of type Session"),
        ):
            exporter = HttpExporter(endpoint="http://127.0.0.1:9/v1/traces", session=session)
            target = sdk_private.exporter_target(exporter)
            assert target is not None
            assert target.unsupported == reason
            exporter.shutdown()  # type: ignore[no-untyped-call]
    from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport

    with sdk_check("http OTLPSpanExporter(_transport=...) and RequestsHTTPTransport, its default"):
        exporter = HttpExporter(endpoint="http://127.0.0.1:9/v1/traces", _transport=Urllib3HTTPTransport())
        target = sdk_private.exporter_target(exporter)
        assert target is not None
        assert target.unsupported == "an HTTP transport Urllib3HTTPTransport"
        exporter.shutdown()  # type: ignore[no-untyped-call]


def test_how_an_otlp_log_exporter_sends(plain_environment: pytest.MonkeyPatch) -> None:
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter

    with sdk_check("OTLPLogExporter: the span exporters' attributes (grpc and http)"):
        grpc_exporter = GrpcLogExporter(endpoint="http://127.0.0.1:9/", insecure=True, headers={"k": "v"})
        target = sdk_private.exporter_target(grpc_exporter)
        assert target is not None
        assert (target.protocol, target.endpoint, target.headers, target.signal) == (
            "grpc",
            "127.0.0.1:9",
            (("k", "v"),),
            "logs",
        )
        http_exporter = HttpLogExporter(endpoint="http://127.0.0.1:9/v1/logs", headers={"k": "v"})
        target = sdk_private.exporter_target(http_exporter)
        assert target is not None
        assert (target.protocol, target.endpoint, dict(target.headers)["k"], target.signal) == (
            "http/protobuf",
            "http://127.0.0.1:9/v1/logs",
            "v",
            "logs",
        )
        grpc_exporter.shutdown()
        http_exporter.shutdown()


def test_the_logger_providers_processors_can_be_swapped() -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    provider = LoggerProvider(shutdown_on_exit=False)
    first, second = InMemoryLogRecordExporter(), InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(first))
    with sdk_check("LoggerProvider._multi_log_record_processor._lock / ._log_record_processors"):
        sdk_private.replace_log_record_processors(
            provider, lambda existing: [SimpleLogRecordProcessor(second)]
        )
        provider.get_logger("t").emit(body="after")
        assert (len(first.get_finished_logs()), len(second.get_finished_logs())) == (0, 1)


CONTRIB = (
    f"opentelemetry-instrumentation-flask {version('opentelemetry-instrumentation-flask')}, "
    f"-fastapi {version('opentelemetry-instrumentation-fastapi')}, "
    f"-django {version('opentelemetry-instrumentation-django')}"
)


def test_the_official_instrumentations_markers() -> None:
    import flask
    from fastapi import FastAPI
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    flask_app, fastapi_app = flask.Flask("marker"), FastAPI()
    assert not sdk_private.instrumented_by_opentelemetry(flask_app)
    assert not sdk_private.instrumented_by_opentelemetry(fastapi_app)
    FlaskInstrumentor.instrument_app(flask_app)  # type: ignore[no-untyped-call]
    FastAPIInstrumentor.instrument_app(fastapi_app)
    try:
        with sdk_check(f"{CONTRIB}: the apps' _is_instrumented_by_opentelemetry"):
            assert sdk_private.instrumented_by_opentelemetry(flask_app)
            assert sdk_private.instrumented_by_opentelemetry(fastapi_app)
    finally:
        FlaskInstrumentor.uninstrument_app(flask_app)  # type: ignore[no-untyped-call]
        FastAPIInstrumentor.uninstrument_app(fastapi_app)
    module, _, name = sdk_private.DJANGO_MIDDLEWARE.rpartition(".")
    with sdk_check(f"{CONTRIB}: the Django middleware's dotted path"):
        assert isinstance(getattr(importlib.import_module(module), name), type)
