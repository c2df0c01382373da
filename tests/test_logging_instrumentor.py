"""faultspan_logging: log lines as breadcrumbs on the failing span, ``logger.exception()`` captured, secrets
masked before the collector (real subprocess under opentelemetry-instrument, real rotel collector)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import faultspan
from conftest import Pipeline
from faultspan_instrumentation.logging import LoggingInstrumentor
from support.collector import OtlpSink, ReceivedSpan, RotelCollector
from support.instrumented import run_instrumented

APP = Path(__file__).parent / "apps" / "logging_app.py"
SECRET = "hunter2-Pa55word"
UNRELATED = "faultspan_flask,faultspan_django,faultspan_fastapi,flask,django,fastapi"


def failed_job(spans: list[ReceivedSpan]) -> bool:
    return any(span.name == "job" and span.events_named("exception") for span in spans)


def crumbs(span: ReceivedSpan) -> list[tuple[object, object, object]]:
    return [
        (
            event.attributes["breadcrumb.category"],
            event.attributes["breadcrumb.level"],
            event.attributes["breadcrumb.message"],
        )
        for event in span.events_named("breadcrumb")
    ]


INFO_AND_UP = [
    ("shop.orders", "info", "loading order 7"),
    ("shop.db", "warning", "slow connect to postgres://shop:[REDACTED]@db.internal/orders"),
]  # "order 7 failed" carries the exception: it reports the failure, it is no crumb of it


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("", INFO_AND_UP),
        ("DEBUG", [("shop.orders", "debug", "cache warm, 12 entries"), *INFO_AND_UP]),
        ("WARNING", INFO_AND_UP[1:]),
    ],
)
def test_log_lines_are_the_failing_spans_trail(
    level: str,
    expected: list[tuple[str, str, str]],
    *,
    collector: RotelCollector,
    otlp_sink: OtlpSink,
    otel_env: dict[str, str],
    tmp_path: Path,
) -> None:
    env = {**otel_env, "OTEL_PYTHON_FAULTSPAN_LOG_LEVEL": level} if level else otel_env
    result = run_instrumented(
        APP,
        env=env,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_PYTHON_FAULTSPAN_SPOOL_DIR=str(tmp_path),
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=UNRELATED,
        **collector.exporter_env("grpc"),
    )
    assert "INFO shop.orders loading order 7" in result.stderr  # the app's own logging still works
    (job,) = [span for span in otlp_sink.wait_for(failed_job) if span.name == "job"]
    assert crumbs(job) == expected
    logger_names = [event.attributes["breadcrumb.data.logger"] for event in job.events_named("breadcrumb")]
    assert logger_names == [category for category, _, _ in expected]
    (exception,) = job.events_named("exception")
    assert exception.attributes["exception.type"] == "KeyError"
    frames = json.loads(str(exception.attributes["faultspan.frames"]))
    assert frames[-1]["function"] == "load"
    assert frames[-1]["locals"]["order_id"] == "7"
    assert SECRET.encode() not in otlp_sink.raw_bytes()


def test_own_and_opentelemetry_loggers_do_not_feed_back(pipeline: Pipeline) -> None:
    instrumentor = LoggingInstrumentor()
    instrumentor.instrument()
    try:
        with pipeline.tracer.start_as_current_span("job"):
            logging.getLogger("faultspan.delivery").warning("faultspan talking")
            logging.getLogger("opentelemetry.sdk.trace").warning("sdk talking")
            logging.getLogger("app").warning("app talking")
            faultspan.capture_exception(ValueError("job failed"))
    finally:
        instrumentor.uninstrument()
    (job,) = pipeline.spans()
    crumbs = [event.attributes["breadcrumb.message"] for event in job.events if event.name == "breadcrumb"]
    assert crumbs == ["app talking"]


def test_uninstrument_restores_call_handlers_exactly() -> None:
    before = vars(logging.Logger)["callHandlers"]
    handlers = list(logging.getLogger().handlers)
    instrumentor = LoggingInstrumentor()
    instrumentor.instrument()
    try:
        installed = vars(logging.Logger)["callHandlers"]
        assert installed is not before
        instrumentor.instrument()
        assert vars(logging.Logger)["callHandlers"] is installed
        assert logging.getLogger().handlers == handlers  # basicConfig() and lastResort keep working
    finally:
        instrumentor.uninstrument()
    assert vars(logging.Logger)["callHandlers"] is before
