"""Outgoing calls in the failure's trail: two HTTP calls to a real local server and a sqlite3 query, with and
without the official client instrumentations, as real subprocesses through the rotel collector."""

from __future__ import annotations

import http.client
import sqlite3
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind

from conftest import Pipeline
from faultspan_instrumentation.outgoing import OutgoingInstrumentor
from support.collector import OtlpSink, ReceivedSpan, RotelCollector
from support.hooks import assert_idempotent_and_reversible
from support.instrumented import run_instrumented

APP = Path(__file__).parent / "apps" / "outgoing_app.py"
API_KEY = "EXAMPLEsecretKey000111222333"
UNRELATED = "faultspan_flask,faultspan_django,faultspan_fastapi,flask,django,fastapi"
OFFICIAL = "urllib,requests,sqlite3,httpx,httpx2"
CLIENT = 3  # OTLP SpanKind


def failed_job(spans: list[ReceivedSpan]) -> bool:
    return any(span.name == "job" and span.events_named("exception") for span in spans)


@pytest.mark.parametrize(
    ("disabled", "client_spans"),
    [
        pytest.param(UNRELATED, 3, id="official-and-faultspan_outgoing"),
        pytest.param(f"{UNRELATED},faultspan_outgoing", 3, id="official-only"),
        pytest.param(f"{UNRELATED},{OFFICIAL}", 0, id="faultspan_outgoing-only"),
    ],
)
def test_calls_and_query_are_in_the_failing_spans_trail_once(
    disabled: str,
    client_spans: int,
    *,
    collector: RotelCollector,
    otlp_sink: OtlpSink,
    otel_env: dict[str, str],
    tmp_path: Path,
) -> None:
    run_instrumented(
        APP,
        env=otel_env,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_PYTHON_FAULTSPAN_SPOOL_DIR=str(tmp_path),
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled,
        **collector.exporter_env("grpc"),
    )
    spans = otlp_sink.wait_for(failed_job)
    (job,) = [span for span in spans if span.name == "job"]
    crumbs = sorted(job.events_named("breadcrumb"), key=lambda event: event.time_unix_nano)
    (failure,) = job.events_named("exception")
    assert all(crumb.time_unix_nano <= failure.time_unix_nano for crumb in crumbs)
    summary = [
        (
            crumb.attributes["breadcrumb.category"],
            crumb.attributes.get("breadcrumb.data.url", crumb.attributes["breadcrumb.message"]),
            crumb.attributes.get("breadcrumb.data.status_code"),
            crumb.attributes["breadcrumb.level"],
        )
        for crumb in crumbs
    ]
    base = str(summary[0][1]).removesuffix("/stock/A-7")
    assert summary == [
        ("http", f"{base}/stock/A-7", 200, "info"),
        ("http", f"{base}/price/A-7?api_key=[REDACTED]", 503, "error"),
        ("query", "select 1 as reserved", None, "info"),
    ]
    assert crumbs[0].attributes["breadcrumb.data.method"] == "GET"
    assert crumbs[2].attributes["breadcrumb.data.db.system"] == "sqlite"
    # The official instrumentations' CLIENT spans are children of the job that ended before it failed: in
    # the trace, but not in the failing span's events, hence the breadcrumbs.
    clients = [span for span in spans if span.kind == CLIENT]
    assert len(clients) == client_spans
    assert all(span.parent_span_id == job.span_id for span in clients)
    assert all(span.end_time_unix_nano <= failure.time_unix_nano for span in clients)
    assert API_KEY.encode() not in otlp_sink.raw_bytes()


def test_uninstrument_restores_http_client_and_sqlite3_exactly() -> None:
    def hooks() -> list[object]:
        return [
            vars(http.client.HTTPConnection)["putrequest"],
            vars(http.client.HTTPConnection)["getresponse"],
            sqlite3.connect,
            sqlite3.dbapi2.connect,
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
        database.close()
    finally:
        instrumentor.uninstrument()
    spans = {span.name: span for span in pipeline.spans()}
    assert [event.attributes["breadcrumb.message"] for event in spans["job"].events] == [
        "select 3 as shortcut"
    ]
    assert not spans["SELECT"].events
