"""The logs signal end to end: a real app under opentelemetry-instrument, logging through the SDK's or the
contrib handler, exporting to a real rotel collector (OTLP gRPC or HTTP) or the console, forwarded to the
in-test receiver; each value of ``OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN``; planted secrets through logging."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

import test_corpus_e2e
import test_frameworks
from faultspan.cli import main
from faultspan.packages import format as fspkg
from faultspan.report import html
from support.collector import OtlpSink, ReceivedLog, ReceivedSpan, RotelCollector
from support.instrumented import run_instrumented
from support.servers import AppServer

APP = Path(__file__).parent / "apps" / "logs_app.py"
ISSUE_SECRETS = (
    "Hq3vX8k2LmZpQ7",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "4111 1111 1111 1111",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
)
SDK_HANDLER = {"OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true"}
CONTRIB_HANDLER: dict[str, str] = {}  # opentelemetry-instrumentation-logging installs its handler by default


def _run(
    collector: RotelCollector,
    otel_env: dict[str, str],
    protocol: str,
    opt_in: str,
    handler: dict[str, str],
    *args: str,
    **variables: str,
) -> str:
    env = {**otel_env, **collector.exporter_env(protocol), **handler}  # type: ignore[arg-type]
    if opt_in:
        env["OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN"] = opt_in
    result = run_instrumented(
        APP,
        *args,
        env=env,
        OTEL_SERVICE_NAME="logs-app",
        OTEL_TRACES_EXPORTER=variables.pop("traces", "otlp"),
        OTEL_LOGS_EXPORTER=variables.pop("logs", "otlp"),
        **variables,
    )
    return result.stdout


def _received(otlp_sink: OtlpSink) -> tuple[list[ReceivedSpan], list[ReceivedLog]]:
    spans = otlp_sink.wait_for(lambda spans: {"checkout", "refund"} <= {span.name for span in spans})
    logs = otlp_sink.wait_for_logs(
        lambda logs: (
            any(record.body == "refunding order 7" for record in logs)
            and any("charge failed" in str(record.body) for record in logs)
        )
    )
    return spans, logs


def _span(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    return next(span for span in spans if span.name == name)


def _check_signal(opt_in: str, spans: list[ReceivedSpan], logs: list[ReceivedLog]) -> None:
    refund = _span(spans, "refund")
    assert refund.status_code == 2
    fingerprint = refund.attributes["faultspan.fingerprint"]
    events = refund.events_named("exception")
    records = [
        record for record in logs if record.event_name == "exception" and record.span_id == refund.span_id
    ]
    assert len(events) == (0 if opt_in == "logs" else 1)
    assert len(records) == (0 if not opt_in else 1)
    if records:
        [record] = records
        assert record.trace_id == refund.trace_id
        assert (record.severity_number, record.severity_text) == (17, "ERROR")
        assert record.attributes["faultspan.fingerprint"] == fingerprint
        assert record.attributes["exception.type"] == "KeyError"
        assert json.loads(str(record.attributes["faultspan.frames"]))[-1]["function"] == "refund"
        if events:
            assert events[0].attributes == record.attributes


def _check_logged_exception(opt_in: str, spans: list[ReceivedSpan], logs: list[ReceivedLog]) -> None:
    """``log.exception`` in ``checkout``: the line carries the span's fingerprint, frames and chain."""
    checkout = _span(spans, "checkout")
    [line] = [record for record in logs if "charge failed" in str(record.body)]
    assert line.body == "charge failed for card [REDACTED]"
    assert line.attributes["faultspan.fingerprint"] == checkout.attributes["faultspan.fingerprint"]
    frames = json.loads(str(line.attributes["faultspan.frames"]))
    assert frames[-1]["function"] == "charge"
    assert json.loads(str(line.attributes["faultspan.chain"]))["type"] == "ValueError"
    assert line.span_id == checkout.span_id
    assert line.event_name == ("exception" if opt_in else "")
    assert len(checkout.events_named("exception")) == (0 if opt_in == "logs" else 1)


@pytest.mark.parametrize("opt_in", ["", "logs/dup", "logs"])
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_opt_in_through_the_collector(
    protocol: str, opt_in: str, collector: RotelCollector, otlp_sink: OtlpSink, otel_env: dict[str, str]
) -> None:
    _run(collector, otel_env, protocol, opt_in, CONTRIB_HANDLER)
    spans, logs = _received(otlp_sink)
    _check_signal(opt_in, spans, logs)
    _check_logged_exception(opt_in, spans, logs)
    received = otlp_sink.raw_bytes()
    assert [secret for secret in ISSUE_SECRETS if secret.encode() in received] == []


