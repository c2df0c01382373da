"""Under the contrib ``suppress_instrumentation()``, faultspan's own wrappers add nothing: no breadcrumb, no
exception enrichment, no server span; the application's behaviour is the same either way. Each case runs the
same action twice, without and with suppression, so it shows what the wrapper does when it is allowed to."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind

import faultspan
from conftest import Pipeline

MODES = pytest.mark.parametrize("suppressed", [False, True], ids=["enabled", "suppressed"])


def _scope(suppressed: bool) -> AbstractContextManager[object]:
    return suppress_instrumentation() if suppressed else nullcontext()


@pytest.fixture
def instrumented() -> Iterator[Callable[[Any], None]]:
    started: list[Any] = []

    def instrument(instrumentor: Any) -> None:
        instrumentor.instrument()
        started.append(instrumentor)

    try:
        yield instrument
    finally:
        for instrumentor in started:
            instrumentor.uninstrument()


def _crumbs(span: Any) -> list[str]:
    return [
        str(event.attributes["breadcrumb.message"]) for event in span.events if event.name == "breadcrumb"
    ]


@MODES
def test_record_exception_is_plain(pipeline: Pipeline, suppressed: bool) -> None:
    with pipeline.tracer.start_as_current_span("job") as span, _scope(suppressed):
        span.record_exception(ValueError("order 7 failed"))
    (job,) = pipeline.spans()
    (event,) = job.events
    assert event.attributes["exception.message"] == "order 7 failed"  # the SDK's own event, always
    # The live exception's frames and chain come from the wrapper only (a fingerprint is still stamped by
    # the processor from the event's text, as for any event recorded without faultspan's instrumentor).
    assert ("faultspan.frames" in event.attributes) is not suppressed
    assert ("faultspan.chain" in event.attributes) is not suppressed


@MODES
def test_log_records_are_no_breadcrumbs(
    pipeline: Pipeline, instrumented: Callable[[Any], None], suppressed: bool
) -> None:
    from faultspan_instrumentation.logging import LoggingInstrumentor

    instrumented(LoggingInstrumentor())
    with pipeline.tracer.start_as_current_span("job"):
        with _scope(suppressed):
            logging.getLogger("suppression.app").warning("stock is low")
        faultspan.capture_exception(ValueError("job failed"))  # crumbs are written to failing spans only
    (job,) = pipeline.spans()
    assert _crumbs(job) == ([] if suppressed else ["stock is low"])


@MODES
def test_queries_are_no_breadcrumbs(
    pipeline: Pipeline, instrumented: Callable[[Any], None], suppressed: bool
) -> None:
    from faultspan_instrumentation.outgoing import OutgoingInstrumentor

    instrumented(OutgoingInstrumentor())
    database = sqlite3.connect(":memory:")
    with pipeline.tracer.start_as_current_span("job"):
        with _scope(suppressed):
            assert database.execute("select 7").fetchone() == (7,)
        faultspan.capture_exception(ValueError("job failed"))  # crumbs are written to failing spans only
    database.close()
    (job,) = pipeline.spans()
    assert _crumbs(job) == ([] if suppressed else ["select 7"])


@MODES
def test_framework_hooks_add_no_server_span_and_no_request_context(
    pipeline: Pipeline, instrumented: Callable[[Any], None], suppressed: bool
) -> None:
    import flask.app

    from faultspan_instrumentation.flask import FlaskInstrumentor

    instrumented(FlaskInstrumentor())
    app = flask.app.Flask("suppression")

    def fail() -> str:
        raise RuntimeError("payment declined")

    app.add_url_rule("/pay", "pay", fail)
    with _scope(suppressed):
        assert app.test_client().get("/pay").status_code == 500  # the same answer either way
    spans = pipeline.spans()
    if suppressed:
        assert spans == []
        return
    (server,) = spans
    assert (server.name, server.attributes["http.route"]) == ("GET /pay", "/pay")
    assert [event.name for event in server.events] == ["exception"]


@MODES
def test_unhandled_hooks_record_nothing(
    pipeline: Pipeline, instrumented: Callable[[Any], None], suppressed: bool
) -> None:
    from faultspan_instrumentation.unhandled import UnhandledInstrumentor

    instrumented(UnhandledInstrumentor())
    loop = asyncio.new_event_loop()
    handled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: handled.append(context))
    try:
        with _scope(suppressed):
            loop.call_exception_handler({"message": "callback failed", "exception": KeyError("sku")})
    finally:
        loop.close()
    assert [context["message"] for context in handled] == ["callback failed"]  # the app's handler ran
    names = [span.name for span in pipeline.spans()]
    assert names == ([] if suppressed else ["unhandled KeyError"])


@MODES
def test_client_spans_become_no_breadcrumbs(pipeline: Pipeline, suppressed: bool) -> None:
    """A CLIENT span some instrumentation still ends under suppression: the processor adds no crumb."""
    with pipeline.tracer.start_as_current_span("job"), _scope(suppressed):
        with pipeline.tracer.start_as_current_span("GET", kind=SpanKind.CLIENT) as call:
            call.set_attributes({"http.request.method": "GET", "url.full": "http://stock.local/items/7"})
        faultspan.capture_exception(ValueError("no stock"))  # the API still records, and copies the trail
    spans = {span.name: span for span in pipeline.spans()}
    assert len(_crumbs(spans["job"])) == (0 if suppressed else 1)
    assert [event.name for event in spans["job"].events][-1] == "exception"
