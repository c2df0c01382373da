from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import faultspan
from conftest import Pipeline
from faultspan._pipeline import recording


def events(span: Any, name: str) -> list[Any]:
    return [event for event in span.events if event.name == name]


def only(spans: list[Any], name: str) -> Any:
    matching = [span for span in spans if span.name == name]
    assert len(matching) == 1, [span.name for span in spans]
    return matching[0]


def test_capture_exception_in_except_block_records_on_current_span(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("request"):
        try:
            raise ValueError("bad input 42")
        except ValueError:
            key = faultspan.capture_exception(operation="parse", attributes={"extra": "yes"})
    span = only(pipeline.spans(), "request")
    (event,) = events(span, "exception")
    assert event.attributes["faultspan.fingerprint"] == key
    assert event.attributes["faultspan.operation"] == "parse"
    assert event.attributes["extra"] == "yes"
    assert span.attributes["faultspan.fingerprint"] == key
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: bad input 42"


def test_capture_exception_without_a_span_makes_one(pipeline: Pipeline) -> None:
    key = faultspan.capture_exception(KeyError("k"), operation="nightly-job")
    span = only(pipeline.spans(), "nightly-job")
    assert events(span, "exception")[0].attributes["faultspan.fingerprint"] == key


def test_capture_exception_with_nothing_to_capture(pipeline: Pipeline) -> None:
    assert faultspan.capture_exception() is None
    assert pipeline.spans() == []


def test_same_exception_is_recorded_once_per_span(pipeline: Pipeline) -> None:
    with pytest.raises(ZeroDivisionError), pipeline.tracer.start_as_current_span("work"):
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            faultspan.capture_exception()
            raise
    span = only(pipeline.spans(), "work")
    assert len(events(span, "exception")) == 1


def test_sdk_record_exception_paths_are_enriched(pipeline: Pipeline) -> None:
    with pytest.raises(LookupError), pipeline.tracer.start_as_current_span("use_span path"):
        raise LookupError("via use_span")
    with pytest.raises(LookupError), pipeline.tracer.start_span("span exit path"):
        raise LookupError("via Span.__exit__")
    span = pipeline.tracer.start_span("manual")
    span.record_exception(LookupError("manual"))
    span.end()
    for span in pipeline.spans():
        (event,) = events(span, "exception")
        assert set(event.attributes) >= {"faultspan.frames", "faultspan.chain", "faultspan.fingerprint"}
        assert span.attributes["faultspan.fingerprint"] == event.attributes["faultspan.fingerprint"]


def test_capture_decorator_sync_and_async(pipeline: Pipeline) -> None:
    @faultspan.capture
    def plain() -> None:
        raise TypeError("sync")

    @faultspan.capture("async-op")
    async def coroutine() -> None:
        raise TypeError("async")

    error = TypeError("original")

    @faultspan.capture()
    def reraises() -> None:
        raise error

    with pipeline.tracer.start_as_current_span("outer"):
        with pytest.raises(TypeError, match="sync"):
            plain()
        with pytest.raises(TypeError, match="async"):
            asyncio.run(coroutine())
        with pytest.raises(TypeError) as info:
            reraises()
        assert info.value is error
    span = only(pipeline.spans(), "outer")
    operations = [event.attributes["faultspan.operation"] for event in events(span, "exception")]
    assert operations == [
        "test_capture_decorator_sync_and_async.<locals>.plain",
        "async-op",
        "test_capture_decorator_sync_and_async.<locals>.reraises",
    ]
    assert plain.__name__ == "plain"


def test_guard_sync_and_async(pipeline: Pipeline) -> None:
    with pytest.raises(RuntimeError), faultspan.guard("charge", order_id=7, card=object()):
        raise RuntimeError("declined")

    async def run() -> None:
        async with faultspan.guard("async-charge"):
            raise RuntimeError("async declined")

    with pytest.raises(RuntimeError):
        asyncio.run(run())
    with faultspan.guard("fine"):
        pass
    spans = pipeline.spans()
    charge = only(spans, "charge")
    assert charge.attributes["order_id"] == 7
    assert charge.attributes["card"].startswith("<object object at")
    assert charge.status.status_code is StatusCode.ERROR
    (event,) = events(charge, "exception")
    assert event.attributes["exception.escaped"] == "True"
    assert event.attributes["faultspan.operation"] == "charge"
    assert events(only(spans, "async-charge"), "exception")
    assert only(spans, "fine").status.status_code is StatusCode.UNSET


def test_breadcrumbs_reach_only_the_failing_span_with_the_ended_children_crumbs(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("request") as request:
        faultspan.breadcrumb("http", "GET /basket", status=200)
        with pipeline.tracer.start_as_current_span("db"):
            faultspan.breadcrumb("db", "SELECT 1", level="debug", rows=1)
        try:
            raise ValueError("boom")
        except ValueError:
            faultspan.capture_exception()
        request_id = request.get_span_context().span_id
    spans = pipeline.spans()
    assert events(only(spans, "db"), "breadcrumb") == []  # a span that did not fail carries none
    request_span = only(spans, "request")
    assert request_span.context.span_id == request_id
    crumbs = events(request_span, "breadcrumb")
    assert dict(crumbs[1].attributes) == {
        "breadcrumb.category": "db",
        "breadcrumb.message": "SELECT 1",
        "breadcrumb.level": "debug",
        "breadcrumb.data.rows": 1,
    }
    assert [event.attributes["breadcrumb.message"] for event in crumbs] == ["GET /basket", "SELECT 1"]
    names = [event.name for event in request_span.events]
    assert names.index("exception") > names.index("breadcrumb")


def test_crumbs_of_other_threads_and_tasks_of_the_trace_reach_its_failure(pipeline: Pipeline) -> None:
    """A sync view in a thread pool, a task group: crumbs added in a copy of the request's context."""

    def step(name: str) -> None:
        with pipeline.tracer.start_as_current_span(name):
            faultspan.breadcrumb("step", name)

    async def in_task() -> None:
        step("task")

    with pipeline.tracer.start_as_current_span("request"):
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(step, "thread"))
        thread.start()
        thread.join()
        asyncio.run(in_task())
        faultspan.capture_exception(ValueError("late"))
    crumbs = events(only(pipeline.spans(), "request"), "breadcrumb")
    assert [event.attributes["breadcrumb.message"] for event in crumbs] == ["thread", "task"]


def test_crumbs_without_a_trace_never_reach_a_traced_failure(pipeline: Pipeline) -> None:
    """Start-up noise (a server's banner, a call made outside any request) is no crumb of a request."""
    faultspan.breadcrumb("uvicorn.error", "Uvicorn running on http://127.0.0.1:8000")
    for request in ("first", "second"):
        with pipeline.tracer.start_as_current_span(request):
            faultspan.breadcrumb("app", f"handling {request}")
            faultspan.capture_exception(ValueError(request))
    spans = pipeline.spans()
    for request in ("first", "second"):
        crumbs = events(only(spans, request), "breadcrumb")
        assert [event.attributes["breadcrumb.message"] for event in crumbs] == [f"handling {request}"]


def test_a_crash_after_its_spans_ended_gets_this_context_trail(pipeline: Pipeline) -> None:
    def job() -> None:  # a thread of its own: it starts with an empty trail
        faultspan.breadcrumb("boot", "config loaded")
        with pipeline.tracer.start_as_current_span("step"):
            faultspan.breadcrumb("step", "disk almost full", level="warning")
        faultspan.capture_exception(OSError("disk full"))  # no span current: a span of its own, a new trace

    thread = threading.Thread(target=job)
    thread.start()
    thread.join()
    (crashed,) = [span for span in pipeline.spans() if span.name == "OSError"]
    crumbs = events(crashed, "breadcrumb")
    messages = [event.attributes["breadcrumb.message"] for event in crumbs]
    assert messages == ["config loaded", "disk almost full"]


def test_a_log_record_carrying_the_exception_is_no_breadcrumb_of_it(pipeline: Pipeline) -> None:
    logger = logging.getLogger("tests.carrying")
    logger.addHandler(faultspan.BreadcrumbHandler())
    try:
        with pipeline.tracer.start_as_current_span("request"):
            logger.warning("before")
            try:
                raise KeyError("k")
            except KeyError as exc:
                logger.warning("handled it", exc_info=True)  # below the capture level: a crumb only
                faultspan.capture_exception(exc)
    finally:
        logger.handlers.clear()
    crumbs = events(only(pipeline.spans(), "request"), "breadcrumb")
    assert [event.attributes["breadcrumb.message"] for event in crumbs] == ["before"]


def test_trail_is_bounded_and_isolated_per_thread_and_task(pipeline: Pipeline) -> None:
    from faultspan._pipeline import breadcrumbs

    seen: dict[str, list[str]] = {}

    def worker(name: str) -> None:
        faultspan.breadcrumb("thread", name)
        seen[name] = [crumb.message for crumb in breadcrumbs.trail()]

    threads = [threading.Thread(target=worker, args=(f"t{index}",)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"t0": ["t0"], "t1": ["t1"], "t2": ["t2"]}

    async def task(name: str) -> list[str]:
        faultspan.breadcrumb("task", name)
        await asyncio.sleep(0)
        return [crumb.message for crumb in breadcrumbs.trail() if crumb.category == "task"]

    async def main() -> list[list[str]]:
        return list(await asyncio.gather(task("a"), task("b")))

    assert asyncio.run(main()) == [["a"], ["b"]]

    def flood() -> list[str]:
        for index in range(250):
            faultspan.breadcrumb("flood", str(index))
        return [crumb.message for crumb in breadcrumbs.trail()]

    result: list[list[str]] = []
    thread = threading.Thread(target=lambda: result.append(flood()))
    thread.start()
    thread.join()
    assert result[0] == [str(index) for index in range(150, 250)]


def test_context_attributes_on_spans_started_inside(pipeline: Pipeline) -> None:
    with (
        faultspan.context(tenant="acme", user_id=7),
        pipeline.tracer.start_as_current_span("inside"),
        faultspan.context(user_id=8),
        pipeline.tracer.start_as_current_span("nested"),
    ):
        pass
    with pipeline.tracer.start_as_current_span("outside"):
        pass
    spans = pipeline.spans()
    assert only(spans, "inside").attributes["user_id"] == 7
    assert only(spans, "nested").attributes["user_id"] == 8
    assert only(spans, "nested").attributes["tenant"] == "acme"
    assert "tenant" not in only(spans, "outside").attributes


def test_breadcrumb_handler(pipeline: Pipeline) -> None:
    logger = logging.getLogger("test.shop")
    logger.propagate = False
    handler = faultspan.BreadcrumbHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with pipeline.tracer.start_as_current_span("request"):
            logger.debug("not kept")
            logger.info("charging %s", "order 7")
            try:
                raise ConnectionError("gateway down")
            except ConnectionError:
                logger.exception("charge failed")
    finally:
        logger.removeHandler(handler)
    span = only(pipeline.spans(), "request")
    crumbs = [
        (e.attributes["breadcrumb.level"], e.attributes["breadcrumb.message"])
        for e in events(span, "breadcrumb")
    ]
    assert crumbs == [("info", "charging order 7")]  # the record carrying the exception reports it
    (exception,) = events(span, "exception")
    assert exception.attributes["exception.type"] == "ConnectionError"


def test_breadcrumb_handler_keeps_a_records_extra_fields_as_data_redacted_and_bounded(
    pipeline: Pipeline,
) -> None:
    logger = logging.getLogger("test.extra")
    logger.propagate = False
    handler = faultspan.BreadcrumbHandler()
    logger.addHandler(handler)
    token = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
    many = {f"field_{index}": index for index in range(100)}
    try:
        with pipeline.tracer.start_as_current_span("request"):
            logger.warning("charge retried", extra={"order_id": 7, "api_token": token, "otelSpanID": "x"})
            logger.warning("many fields", extra=many)
            try:
                raise ConnectionError("gateway down")
            except ConnectionError as exc:
                faultspan.capture_exception(exc)
    finally:
        logger.removeHandler(handler)
    first, second = (event.attributes for event in events(only(pipeline.spans(), "request"), "breadcrumb"))
    assert first["breadcrumb.data.order_id"] == 7
    assert first["breadcrumb.data.logger"] == "test.extra"
    assert token not in str(first) and "breadcrumb.data.api_token" in first
    assert not any(key.startswith(("breadcrumb.data.otel", "breadcrumb.data.levelno")) for key in first)
    assert 10 < sum(key.startswith("breadcrumb.data.field_") for key in second) < 100


def test_breadcrumb_handler_does_not_capture_an_exception_twice(pipeline: Pipeline) -> None:
    """``log.exception`` after the span the exception escaped from has ended: a crumb, not a second event."""
    logger = logging.getLogger("test.twice")
    logger.propagate = False
    handler = faultspan.BreadcrumbHandler()
    logger.addHandler(handler)
    try:
        with pipeline.tracer.start_as_current_span("request"):
            try:
                with pipeline.tracer.start_as_current_span("charge"):
                    raise ConnectionError("gateway down")
            except ConnectionError:
                logger.exception("charge failed")
    finally:
        logger.removeHandler(handler)
    spans = pipeline.spans()
    assert len(events(only(spans, "charge"), "exception")) == 1
    request = only(spans, "request")
    assert events(request, "exception") == []
    assert events(request, "breadcrumb") == []  # the request did not fail


def test_secrets_are_masked_before_export(pipeline: Pipeline) -> None:
    password = "Sup3r-Secret-Pw!"
    with pipeline.tracer.start_as_current_span("login") as span:
        span.set_attribute("db.password", password)
        faultspan.breadcrumb("auth", f"POST /login password={password}")
        try:
            login = {"user": "bob", "password": password}
            raise PermissionError(f"login failed for {login}")
        except PermissionError:
            faultspan.capture_exception()
    exported = only(pipeline.spans(), "login")
    text = json.dumps(
        {
            "attributes": dict(exported.attributes),
            "events": [dict(event.attributes) for event in exported.events],
            "status": exported.status.description,
        }
    )
    assert password not in text
    assert "[REDACTED]" in text
    keys = exported.attributes["redaction.masked.keys"].split(",")
    assert "db.password" in keys
    assert "status.description" in keys
    assert any(key.startswith("event[") and key.endswith("exception.message") for key in keys)
    assert exported.attributes["redaction.masked.count"] == len(keys)


def test_internal_failure_never_reaches_the_app(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("faultspan bug")

    monkeypatch.setattr(recording.exceptions, "capture", broken)
    with pytest.raises(ValueError, match="app error"), pipeline.tracer.start_as_current_span("degraded"):
        raise ValueError("app error")
    span = only(pipeline.spans(), "degraded")
    (event,) = events(span, "exception")
    assert event.attributes["exception.type"] == "ValueError"  # recorded plainly instead


def test_non_recording_span_records_nothing() -> None:
    span = trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)
    assert recording.record(span, ValueError("x")) is None
