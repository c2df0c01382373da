"""The logs signal in process: faultspan's log record processor in front of real SDK log processors, the
SDK's and the contrib logging handlers, ``OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN`` for every recording path."""

from __future__ import annotations

import io
import json
import logging
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry._logs import LogRecord, SeverityNumber, get_logger_provider, set_logger_provider
from opentelemetry.instrumentation.logging.handler import LoggingHandler as ContribHandler
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import (
    ConsoleLogRecordExporter,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)

import faultspan
from conftest import Pipeline
from faultspan._capture import runtime
from faultspan._capture.redaction import REDACTED
from faultspan._pipeline import log_events
from faultspan._pipeline.distro import install_logs
from faultspan._pipeline.log_processor import FaultspanLogRecordProcessor, redact_log_record
from faultspan_instrumentation.logging import LoggingInstrumentor

SECRET = "Hq3vX8k2LmZpQ7"
STRIPE = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"


class Logs:
    """The process-wide test LoggerProvider: faultspan's processor in front of an in-memory exporter."""

    def __init__(self) -> None:
        self.exporter = InMemoryLogRecordExporter()
        self.provider = LoggerProvider()
        self.processor = install_logs(self.provider)
        self.processor.add_downstream(SimpleLogRecordProcessor(self.exporter))
        set_logger_provider(self.provider)
        if get_logger_provider() is not self.provider:
            raise RuntimeError("another test set a global LoggerProvider first")

    def records(self) -> list[ReadableLogRecord]:
        self.processor.force_flush()
        records = list(self.exporter.get_finished_logs())
        self.exporter.clear()
        return records


_logs: Logs | None = None


@pytest.fixture
def logs(pipeline: Pipeline) -> Logs:
    global _logs  # noqa: PLW0603 -- one global LoggerProvider per test process
    if _logs is None:
        _logs = Logs()
    _logs.records()
    return _logs


