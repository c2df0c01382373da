"""Live delivery and ``faultspan push`` agree on every answer an OTLP endpoint can give (docs/delivery.md).

Each gRPC status and each HTTP code is answered by a real loopback receiver to both: durable delivery
(an SDK OTLP exporter behind ``DurableSpanProcessor``, one attempt, then sent / spooled / given up) and the
push verb (sent / "unreachable" / failed).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

import test_packages
from faultspan._otlp.transport import TRACES, Outcome, grpc_outcome, http_outcome, split
from faultspan._pipeline.durable import DurableSpanProcessor, transport_for
from faultspan._pipeline.processor import RedactOnce
from faultspan._pipeline.spool import Spool
from faultspan.cli import main
from faultspan.packages.format import read_package
from support.collector import OtlpSink
from support.otlp_http import HttpStatusSink

fresh_runtime = test_packages.fresh_runtime
new_exporter = test_packages.new_exporter
package_dir = test_packages.package_dir
valid_package = test_packages.valid_package

# The table of docs/delivery.md, written out again: the code must match what the documentation promises.
GRPC_TABLE = {
    "OK": Outcome.SENT,
    **dict.fromkeys(
        (
            "CANCELLED",
            "UNKNOWN",
            "DEADLINE_EXCEEDED",
            "PERMISSION_DENIED",
            "RESOURCE_EXHAUSTED",
            "ABORTED",
            "OUT_OF_RANGE",
            "INTERNAL",
            "UNAVAILABLE",
            "DATA_LOSS",
            "UNAUTHENTICATED",
        ),
        Outcome.RETRY,
    ),
    **dict.fromkeys(
        ("INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS", "FAILED_PRECONDITION", "UNIMPLEMENTED"),
        Outcome.REJECTED,
    ),
}
HTTP_TABLE = {
    **dict.fromkeys((200, 202), Outcome.SENT),
    **dict.fromkeys((401, 403, 408, 429, 500, 501, 502, 503, 504), Outcome.RETRY),
    **dict.fromkeys((400, 404, 405, 409, 410, 415, 422), Outcome.REJECTED),
    413: Outcome.TOO_LARGE,
}


def test_the_table_covers_every_grpc_status() -> None:
    assert set(GRPC_TABLE) == {code.name for code in grpc.StatusCode}
    assert {name: grpc_outcome(name) for name in GRPC_TABLE} == GRPC_TABLE
    assert {status: http_outcome(status) for status in HTTP_TABLE} == HTTP_TABLE


def live_outcome(exporter: SpanExporter, spool_dir: Path) -> Outcome:
    """One batch through durable delivery: SENT when it went out, RETRY when it was spooled for later,
    REJECTED when it was given up."""
    transport = transport_for(exporter)
    assert transport is not None
    durable = DurableSpanProcessor(
        exporter, transport, Spool(spool_dir, 1 << 20), RedactOnce(), max_queue_size=512
    )
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(durable)
    tracer = provider.get_tracer("retry-table")
    try:
        with tracer.start_as_current_span("root"), tracer.start_as_current_span("child") as child:
            child.record_exception(ValueError("planned"))
        assert durable.force_flush(10_000)
    finally:
        sent, spooled = durable.sent, durable.spooled
        durable.shutdown()
    assert (sent, spooled) in ((0, 0), (2, 0), (0, 2)), (sent, spooled)
    return Outcome.SENT if sent else Outcome.RETRY if spooled else Outcome.REJECTED


@pytest.fixture
def push_outcome(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], valid_package: Path, tmp_path: Path
) -> Iterator[object]:
    def run(endpoint: str, protocol: str) -> Outcome:
        for name in os.environ:
            if name.startswith("OTEL_EXPORTER_OTLP_"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "0.5")  # a retried answer: one attempt, then give up
        directory = tmp_path / f"push-{len(list(tmp_path.iterdir()))}"
        directory.mkdir()
        shutil.copy(valid_package, directory)
        capsys.readouterr()
        code = main(["push", str(directory)])
        out, err = capsys.readouterr()
        if code == 0:
            assert out.startswith("pushed 1 "), out
            return Outcome.SENT
        if "unreachable" in err:
            return Outcome.RETRY
        assert " 1 failed" in out, out + err
        return Outcome.REJECTED

    yield run


@pytest.mark.parametrize("name", sorted(GRPC_TABLE))
def test_live_delivery_and_push_agree_on_every_grpc_status(
    name: str, push_outcome: object, otlp_sink: OtlpSink, tmp_path: Path
) -> None:
    code = grpc.StatusCode[name]
    otlp_sink.fail_with(None if code is grpc.StatusCode.OK else code)
    live = live_outcome(GrpcExporter(endpoint=otlp_sink.url, insecure=True), tmp_path / "spool")
    pushed = push_outcome(otlp_sink.url, "grpc")  # type: ignore[operator]
    assert live is pushed is GRPC_TABLE[name]


@pytest.mark.parametrize("status", sorted(HTTP_TABLE))
def test_live_delivery_and_push_agree_on_every_http_status(
    status: int, push_outcome: object, tmp_path: Path
) -> None:
    with HttpStatusSink() as sink:
        sink.status = status
        url = f"{sink.url}/v1/traces"
        live = live_outcome(HttpExporter(endpoint=url), tmp_path / "spool")
        pushed = push_outcome(sink.url, "http/protobuf")  # type: ignore[operator]
    # A request too large for the endpoint is sent in halves; one span too large is never deliverable.
    expected = Outcome.REJECTED if HTTP_TABLE[status] is Outcome.TOO_LARGE else HTTP_TABLE[status]
    assert live is pushed is expected


def spans_per_request(sink: HttpStatusSink) -> list[int]:
    return [len(request.resource_spans[0].scope_spans[0].spans) for request in sink.accepted]


def test_a_request_too_large_is_delivered_in_halves_by_both(
    push_outcome: object, valid_package: Path, tmp_path: Path
) -> None:
    with HttpStatusSink() as sink:

        def live() -> Outcome:
            return live_outcome(HttpExporter(endpoint=f"{sink.url}/v1/traces"), tmp_path / "spool")

        assert live() is Outcome.SENT
        (live_request,) = sink.accepted  # what durable delivery sends for two spans
        pushed_request = read_package(valid_package).request
        for whole, deliver in (
            (live_request, live),
            (pushed_request, lambda: push_outcome(sink.url, "http/protobuf")),  # type: ignore[operator]
        ):
            sink.max_body = max(map(len, split(TRACES, whole.SerializeToString())))  # a half fits, not both
            assert whole.ByteSize() > sink.max_body
            sink.accepted.clear()
            assert deliver() is Outcome.SENT
            assert spans_per_request(sink) == [1, 1]


def test_a_long_outage_is_reported_once_with_what_waits_in_the_spool(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from faultspan._pipeline import durable as durable_module

    monkeypatch.setattr(durable_module, "OUTAGE_WARNING_SECONDS", 0.0)
    with OtlpSink() as sink:
        sink.fail_with(grpc.StatusCode.UNAVAILABLE)
        exporter = GrpcExporter(endpoint=sink.endpoint, insecure=True)
        transport = transport_for(exporter)
        assert transport is not None
        spool = Spool(tmp_path, 1 << 20)
        durable = DurableSpanProcessor(exporter, transport, spool, RedactOnce(), max_queue_size=512)
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(durable)
        try:
            with caplog.at_level("WARNING", logger="faultspan"):
                with provider.get_tracer("outage").start_as_current_span("waits"):
                    pass
                durable.force_flush(10_000)
                sink.wait_for_attempts(4)  # the first attempt, then the sender's retries of the spool
                reports = [record for record in caplog.records if "has taken nothing" in record.getMessage()]
        finally:
            sink.fail_with(None)
            durable.shutdown()
    (report,) = reports
    assert str(tmp_path) in report.getMessage()
    assert " bytes wait in the spool " in report.getMessage()