def test_the_sdks_logging_handler(
    collector: RotelCollector, otlp_sink: OtlpSink, otel_env: dict[str, str]
) -> None:
    _run(collector, otel_env, "grpc", "logs/dup", SDK_HANDLER)
    spans, logs = _received(otlp_sink)
    _check_signal("logs/dup", spans, logs)
    _check_logged_exception("logs/dup", spans, logs)
    warning = next(
        record for record in logs if record.severity_text == "WARN" and record.scope_name == "shop"
    )
    assert warning.body == "connecting with password=[REDACTED] and token [REDACTED]"
    assert warning.attributes["redaction.masked.keys"] == "body"
    assert [secret for secret in ISSUE_SECRETS if secret.encode() in otlp_sink.raw_bytes()] == []


def _console_records(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(part) for part in test_corpus_e2e._objects(stdout)]


@pytest.mark.parametrize("handler", [SDK_HANDLER, CONTRIB_HANDLER], ids=["sdk", "contrib"])
def test_the_console_exporter_prints_redacted_records(
    handler: dict[str, str], collector: RotelCollector, otel_env: dict[str, str]
) -> None:
    stdout = _run(collector, otel_env, "grpc", "logs", handler, traces="none", logs="console")
    records = [record for record in _console_records(stdout) if "body" in record]
    assert [secret for secret in ISSUE_SECRETS if secret in stdout] == []
    line = next(record for record in records if "charge failed" in str(record["body"]))
    assert line["event_name"] == "exception"
    assert line["attributes"]["faultspan.fingerprint"]
    refund = [record for record in records if record["event_name"] == "exception" and record["body"] is None]
    assert [record["attributes"]["exception.type"] for record in refund] == ["KeyError"]


def _package_text(directory: Path) -> str:
    texts = []
    for path in directory.glob("*.fspkg"):
        with zipfile.ZipFile(path) as archive:
            texts.extend(archive.read(name).decode("utf-8", "replace") for name in archive.namelist())
    return "\n".join(texts)


