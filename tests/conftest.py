"""Shared fixtures. Keep this generic: a downstream OTLP sink, a real rotel collector, a clean OTEL env."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from support.collector import OtlpSink, RotelCollector

# The same examples on every run: a property that holds for all but a rare draw (a random token that happens
# to read as a word) must not make CI red one run in ten. To explore: ``--hypothesis-profile=default``.
settings.register_profile("faultspan", derandomize=True)
settings.load_profile("faultspan")


@pytest.fixture
def otlp_sink() -> Iterator[OtlpSink]:
    """An in-test OTLP/gRPC trace receiver on 127.0.0.1 (what the collector forwards to)."""
    sink = OtlpSink()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def collector(otlp_sink: OtlpSink, tmp_path: Path) -> Iterator[RotelCollector]:
    """A running rotel collector forwarding traces to ``otlp_sink``; stopped by its own pid at teardown.

    Its log is ``collector.log_path`` (under ``tmp_path``).
    """
    rotel = RotelCollector(otlp_sink.endpoint, log_dir=tmp_path / "rotel")
    rotel.start()
    try:
        yield rotel
    finally:
        rotel.close()


@pytest.fixture
def otel_env() -> dict[str, str]:
    """A copy of ``os.environ`` without any OTEL_* variable, for subprocesses; add what the test needs."""
    return {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}


@pytest.fixture
def app_env(otel_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """``otel_env`` with faultspan's durable spool under ``tmp_path``, out of the working tree."""
    return {**otel_env, "OTEL_PYTHON_FAULTSPAN_SPOOL_DIR": str(tmp_path / "spool")}


class Pipeline:
    """The process-wide test TracerProvider: faultspan's processor in front of an in-memory exporter."""

    def __init__(self) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from faultspan._pipeline.distro import install
        from faultspan_instrumentation.exceptions import ExceptionsInstrumentor

        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.processor = install(self.provider)
        self.processor.add_downstream(SimpleSpanProcessor(self.exporter))
        trace.set_tracer_provider(self.provider)
        if trace.get_tracer_provider() is not self.provider:
            raise RuntimeError("another test set a global TracerProvider first")
        ExceptionsInstrumentor().instrument()
        self.tracer = self.provider.get_tracer("tests")

    def spans(self) -> list:  # type: ignore[type-arg]
        """Everything exported since the last call (flushes the redaction worker first)."""
        self.provider.force_flush()
        spans = list(self.exporter.get_finished_spans())
        self.exporter.clear()
        return spans


_pipeline: Pipeline | None = None


@pytest.fixture
def pipeline() -> Pipeline:
    global _pipeline  # noqa: PLW0603 -- one global TracerProvider per test process
    if _pipeline is None:
        _pipeline = Pipeline()
    _pipeline.spans()
    return _pipeline
