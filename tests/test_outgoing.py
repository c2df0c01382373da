"""Outgoing calls in the failure's trail: two HTTP calls to a real local server and a sqlite3 query, with and
without the official client instrumentations, as real subprocesses through the rotel collector."""

from __future__ import annotations

import asyncio
import http.client
import http.server
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.trace import SpanKind

import faultspan
from apps.outgoing_app import Inventory
from conftest import Pipeline
from faultspan._pipeline import breadcrumbs
from faultspan_instrumentation.outgoing import OutgoingInstrumentor
from support.collector import OtlpSink, ReceivedSpan, RotelCollector
from support.hooks import assert_idempotent_and_reversible
from support.instrumented import run_instrumented

APP = Path(__file__).parent / "apps" / "outgoing_app.py"
HTTPX_APP = Path(__file__).parent / "apps" / "outgoing_httpx_app.py"
API_KEY = "EXAMPLEsecretKey000111222333"
UNRELATED = "faultspan_flask,faultspan_django,faultspan_fastapi,flask,django,fastapi"
OFFICIAL = "urllib,requests,sqlite3,httpx,httpx2"
CLIENT = 3  # OTLP SpanKind


def failed_job(spans: list[ReceivedSpan]) -> bool:
    return any(span.name == "job" and span.events_named("exception") for span in spans)


Summary = tuple[object, object, object, object]


def run_failing_job(
    app: Path,
    disabled: str,
    *,
    collector: RotelCollector,
    otlp_sink: OtlpSink,
    env: dict[str, str],
    spool: Path,
) -> tuple[list[Summary], list[ReceivedSpan]]:
    """Run ``app`` under opentelemetry-instrument; its failing job's crumbs, in order, as (category, url or
    message, status code, level), and the CLIENT spans (checked to be the job's children ended before the
    failure). The crumbs precede the failure and the planted secret never leaves the process."""
    run_instrumented(
        app,
        env=env,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_PYTHON_FAULTSPAN_SPOOL_DIR=str(spool),
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled,
        **collector.exporter_env("grpc"),
    )
    spans = otlp_sink.wait_for(failed_job)
    (job,) = [span for span in spans if span.name == "job"]
    crumbs = sorted(job.events_named("breadcrumb"), key=lambda event: event.time_unix_nano)
    (failure,) = job.events_named("exception")
    assert all(crumb.time_unix_nano <= failure.time_unix_nano for crumb in crumbs)
    assert all(crumb.attributes.get("breadcrumb.data.method", "GET") == "GET" for crumb in crumbs)
    # The official instrumentations' CLIENT spans are children of the job that ended before it failed: in
    # the trace, but not in the failing span's events, hence the breadcrumbs.
    clients = [span for span in spans if span.kind == CLIENT]
    assert all(span.parent_span_id == job.span_id for span in clients)
    assert all(span.end_time_unix_nano <= failure.time_unix_nano for span in clients)
    assert API_KEY.encode() not in otlp_sink.raw_bytes()
    summary = [
        (
            crumb.attributes["breadcrumb.category"],
            crumb.attributes.get("breadcrumb.data.url", crumb.attributes["breadcrumb.message"]),
            crumb.attributes.get("breadcrumb.data.status_code"),
            crumb.attributes["breadcrumb.level"],
        )
        for crumb in crumbs
    ]
    return summary, clients


MODES = [
    pytest.param(UNRELATED, True, id="official-and-faultspan_outgoing"),
    pytest.param(f"{UNRELATED},faultspan_outgoing", True, id="official-only"),
    pytest.param(f"{UNRELATED},{OFFICIAL}", False, id="faultspan_outgoing-only"),
]


@pytest.mark.parametrize(("disabled", "official"), MODES)
def test_calls_and_query_are_in_the_failing_spans_trail_once(
    disabled: str,
    official: bool,
    *,
    collector: RotelCollector,
    otlp_sink: OtlpSink,
    otel_env: dict[str, str],
    tmp_path: Path,
) -> None:
    summary, clients = run_failing_job(
        APP, disabled, collector=collector, otlp_sink=otlp_sink, env=otel_env, spool=tmp_path
    )
    base = str(summary[0][1]).removesuffix("/stock/A-7")
    assert summary == [
        ("http", f"{base}/stock/A-7", 200, "info"),
        ("http", f"{base}/price/A-7?api_key=[REDACTED]", 503, "error"),
        ("query", "select 1 as reserved", None, "info"),
    ]
    assert len(clients) == (3 if official else 0)


