"""The collector fixture itself, proved end to end with real components:

SDK (in process or in a subprocess) --OTLP grpc|http--> rotel-agent --OTLP grpc--> OtlpSink.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Status, StatusCode

from support.collector import (
    CollectorStartError,
    OtlpSink,
    ReceivedSpan,
    RotelCollector,
    free_port,
)

# OTLP wire values (opentelemetry.proto.trace.v1.Status.StatusCode)
STATUS_CODE_ERROR = 2


def _emit_failure_span(exporter: SpanExporter, token: str) -> None:
    """One span with typed attributes, an ``exception`` event and ERROR status, exported synchronously."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": "collector-fixture", "test.token": token})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.collector_fixture", "1.2.3")
    try:
        with tracer.start_as_current_span("checkout", record_exception=False) as span:
            span.set_attribute("token", token)
            span.set_attribute("order.items", 3)
            span.set_attribute("order.total", 12.5)
            span.set_attribute("order.paid", False)
            span.set_attribute("order.tags", ["a", "b"])
            try:
                raise ValueError(f"card declined {token}")
            except ValueError as exc:
                span.record_exception(exc, attributes={"handled": True})
                span.set_status(Status(StatusCode.ERROR, "card declined"))
    finally:
        provider.shutdown()


def _assert_failure_span(span: ReceivedSpan, token: str) -> None:
    # faultspan's instrumentor may be active in this test process; its additions are tested elsewhere.
    attributes = {key: value for key, value in span.attributes.items() if not key.startswith("faultspan.")}
    assert attributes == {
        "token": token,
        "order.items": 3,
        "order.total": 12.5,
        "order.paid": False,
        "order.tags": ["a", "b"],
    }
    assert len(span.trace_id) == 32 and len(span.span_id) == 16 and span.parent_span_id == ""
    (event,) = span.events_named("exception")
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == f"card declined {token}"
    assert "Traceback" in str(event.attributes["exception.stacktrace"])
    assert event.attributes["handled"] is True
    assert event.time_unix_nano >= span.start_time_unix_nano
    assert span.status_code == STATUS_CODE_ERROR
    assert span.status_message == "card declined"
    assert span.resource["service.name"] == "collector-fixture"
    assert span.resource["test.token"] == token
    assert span.resource["telemetry.sdk.language"] == "python"
    assert span.scope_name == "tests.collector_fixture"
    assert span.scope_version == "1.2.3"


def test_grpc_span_passes_through_rotel_intact(collector: RotelCollector, otlp_sink: OtlpSink) -> None:
    token = uuid.uuid4().hex
    _emit_failure_span(GrpcSpanExporter(endpoint=collector.grpc_endpoint, insecure=True), token)

    span = otlp_sink.wait_for_span("checkout")
    _assert_failure_span(span, token)
    assert token.encode() in otlp_sink.raw_bytes()
    assert otlp_sink.rejected == 0


def test_http_span_passes_through_rotel_intact(collector: RotelCollector, otlp_sink: OtlpSink) -> None:
    token = uuid.uuid4().hex
    _emit_failure_span(HttpSpanExporter(endpoint=f"{collector.http_endpoint}/v1/traces"), token)

    span = otlp_sink.wait_for_span("checkout")
    _assert_failure_span(span, token)
    assert token.encode() in otlp_sink.raw_bytes()


