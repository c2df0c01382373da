"""Durable delivery sends as the wrapped OTLP exporter would: headers, certificates and channel credentials
given in code reach the receiver through faultspan's own transport (live sends and the spool drain), and
nothing secret is written to the spool (docs/delivery.md).

Every receiver here is a real loopback server that refuses a request without its credentials: 401 or
UNAUTHENTICATED for a missing header, a failed handshake for a missing client certificate.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import requests
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

import test_packages
from faultspan._capture import runtime
from faultspan._pipeline.durable import DurableSpanProcessor, durable_processor, wiring
from faultspan._pipeline.processor import RedactOnce
from faultspan._pipeline.spool import DESTINATION
from faultspan.cli import main
from support.collector import OtlpSink
from support.otlp_http import HttpStatusSink
from support.tls import Material, material

fresh_runtime = test_packages.fresh_runtime

TOKEN = "Bearer synthetic-token-4f1c"
AUTHORIZATION = ("authorization", TOKEN)


@pytest.fixture
def spool_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No OTLP variable set (nor requests' CA bundles, which win over an exporter's certificate file), the
    spool in ``tmp_path``."""
    for name in os.environ:
        if name.startswith("OTEL_EXPORTER_OTLP_") or name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            monkeypatch.delenv(name)
    directory = tmp_path / "spool"
    monkeypatch.setenv("OTEL_PYTHON_FAULTSPAN_SPOOL_DIR", str(directory))
    runtime.load()
    return directory


@pytest.fixture
def tls(tmp_path: Path) -> Material:
    directory = tmp_path / "tls"
    directory.mkdir()
    return material(directory)


def requiring_client_certificates(tls: Material) -> ssl.SSLContext:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=tls.ca)
    server.load_cert_chain(tls.server_certificate, tls.server_key)
    server.verify_mode = ssl.CERT_REQUIRED
    return server


def durable(exporter: SpanExporter) -> DurableSpanProcessor:
    processor = durable_processor(exporter, RedactOnce())
    assert isinstance(processor, DurableSpanProcessor)
    return processor


def end_spans(processor: SpanProcessor, count: int = 2) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("auth")
    for index in range(count):
        with tracer.start_as_current_span(f"span-{index}"):
            pass
    assert processor.force_flush(10_000)


def spool_files(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes() for path in directory.rglob("*") if path.is_file()
    }


def assert_no_secret(directory: Path) -> None:
    files = spool_files(directory)
    assert any(name.endswith(DESTINATION) for name in files), files
    for name, content in files.items():
        assert b"synthetic-token" not in content, name


def live_then_spooled_then_drained(
    processor: DurableSpanProcessor,
    spool: Path,
    refuse: Callable[[bool], None],
    arrived: Callable[[int], object],
) -> None:
    """Two spans sent live, two spooled while the receiver is down (nothing secret on disk), then drained
    by the sender once it is back: all through faultspan's transport."""
    try:
        end_spans(processor)
        assert (processor.sent, processor.spooled) == (2, 0)
        arrived(2)
        refuse(True)
        end_spans(processor)
        assert (processor.sent, processor.spooled) == (2, 2)
        assert_no_secret(spool)
        refuse(False)
        arrived(4)
    finally:
        processor.shutdown()


