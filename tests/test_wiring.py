"""The SDK wiring: the exceptions instrumentor, configure(), limits, disabled instrumentations."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
from opentelemetry.sdk.trace import Span, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import faultspan
from conftest import Pipeline
from faultspan._pipeline.distro import install
from faultspan._pipeline.recording import enriched_record_exception, sdk_record_exception
from faultspan_instrumentation.exceptions import ExceptionsInstrumentor
from support.collector import OtlpSink, RotelCollector
from support.instrumented import SHOP, run_instrumented


def test_instrumentor_is_idempotent_and_reversible(pipeline: Pipeline) -> None:
    instrumentor = ExceptionsInstrumentor()
    assert Span.record_exception is enriched_record_exception
    instrumentor.instrument()
    assert Span.record_exception is enriched_record_exception
    instrumentor.uninstrument()
    try:
        assert Span.record_exception is sdk_record_exception
        span = pipeline.tracer.start_span("plain")
        span.record_exception(ValueError("x"))
        span.end()
        (exported,) = pipeline.spans()
        assert "faultspan.frames" not in exported.events[0].attributes
    finally:
        instrumentor.instrument()
    assert Span.record_exception is enriched_record_exception


def test_value_length_limit_keeps_the_failure_readable(pipeline: Pipeline) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_attribute_length=400))
    install(provider).add_downstream(SimpleSpanProcessor(exporter))

    def recurse(depth: int) -> None:
        if depth == 0:
            raise OverflowError("the innermost line is kept")
        recurse(depth - 1)

    tracer = provider.get_tracer("limits")
    span = tracer.start_span("limited")
    try:
        recurse(40)
    except OverflowError as exc:
        span.record_exception(exc)
    span.end()
    provider.force_flush()
    (exported,) = exporter.get_finished_spans()
    attributes = exported.events[0].attributes
    assert attributes["exception.stacktrace"].endswith("OverflowError: the innermost line is kept\n")
    assert attributes["exception.stacktrace"].startswith("Traceback (most recent call last):")
    assert json.loads(attributes["faultspan.frames"])[-1]["function"] == "recurse"
    json.loads(attributes["faultspan.chain"])
    assert all(len(value) <= 400 for value in attributes.values() if isinstance(value, str))
    provider.shutdown()


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_configure_without_opentelemetry_instrument(
    collector: RotelCollector, otlp_sink: OtlpSink, otel_env: dict[str, str]
) -> None:
    code = """
        import faultspan
        handle = faultspan.configure(service_name="worker", traces_exporter="otlp", capture_locals=True,
                                     bogus_option=1)
        try:
            api_key = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
            raise RuntimeError("nightly export failed")
        except RuntimeError:
            faultspan.capture_exception(operation="nightly")
        handle.shutdown()
    """
    result = run_python(code, {**otel_env, **collector.exporter_env("grpc")})
    assert result.returncode == 0, result.stderr
    assert "unknown option 'bogus_option'" in result.stderr
    (span,) = otlp_sink.wait_for(lambda spans: any(span.name == "nightly" for span in spans))
    assert span.resource["service.name"] == "worker"
    (event,) = span.events_named("exception")
    frames = json.loads(str(event.attributes["faultspan.frames"]))
    assert frames[-1]["locals"]["api_key"] == "[REDACTED]"
    assert b"4eC39HqLyjWDarjtT1zdp7dc" not in otlp_sink.raw_bytes()


def test_disabled_instrumentor_still_gets_redaction_and_fingerprints(otel_env: dict[str, str]) -> None:
    result = run_instrumented(
        SHOP,
        env=otel_env,
        OTEL_SERVICE_NAME="shop",
        OTEL_TRACES_EXPORTER="console",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="faultspan_exceptions",
    )
    assert '"faultspan.frames"' not in result.stdout
    assert '"faultspan.fingerprint"' in result.stdout
    assert "4111 1111 1111 1111" not in result.stdout


def test_config_file_makes_faultspan_warn(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from faultspan._capture import config
    from faultspan._pipeline.distro import FaultspanDistro

    config._warned.discard("config-file")
    monkeypatch.setenv("OTEL_CONFIG_FILE", "/etc/otel/sdk.yaml")
    for name in (
        "OTEL_PYTHON_CONFIGURATOR",
        "OTEL_TRACES_EXPORTER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_LOGS_EXPORTER",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
    with caplog.at_level(logging.WARNING, logger="faultspan"):
        FaultspanDistro()._configure()
    assert "OTEL_CONFIG_FILE is set" in caplog.text
    assert os.environ["OTEL_PYTHON_CONFIGURATOR"] == "faultspan"


def test_strict_mode_raises_internal_errors(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    from faultspan._capture import exceptions, runtime

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("faultspan bug")

    monkeypatch.setattr(exceptions, "capture", broken)
    strict = runtime.load({"strict": True})
    try:
        assert strict.settings.strict
        with (
            pipeline.tracer.start_as_current_span("strict"),
            pytest.raises(RuntimeError, match="faultspan bug"),
        ):
            faultspan.capture_exception(ValueError("x"))
    finally:
        runtime.load()
    assert faultspan.capture_exception(ValueError("y"), operation="lenient") is None


IMPORT_EACH_FIRST = """
import importlib, pkgutil, sys
import faultspan, faultspan_instrumentation
names = [info.name for package in (faultspan, faultspan_instrumentation)
         for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
         if info.name != "faultspan.__main__"]
for name in names:
    for loaded in [key for key in sys.modules if key.startswith("faultspan")]:
        del sys.modules[loaded]
    importlib.import_module(name)
print(len(names))
"""


def test_every_module_imports_first_without_a_cycle() -> None:
    """An application may import any of our modules first (an instrumentor, the processor, a CLI module)."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH_FIRST], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 40