@pytest.mark.parametrize(("disabled", "official"), MODES)
def test_httpx_calls_are_in_the_failing_spans_trail_once(
    disabled: str,
    official: bool,
    *,
    collector: RotelCollector,
    otlp_sink: OtlpSink,
    otel_env: dict[str, str],
    tmp_path: Path,
) -> None:
    summary, clients = run_failing_job(
        HTTPX_APP, disabled, collector=collector, otlp_sink=otlp_sink, env=otel_env, spool=tmp_path
    )
    base = str(summary[0][1]).removesuffix("/stock/A-7")
    refused = str(summary[3][1]).removesuffix("/reserve/A-7")
    assert summary == [
        ("http", f"{base}/stock/A-7", 200, "info"),
        ("http", f"{base}/price/A-7?api_key=[REDACTED]", 503, "error"),
        ("http", f"{base}/gone/A-7", 404, "warning"),
        ("http", f"{refused}/reserve/A-7", None, "error"),
    ]
    assert refused != base
    assert len(clients) == (4 if official else 0)


def test_uninstrument_restores_http_client_sqlite3_and_httpx_exactly() -> None:
    def hooks() -> list[object]:
        return [
            vars(http.client.HTTPConnection)["putrequest"],
            vars(http.client.HTTPConnection)["getresponse"],
            sqlite3.connect,
            sqlite3.dbapi2.connect,
            vars(httpx.Client)["send"],
            vars(httpx.AsyncClient)["send"],
        ]

    assert_idempotent_and_reversible(OutgoingInstrumentor(), hooks)


def test_query_is_a_crumb_once_whether_or_not_a_client_span_traces_it(pipeline: Pipeline) -> None:
    """``Connection.execute`` is a C shortcut the official sqlite3 instrumentation does not trace: the
    fallback covers it. Inside a CLIENT span (an official instrumentation at work) it stays quiet."""
    instrumentor = OutgoingInstrumentor()
    instrumentor.instrument()
    try:
        database = sqlite3.connect(":memory:")
        with pipeline.tracer.start_as_current_span("job"):
            database.execute("select 3 as shortcut")
            with pipeline.tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT):
                database.cursor().execute("select 4 as traced")
            faultspan.capture_exception(ValueError("job failed"))
        database.close()
    finally:
        instrumentor.uninstrument()
    spans = {span.name: span for span in pipeline.spans()}
    crumbs = [event for event in spans["job"].events if event.name == "breadcrumb"]
    assert [event.attributes["breadcrumb.message"] for event in crumbs] == ["select 3 as shortcut"]
    assert not spans["SELECT"].events


@pytest.fixture
def inventory() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Inventory)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(("faultspan_outgoing",), id="faultspan_outgoing-only"),
        pytest.param(("faultspan_outgoing", "official"), id="faultspan_outgoing-first"),
        pytest.param(("official", "faultspan_outgoing"), id="official-first"),
    ],
)
def test_httpx_call_is_a_crumb_once_whichever_instrumentor_loads_first(
    order: tuple[str, ...], pipeline: Pipeline, inventory: str
) -> None:
    """The official instrumentation wraps the class transports whenever it loads, below ``send``: the crumb
    comes from its CLIENT span when it traces the call, from ``faultspan_outgoing`` otherwise, never both."""
    instrumentors = {"faultspan_outgoing": OutgoingInstrumentor(), "official": HTTPXClientInstrumentor()}

    async def job() -> tuple[int, list[breadcrumbs.Crumb]]:
        with pipeline.tracer.start_as_current_span("job") as span:
            with httpx.Client() as client:
                client.get(f"{inventory}/stock/A-7")
            async with httpx.AsyncClient() as asynchronous:
                await asynchronous.get(f"{inventory}/gone/A-7")
            ids = span.get_span_context()
            return ids.span_id, [crumb for crumb in breadcrumbs.trail() if crumb.trace_id == ids.trace_id]

    for name in order:
        instrumentors[name].instrument(tracer_provider=pipeline.provider)
    try:
        job_id, trail = asyncio.run(job())
    finally:
        for name in reversed(order):
            instrumentors[name].uninstrument()
    assert [(crumb.category, crumb.data["url"], crumb.data["status_code"]) for crumb in trail] == [
        ("http", f"{inventory}/stock/A-7", 200),
        ("http", f"{inventory}/gone/A-7", 404),
    ]
    # An official crumb belongs to the call's CLIENT span, a faultspan_outgoing one to the job.
    official = "official" in order
    assert all((crumb.span_id != job_id) is official for crumb in trail)