@pytest.fixture(params=["sdk", "contrib"])
def app_log(request: pytest.FixtureRequest, logs: Logs) -> Iterator[logging.Logger]:
    """A stdlib logger whose records reach the logs pipeline through the SDK's or the contrib handler,
    with faultspan's logging instrumentor on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(logger_provider=logs.provider) if request.param == "sdk" else None
    handler = handler or ContribHandler(logger_provider=logs.provider)
    logger = logging.getLogger(f"app.{request.param}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    instrumentor = LoggingInstrumentor()
    instrumentor.instrument()
    try:
        yield logger
    finally:
        instrumentor.uninstrument()
        logger.removeHandler(handler)


def _attributes(record: ReadableLogRecord) -> dict[str, Any]:
    return dict(record.log_record.attributes or {})


def _rw(body: Any, attributes: dict[str, Any]) -> ReadWriteLogRecord:
    return ReadWriteLogRecord(LogRecord(body=body, attributes=attributes))


def test_body_text_structure_and_attributes_are_redacted_and_reported() -> None:
    redactor = runtime.current().redactor
    record = _rw(
        {"user": "bob", "pin": 1234, "cards": ["4111 1111 1111 1111"]},
        {"db.password": "Zq8!vLm2#pX9", "note": f"token={SECRET}", "max_tokens": 4096},
    )
    out = redact_log_record(record, redactor)
    assert out.log_record.body == {"user": "bob", "pin": REDACTED, "cards": [REDACTED]}
    attributes = dict(out.log_record.attributes)  # type: ignore[arg-type]
    assert attributes["db.password"] == REDACTED
    assert attributes["note"] == f"token={REDACTED}"
    assert attributes["max_tokens"] == 4096
    assert attributes["redaction.masked.count"] == 4
    assert attributes["redaction.masked.keys"] == "body.pin,body.cards[0],db.password,note"
    text = redact_log_record(_rw(f"password={SECRET}", {}), redactor)
    assert text.log_record.body == f"password={REDACTED}"


def test_a_clean_record_is_passed_on_as_it_is() -> None:
    record = _rw("order 7 loaded", {"order.id": 7})
    assert redact_log_record(record, runtime.current().redactor) is record


def test_a_record_carrying_exception_text_only_is_fingerprinted_from_it() -> None:
    stacktrace = 'Traceback (most recent call last):\n  File "app.py", line 3, in f\n    g()\nValueError: x\n'
    record = _rw(
        "failed",
        {"exception.type": "ValueError", "exception.message": "x", "exception.stacktrace": stacktrace},
    )
    out = redact_log_record(record, runtime.current().redactor)
    fingerprint = dict(out.log_record.attributes)["faultspan.fingerprint"]  # type: ignore[arg-type]
    assert isinstance(fingerprint, str) and len(fingerprint) == 32


def test_a_record_that_cannot_be_redacted_is_dropped(logs: Logs, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("redactor broke")

    monkeypatch.setattr(runtime.current().redactor, "scrub_attributes", broken)
    logs.provider.get_logger("t").emit(body="anything", attributes={"k": "v"})
    assert logs.records() == []
    assert logs.processor.dropped >= 1


def test_log_exception_gets_the_spans_fingerprint_frames_and_chain(
    app_log: logging.Logger, logs: Logs, pipeline: Pipeline
) -> None:
    def charge(card: str) -> None:
        api_key = STRIPE
        raise ValueError(f"bad key {api_key}")

    with pipeline.tracer.start_as_current_span("checkout"):
        try:
            charge("4111 1111 1111 1111")
        except ValueError:
            app_log.exception("charge failed for card 4111 1111 1111 1111")
    spans = pipeline.spans()
    [record] = [
        r for r in logs.records() if r.log_record.body != "" and "charge failed" in str(r.log_record.body)
    ]
    attributes = _attributes(record)
    [span] = [span for span in spans if span.name == "checkout"]
    assert attributes["faultspan.fingerprint"] == span.attributes["faultspan.fingerprint"]
    frames = json.loads(attributes["faultspan.frames"])
    assert frames[-1]["function"] == "charge"
    assert frames[-1]["locals"]["api_key"] == REDACTED
    assert json.loads(attributes["faultspan.chain"])["type"] == "ValueError"
    assert attributes["exception.type"] == "ValueError"
    exported = json.dumps({"body": record.log_record.body, **attributes})
    assert STRIPE not in exported and "4111 1111 1111 1111" not in exported
    assert record.log_record.trace_id == span.context.trace_id


def test_a_secret_masked_once_in_a_log_record_is_masked_everywhere_in_it(
    app_log: logging.Logger, logs: Logs, pipeline: Pipeline
) -> None:
    def connect() -> None:
        pw = "correct-horse-battery"  # only its name says secret
        raise ConnectionError("login refused for " + pw)

    with pipeline.tracer.start_as_current_span("login"):
        try:
            connect()
        except ConnectionError:
            app_log.exception("could not log in")
    [record] = [r for r in logs.records() if "could not log in" in str(r.log_record.body)]
    attributes = _attributes(record)
    assert json.loads(attributes["faultspan.frames"])[-1]["locals"]["pw"] == REDACTED
    exported = json.dumps({"body": record.log_record.body, **attributes})
    assert "correct-horse-battery" not in exported  # the message, the stack trace's source line
    assert REDACTED in attributes["exception.message"]
    pipeline.spans()


def test_a_dict_logged_as_the_message_is_masked_by_its_keys(
    app_log: logging.Logger, logs: Logs, pipeline: Pipeline
) -> None:
    with pipeline.tracer.start_as_current_span("job"):
        app_log.warning({"user": "bob", "pin": 1234, "cvv": 7})
        faultspan.capture_exception(ValueError("job failed"))  # crumbs are written to failing spans only
    [span] = pipeline.spans()
    [crumb] = [event for event in span.events if event.name == "breadcrumb"]
    assert json.loads(crumb.attributes["breadcrumb.message"]) == {
        "user": "bob",
        "pin": REDACTED,
        "cvv": REDACTED,
    }
    [record] = [r for r in logs.records() if r.log_record.event_name is None]
    assert record.log_record.body == {"user": "bob", "pin": REDACTED, "cvv": REDACTED}


def test_another_configurators_log_processors_are_put_behind_faultspans(logs: Logs) -> None:
    stream = io.StringIO()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(ConsoleLogRecordExporter(out=stream)))
    processor = install_logs(provider)
    assert install_logs(provider) is processor
    provider.get_logger("t").emit(body=f"password={SECRET}")
    provider.force_flush()
    assert SECRET not in stream.getvalue()
    assert f"password={REDACTED}" in stream.getvalue()
    provider.shutdown()


@pytest.fixture(params=[log_events.Signal.SPANS, log_events.Signal.DUP, log_events.Signal.LOGS], ids=str)
def signal(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> log_events.Signal:
    value: log_events.Signal = request.param
    monkeypatch.setenv(log_events.OPT_IN, value.value)
    return value


def _exception_records(logs: Logs) -> list[ReadableLogRecord]:
    return [record for record in logs.records() if record.log_record.event_name == "exception"]


def _check(
    signal: log_events.Signal, span: Any, records: list[ReadableLogRecord], *, fatal: bool = False
) -> None:
    events = [event for event in span.events if event.name == "exception"]
    assert span.status.status_code is trace.StatusCode.ERROR
    fingerprint = span.attributes["faultspan.fingerprint"]
    assert len(events) == (0 if signal is log_events.Signal.LOGS else 1)
    assert len(records) == (0 if signal is log_events.Signal.SPANS else 1)
    if records:
        [record] = records
        log = record.log_record
        assert (log.trace_id, log.span_id) == (span.context.trace_id, span.context.span_id)
        assert log.severity_number is (SeverityNumber.FATAL if fatal else SeverityNumber.ERROR)
        attributes = _attributes(record)
        assert attributes["faultspan.fingerprint"] == fingerprint
        assert {"exception.type", "exception.message", "exception.stacktrace", "faultspan.frames"} <= set(
            attributes
        )
        if events:
            assert dict(events[0].attributes) == attributes


def _fail(message: str = "boom") -> None:
    raise KeyError(message)


def test_capture_exception_follows_the_opt_in(
    signal: log_events.Signal, logs: Logs, pipeline: Pipeline
) -> None:
    with pipeline.tracer.start_as_current_span("request"):
        try:
            _fail()
        except KeyError:
            faultspan.capture_exception()
    [span] = pipeline.spans()
    _check(signal, span, _exception_records(logs))


def test_guard_follows_the_opt_in(signal: log_events.Signal, logs: Logs, pipeline: Pipeline) -> None:
    with pytest.raises(KeyError), faultspan.guard("charge"):
        _fail()
    [span] = pipeline.spans()
    _check(signal, span, _exception_records(logs))


def test_capture_decorator_follows_the_opt_in(
    signal: log_events.Signal, logs: Logs, pipeline: Pipeline
) -> None:
    @faultspan.capture("job")
    def job() -> None:
        _fail()

    with pytest.raises(KeyError):
        job()
    [span] = pipeline.spans()
    _check(signal, span, _exception_records(logs))


def test_the_sdks_own_record_exception_follows_the_opt_in(
    signal: log_events.Signal, logs: Logs, pipeline: Pipeline
) -> None:
    with pytest.raises(KeyError), pipeline.tracer.start_as_current_span("sdk"):
        _fail()
    [span] = pipeline.spans()
    _check(signal, span, _exception_records(logs))


def test_a_logged_exception_is_one_exception_record_under_the_opt_in(
    signal: log_events.Signal, app_log: logging.Logger, logs: Logs, pipeline: Pipeline
) -> None:
    """``log.exception`` through an OpenTelemetry handler, then the same exception escaping the span."""
    with pytest.raises(KeyError), pipeline.tracer.start_as_current_span("request"):
        try:
            _fail()
        except KeyError:
            app_log.exception("lookup failed")
            raise
    [span] = pipeline.spans()
    records = logs.records()
    exception_records = [r for r in records if r.log_record.event_name == "exception"]
    assert len(exception_records) == (0 if signal is log_events.Signal.SPANS else 1)
    lines = [r for r in records if r.log_record.body == "lookup failed"]
    assert len(lines) == 1
    assert _attributes(lines[0])["faultspan.fingerprint"] == span.attributes["faultspan.fingerprint"]
    assert len([e for e in span.events if e.name == "exception"]) == (
        0 if signal is log_events.Signal.LOGS else 1
    )


def test_breadcrumbs_under_logs_are_log_records_once(
    monkeypatch: pytest.MonkeyPatch, app_log: logging.Logger, logs: Logs, pipeline: Pipeline
) -> None:
    monkeypatch.setenv(log_events.OPT_IN, "logs")
    with pipeline.tracer.start_as_current_span("job") as job:
        faultspan.breadcrumb("cache", "warm", entries=12)
        app_log.info("loading order 7")
    [span] = pipeline.spans()
    assert [event.name for event in span.events] == []
    records = logs.records()
    crumbs = [r for r in records if r.log_record.event_name == "breadcrumb"]
    assert [r.log_record.body for r in crumbs] == ["warm"]
    assert _attributes(crumbs[0])["breadcrumb.data.entries"] == 12
    assert crumbs[0].log_record.span_id == job.get_span_context().span_id
    assert [r.log_record.body for r in records if r.log_record.event_name is None] == ["loading order 7"]


def test_an_unknown_opt_in_value_warns_once_and_keeps_span_events(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(log_events.OPT_IN, "spans-please")
    with caplog.at_level(logging.WARNING, logger="faultspan"):
        assert log_events.signal() is log_events.Signal.SPANS
        assert log_events.signal() is log_events.Signal.SPANS
    assert [record.getMessage() for record in caplog.records].count(
        "faultspan: OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN='spans-please' is not 'logs' or 'logs/dup'; "
        "exceptions stay span events"
    ) == 1
    monkeypatch.setenv(log_events.OPT_IN, "http, logs/dup")
    assert log_events.signal() is log_events.Signal.DUP


class _Blocking(SimpleLogRecordProcessor):
    """Holds the worker in its round until released."""

    def __init__(self) -> None:
        super().__init__(InMemoryLogRecordExporter())
        self.entered = threading.Event()
        self.release = threading.Event()
        self.received: list[object] = []

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        self.received.append(log_record.log_record.body)
        self.entered.set()
        assert self.release.wait(30)


def test_the_queue_is_bounded_and_counts_what_it_drops(logs: Logs) -> None:
    blocking = _Blocking()
    processor = FaultspanLogRecordProcessor([blocking], max_queue_size=2)
    processor.on_emit(_rw("first", {}))
    processor._worker.wake()
    assert blocking.entered.wait(30)  # the worker is inside its round: nothing more is taken
    for index in range(5):
        processor.on_emit(_rw(f"queued {index}", {}))
    assert processor.dropped == 3
    blocking.release.set()
    assert processor.force_flush()
    assert blocking.received == ["first", "queued 0", "queued 1"]
    processor.shutdown()