@pytest.mark.parametrize(
    ("name", "secrets", "lookalikes"), test_corpus_e2e.corpora(), ids=lambda c: str(c)[:14]
)
@pytest.mark.parametrize("handler", [SDK_HANDLER, CONTRIB_HANDLER], ids=["sdk", "contrib"])
def test_no_planted_secret_leaves_through_logging(  # noqa: PLR0917 -- parameters and fixtures
    handler: dict[str, str],
    name: str,
    secrets: list[dict[str, Any]],
    lookalikes: list[dict[str, Any]],
    collector: RotelCollector,
    otlp_sink: OtlpSink,
    otel_env: dict[str, str],
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus.json"
    planted = [{k: v for k, v in entry.items() if k != "needles"} for entry in secrets + lookalikes]
    corpus.write_text(json.dumps(planted))
    packages = tmp_path / "packages"
    stdout = _run(
        collector,
        otel_env,
        "grpc",
        "logs/dup",
        handler,
        str(corpus),
        traces="otlp,console,faultspan",
        logs="otlp,console",
        OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR=str(packages),
        OTEL_PYTHON_FAULTSPAN_CAPTURE_LOCALS="true",
    )
    otlp_sink.wait_for(lambda spans: any(span.name == "corpus" for span in spans))
    last = f"plant {planted[-1]['id']}"
    last_span = _span(otlp_sink.wait_for(lambda spans: any(span.name == last for span in spans)), last)
    otlp_sink.wait_for_logs(lambda logs: any(record.span_id == last_span.span_id for record in logs))
    received = otlp_sink.raw_bytes().decode("utf-8", "replace")
    console = json.dumps(_console_records(stdout), ensure_ascii=False)
    stored = _package_text(packages)
    assert '"logRecords"' in stored, "no package with logs.json was written"
    places = {"collector": received, "console": stdout + console, "packages": stored}
    leaks = [
        (entry["id"], where)
        for entry in secrets
        for needle in entry["needles"]
        for where, text in places.items()
        if needle in text
    ]
    assert leaks == []
    fingerprints = {span.span_id: span.attributes.get("faultspan.fingerprint") for span in otlp_sink.spans()}
    exception_lines = [record for record in otlp_sink.logs() if "exception.type" in record.attributes]
    assert exception_lines
    assert [
        record.body
        for record in exception_lines
        if record.attributes.get("faultspan.fingerprint") != fingerprints.get(record.span_id)
    ] == []
    lost = [
        entry["id"]
        for entry in lookalikes
        for needle in entry["needles"]
        if needle not in received and needle not in console
    ]
    assert lost == []


def test_another_configurators_logs_exporters_get_the_safety_net(
    collector: RotelCollector, otlp_sink: OtlpSink, otel_env: dict[str, str]
) -> None:
    """opentelemetry-distro's configurator builds the pipeline; faultspan's post-instrument hook puts its
    log record processor in front of the exporters that configurator registered."""
    stdout = _run(
        collector,
        otel_env,
        "http/protobuf",
        "",
        CONTRIB_HANDLER,
        logs="otlp,console",
        OTEL_PYTHON_DISTRO="distro",
        OTEL_PYTHON_CONFIGURATOR="configurator",
    )
    _spans, logs = _received(otlp_sink)
    assert [secret for secret in ISSUE_SECRETS if secret.encode() in otlp_sink.raw_bytes()] == []
    assert [secret for secret in ISSUE_SECRETS if secret in stdout] == []
    assert any(record.body == "charge failed for card [REDACTED]" for record in logs)


CRASH = """
import logging
from opentelemetry import trace

def main():
    with trace.get_tracer("crash").start_as_current_span("job"):
        logging.getLogger("job").warning("about to fail")
    raise LookupError("sku A-7 short by 7")

main()
"""


@pytest.mark.parametrize("opt_in", ["", "logs"])
def test_a_crash_is_a_fatal_exception_record_under_logs(
    opt_in: str,
    collector: RotelCollector,
    otlp_sink: OtlpSink,
    otel_env: dict[str, str],
    tmp_path: Path,
) -> None:
    script = tmp_path / "crash.py"
    script.write_text(CRASH)
    env = {**otel_env, **collector.exporter_env("grpc"), "OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN": opt_in}
    result = run_instrumented(
        script, env=env, returncode=1, OTEL_TRACES_EXPORTER="otlp", OTEL_LOGS_EXPORTER="otlp"
    )
    assert "LookupError: sku A-7 short by 7" in result.stderr  # what the user sees is unchanged
    spans = otlp_sink.wait_for(lambda spans: any(span.name == "unhandled LookupError" for span in spans))
    crash = _span(spans, "unhandled LookupError")
    assert crash.status_code == 2
    if not opt_in:
        assert len(crash.events_named("exception")) == 1
        return
    assert crash.events_named("exception") == []
    logs = otlp_sink.wait_for_logs(lambda logs: any(record.event_name == "exception" for record in logs))
    [record] = [record for record in logs if record.event_name == "exception"]
    assert (record.severity_number, record.severity_text) == (21, "FATAL")
    assert (record.trace_id, record.span_id) == (crash.trace_id, crash.span_id)
    assert record.attributes["faultspan.unhandled.hook"] == "sys.excepthook"
    assert record.attributes["faultspan.fingerprint"] == crash.attributes["faultspan.fingerprint"]


def test_a_package_under_logs_holds_the_traces_log_records(
    collector: RotelCollector,
    otlp_sink: OtlpSink,
    otel_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Under ``logs`` the failing span has no exception event: the package finds the failure by the span's
    fingerprint, describes its exception record, and ``show`` and the report read the logs from logs.json."""
    packages = tmp_path / "packages"
    _run(
        collector,
        otel_env,
        "grpc",
        "logs",
        CONTRIB_HANDLER,
        traces="otlp,faultspan",
        OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR=str(packages),
    )
    spans, _logs = _received(otlp_sink)
    refund = _span(spans, "refund")
    found = {fspkg.read_package(path).manifest["span_id"]: path for path in packages.glob("*.fspkg")}
    path = found[refund.span_id]
    package = fspkg.read_package(path)
    assert package.manifest["exception"]["type"] == "KeyError"
    assert package.manifest["fingerprint"] == refund.attributes["faultspan.fingerprint"]
    records = [record for scope in package.logs.resource_logs[0].scope_logs for record in scope.log_records]
    assert {record.event_name for record in records} >= {"exception"}
    assert any(record.body.string_value == "refunding order 7" for record in records)
    assert main(["show", "--json", str(path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["exception"]["frames"][-1]["function"] == "refund"
    assert "refunding order 7" in [crumb["message"] for crumb in shown["breadcrumbs"]]
    assert [record["event_name"] for record in shown["logs"]].count("exception") == 1
    assert main(["show", str(path)]) == 0
    assert "refunding order 7" in capsys.readouterr().out
    timeline = html.model(package)["breadcrumbs"]
    assert [entry["message"] for entry in timeline] == ["refunding order 7"]
    assert timeline[0]["offset_ms"] <= 0  # before the failure, which is the zero of the axis


@pytest.mark.parametrize("official", [True, False], ids=["official", "own"])
@pytest.mark.parametrize("framework", sorted(test_frameworks.EXAMPLE_APPS))
def test_framework_failures_follow_the_opt_in(
    framework: str,
    official: bool,
    collector: RotelCollector,
    otlp_sink: OtlpSink,
    tmp_path: Path,
) -> None:
    """A failing request of each example app under ``logs``: the server span keeps status ERROR and its
    fingerprint, and the exception is one log record correlated with it, with the event's attributes."""
    example = test_frameworks.EXAMPLE_APPS[framework]
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env.update(example.env)
    env.update(collector.exporter_env("grpc"))
    env.update(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_BLRP_SCHEDULE_DELAY="50",
        OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN="logs",
        OTEL_SERVICE_NAME=f"{framework}-{'official' if official else 'own'}",  # what Served looks for
        # As test_frameworks: the request is found by its header, which the official variables record.
        OTEL_SEMCONV_STABILITY_OPT_IN="http",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST="authorization,cookie,x-request-id",
    )
    if not official:
        env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = framework
    with AppServer(example.script, env, tmp_path) as server:
        served = test_frameworks.Served(framework, official, server, otlp_sink)
        marker = f"{served.service}-{uuid.uuid4().hex[:8]}"  # as test_frameworks: not a token to mask
        assert served.order(7, marker) == 500
        span = served.wait_for_request(marker)
    assert span.status_code == 2
    assert [event.name for event in span.events if event.name == "exception"] == []
    in_trace = [s for s in otlp_sink.spans() if s.trace_id == span.trace_id]
    assert sum(len(s.events_named("exception")) for s in in_trace) == 0
    logs = otlp_sink.wait_for_logs(
        lambda logs: any(r.event_name == "exception" and r.trace_id == span.trace_id for r in logs)
    )
    [record] = [r for r in logs if r.event_name == "exception" and r.trace_id == span.trace_id]
    assert record.span_id == span.span_id
    assert str(record.attributes["exception.type"]).endswith("PaymentDeclined")
    assert record.attributes["faultspan.fingerprint"] == span.attributes["faultspan.fingerprint"]
    frames = json.loads(str(record.attributes["faultspan.frames"]))
    (charge,) = [frame for frame in frames if frame["function"] == "charge"]
    assert charge["locals"]["card_number"].strip("'") == "[REDACTED]"
    assert [s for s in test_frameworks.SECRETS if s.encode() in otlp_sink.raw_bytes()] == []


def _spool_text(root: Path) -> str:
    return "\n".join(
        path.read_bytes().decode("utf-8", "replace") for path in root.rglob("*") if path.is_file()
    )


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_log_batches_the_collector_did_not_take_wait_in_the_spool_until_drained(
    protocol: str, otlp_sink: OtlpSink, otel_env: dict[str, str], tmp_path: Path
) -> None:
    """The collector is down for the app's whole run: its (redacted) log records go to the logs spool of
    that endpoint, next to the spans' one; ``faultspan spool --drain`` sends each to its own service."""
    collector = RotelCollector(otlp_sink.endpoint, log_dir=tmp_path / "rotel")
    spool_dir = tmp_path / "spool"
    try:
        env = {**otel_env, **collector.exporter_env(protocol)}  # type: ignore[arg-type]
        env["OTEL_PYTHON_FAULTSPAN_SPOOL_DIR"] = str(spool_dir)
        # The exit bound is shared by both signals' flushes: a loaded machine needs more than the default.
        env["OTEL_PYTHON_FAULTSPAN_SHUTDOWN_TIMEOUT_MILLIS"] = "10000"
        run_instrumented(APP, env=env, OTEL_TRACES_EXPORTER="otlp", OTEL_LOGS_EXPORTER="otlp")
        destinations = sorted(path.name for path in spool_dir.iterdir() if path.is_dir())
        assert len(destinations) == 2
        assert [name for name in destinations if name.startswith("logs_")], destinations
        assert [secret for secret in ISSUE_SECRETS if secret in _spool_text(spool_dir)] == []
        faultspan = Path(sys.executable).parent / "faultspan"
        status = subprocess.run(
            [str(faultspan), "spool", str(spool_dir), "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(status.stdout)["pending_log_records"] >= 3
        collector.start()
        drained = subprocess.run(
            [str(faultspan), "spool", str(spool_dir), "--drain"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert drained.returncode == 0, drained.stdout + drained.stderr
        _spans, logs = _received(otlp_sink)
        assert any(record.body == "charge failed for card [REDACTED]" for record in logs)
    finally:
        collector.close()


def test_push_re_sends_the_packages_log_records(
    *,
    collector: RotelCollector,
    otlp_sink: OtlpSink,
    otel_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    packages = tmp_path / "packages"
    env = {**otel_env, "OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR": str(packages)}
    run_instrumented(APP, env=env, OTEL_TRACES_EXPORTER="faultspan", OTEL_LOGS_EXPORTER="none")
    assert list(packages.glob("*.fspkg"))
    for name, value in collector.exporter_env("http/protobuf").items():
        monkeypatch.setenv(name, value)
    assert main(["push", str(packages)]) == 0
    assert "log records" in capsys.readouterr().out
    _spans, logs = _received(otlp_sink)
    assert any(record.body == "refunding order 7" for record in logs)