SUBPROCESS_APP = r"""
import os, sys
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

if os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
else:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

provider = TracerProvider(resource=Resource.create())
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
tracer = provider.get_tracer("subprocess-app")
with tracer.start_as_current_span("parent"):
    with tracer.start_as_current_span("child") as span:
        span.set_attribute("token", sys.argv[1])
        try:
            {}["missing"]
        except KeyError as exc:
            span.record_exception(exc)
provider.shutdown()
print("exported", flush=True)
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_subprocess_sdk_configured_by_env_reaches_sink(
    collector: RotelCollector,
    otlp_sink: OtlpSink,
    otel_env: dict[str, str],
    tmp_path: Path,
    protocol: Literal["grpc", "http/protobuf"],
) -> None:
    token = uuid.uuid4().hex
    env = {
        **otel_env,
        **collector.exporter_env(protocol),
        "OTEL_SERVICE_NAME": "subprocess-app",
        "OTEL_RESOURCE_ATTRIBUTES": f"test.token={token}",
    }
    result = subprocess.run(
        [sys.executable, "-c", SUBPROCESS_APP, token],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "exported"

    spans = otlp_sink.wait_for(lambda spans: {"parent", "child"} <= {s.name for s in spans})
    by_name = {s.name: s for s in spans}
    parent, child = by_name["parent"], by_name["child"]
    assert child.trace_id == parent.trace_id
    assert child.parent_span_id == parent.span_id
    assert child.attributes == {"token": token}
    (event,) = child.events_named("exception")
    assert event.attributes["exception.type"] == "KeyError"
    assert child.resource["service.name"] == "subprocess-app"
    assert child.resource["test.token"] == token
    assert child.scope_name == "subprocess-app"


def _refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True


def test_stop_terminates_the_collector_pid(collector: RotelCollector) -> None:
    pid = collector.pid
    assert collector.running
    assert Path(f"/proc/{pid}").exists()

    assert collector.stop() == 0  # SIGTERM: graceful exit
    assert not collector.running
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert _refuses(collector.grpc_port)
    assert _refuses(collector.http_port)
    assert collector.last_stop_seconds is not None and collector.last_stop_seconds < 2.0
    assert collector.stop() == 0  # idempotent


def test_restart_keeps_endpoints_and_delivers(collector: RotelCollector, otlp_sink: OtlpSink) -> None:
    endpoint, first_pid = collector.grpc_endpoint, collector.pid
    collector.restart()
    assert collector.running
    assert collector.grpc_endpoint == endpoint
    assert collector.pid != first_pid
    assert not Path(f"/proc/{first_pid}").exists()

    token = uuid.uuid4().hex
    _emit_failure_span(GrpcSpanExporter(endpoint=endpoint, insecure=True), token)
    _assert_failure_span(otlp_sink.wait_for_span("checkout"), token)


def test_sink_unavailable_then_recovered_rotel_retries(
    collector: RotelCollector, otlp_sink: OtlpSink
) -> None:
    otlp_sink.fail_with(grpc.StatusCode.UNAVAILABLE)
    token = uuid.uuid4().hex
    _emit_failure_span(GrpcSpanExporter(endpoint=collector.grpc_endpoint, insecure=True), token)

    otlp_sink.wait_for_attempts(2)  # rotel got UNAVAILABLE at least twice and kept the data
    assert otlp_sink.spans() == []
    otlp_sink.fail_with(None)

    _assert_failure_span(otlp_sink.wait_for_span("checkout"), token)
    assert otlp_sink.rejected >= 2


def test_wait_for_timeout_reports_what_arrived(otlp_sink: OtlpSink) -> None:
    with pytest.raises(AssertionError, match=r"0 export attempts .* 0 spans"):
        otlp_sink.wait_for(bool, timeout=0.05)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_busy_port_is_retried_with_fresh_ports(otlp_sink: OtlpSink, busy_port: int, tmp_path: Path) -> None:
    ports = iter([busy_port, free_port()])

    def factory() -> int:
        return next(ports, None) or free_port()

    with RotelCollector(otlp_sink.endpoint, log_dir=tmp_path, port_factory=factory) as rotel:
        assert rotel.grpc_port != busy_port
        assert "Address already in use" in rotel.log_text()
        assert rotel.running


def test_busy_explicit_port_fails_fast_with_log(otlp_sink: OtlpSink, busy_port: int, tmp_path: Path) -> None:
    rotel = RotelCollector(otlp_sink.endpoint, log_dir=tmp_path, grpc_port=busy_port, http_port=free_port())
    with pytest.raises(CollectorStartError, match="Address already in use"):
        rotel.start()
    assert not rotel.running
    rotel.close()


def test_otel_env_has_no_otel_variables(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "leaked")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://leaked:4317")
    env: dict[str, str] = request.getfixturevalue("otel_env")
    assert not [key for key in env if key.startswith("OTEL_")]
    assert env["PATH"] == os.environ["PATH"]