def test_http_headers_given_in_code_are_sent_merged_with_the_environments(
    spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-from-env=1,authorization=wrong")
    with HttpStatusSink(require_header=AUTHORIZATION) as sink:
        exporter = HttpExporter(
            endpoint=f"{sink.url}/v1/traces", headers={"Authorization": TOKEN}, compression=Compression.Gzip
        )

        def refuse(down: bool) -> None:
            sink.status = 503 if down else 200

        live_then_spooled_then_drained(durable(exporter), spool_dir, refuse, sink.wait_for_spans)
        assert len(sink.headers) >= 2
        for headers in sink.headers:  # the SDK's merge: the code's header wins, the environment's stays
            assert (headers["authorization"], headers["x-from-env"]) == (TOKEN, "1")
            assert headers["content-encoding"] == "gzip"


def test_grpc_headers_given_in_code_are_sent(spool_dir: Path) -> None:
    with OtlpSink(require_metadata=AUTHORIZATION) as sink:
        exporter = GrpcExporter(endpoint=sink.url, insecure=True, headers={"authorization": TOKEN})

        def refuse(down: bool) -> None:
            sink.fail_with(grpc.StatusCode.UNAVAILABLE if down else None)

        live_then_spooled_then_drained(durable(exporter), spool_dir, refuse, sink.wait_for_spans)
        assert {metadata["authorization"] for metadata in sink.metadata} == {TOKEN}


def test_grpc_channel_credentials_given_in_code_are_used(spool_dir: Path, tls: Material) -> None:
    server = grpc.ssl_server_credentials(
        [(tls.server_key.read_bytes(), tls.server_certificate.read_bytes())],
        root_certificates=tls.ca.read_bytes(),
        require_client_auth=True,
    )
    credentials = grpc.ssl_channel_credentials(
        tls.ca.read_bytes(), tls.client_key.read_bytes(), tls.client_certificate.read_bytes()
    )
    with OtlpSink(server_credentials=server) as sink:
        exporter = GrpcExporter(endpoint=f"https://{sink.endpoint}", credentials=credentials)

        def refuse(down: bool) -> None:
            sink.fail_with(grpc.StatusCode.UNAVAILABLE if down else None)

        live_then_spooled_then_drained(durable(exporter), spool_dir, refuse, sink.wait_for_spans)


def client_certificate_exporter(sink: HttpStatusSink, tls: Material) -> HttpExporter:
    """An HTTP exporter given the CA and a client certificate and key in code."""
    return HttpExporter(
        endpoint=f"{sink.url}/v1/traces",
        certificate_file=str(tls.ca),
        client_certificate_file=str(tls.client_certificate),
        client_key_file=str(tls.client_key),
    )


def test_http_certificate_and_client_certificate_given_in_code_are_used(
    spool_dir: Path, tls: Material
) -> None:
    with HttpStatusSink(tls=requiring_client_certificates(tls)) as sink:
        exporter = client_certificate_exporter(sink, tls)

        def refuse(down: bool) -> None:
            sink.status = 503 if down else 200

        live_then_spooled_then_drained(durable(exporter), spool_dir, refuse, sink.wait_for_spans)


def test_a_session_faultspan_cannot_carry_sends_through_the_exporter(spool_dir: Path) -> None:
    def bearer(request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = TOKEN
        return request

    session = requests.Session()
    session.auth = bearer
    with HttpStatusSink(require_header=AUTHORIZATION) as sink:
        exporter = HttpExporter(endpoint=f"{sink.url}/v1/traces", session=session)
        processor = wiring(exporter, RedactOnce())
        assert not isinstance(processor, DurableSpanProcessor)
        try:
            end_spans(processor)
            sink.wait_for_spans(2)
        finally:
            processor.shutdown()
    assert not spool_dir.exists()


def test_headers_from_the_environment_are_sent_and_a_later_drain_uses_them(
    spool_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", f"authorization={TOKEN}")
    with HttpStatusSink(require_header=AUTHORIZATION) as sink:
        processor = durable(HttpExporter(endpoint=f"{sink.url}/v1/traces"))
        try:
            end_spans(processor)
            sink.wait_for_spans(2)
            sink.status = 503
            end_spans(processor)
            assert (processor.sent, processor.spooled) == (2, 2)
        finally:
            processor.shutdown()  # the receiver is down: the spans stay in the spool for a later process
        assert_no_secret(spool_dir)
        sink.status = 200
        assert main(["spool", str(spool_dir), "--drain"]) == 0, capsys.readouterr()
        assert sink.wait_for_spans(4) == 4
        assert {headers["authorization"] for headers in sink.headers} == {TOKEN}


def test_a_drain_uses_the_variables_client_certificate(
    spool_dir: Path, tls: Material, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with HttpStatusSink(tls=requiring_client_certificates(tls)) as sink:
        exporter = client_certificate_exporter(sink, tls)
        processor = durable(exporter)
        sink.status = 503
        try:
            end_spans(processor)
            assert processor.spooled == 2
        finally:
            processor.shutdown()
        sink.status = 200
        for name, path in (
            ("CERTIFICATE", tls.ca),
            ("CLIENT_CERTIFICATE", tls.client_certificate),
            ("CLIENT_KEY", tls.client_key),
        ):
            monkeypatch.setenv(f"OTEL_EXPORTER_OTLP_TRACES_{name}", str(path))
        assert main(["spool", str(spool_dir), "--drain"]) == 0, capsys.readouterr()
        assert sink.wait_for_spans(2) == 2
