"""Wiring into the OpenTelemetry SDK: distro, configurator, post-instrument safety net, configure().

Under ``opentelemetry-instrument`` our configurator passes the SDK's public ``span_processors`` and
``export_span_processor`` arguments, so every exporter named in ``OTEL_TRACES_EXPORTER`` sits downstream of
faultspan's processor. When another configurator won (opentelemetry-distro installed too, or
``OTEL_CONFIG_FILE``), the post-instrument hook re-parents the processors that configurator registered under
faultspan's, before any span has started.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, Literal

from opentelemetry import metrics, trace
from opentelemetry._logs import get_logger_provider
from opentelemetry.environment_variables import (
    OTEL_LOGS_EXPORTER,
    OTEL_METRICS_EXPORTER,
    OTEL_TRACES_EXPORTER,
)
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.instrumentation.environment_variables import OTEL_PYTHON_CONFIGURATOR
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk.environment_variables import OTEL_EXPORTER_OTLP_PROTOCOL
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from faultspan._capture import config, runtime
from faultspan._otlp import sdk_private
from faultspan._pipeline import durable, lifecycle, recording
from faultspan._pipeline.keep_failed import KeepFailedSampler, keeping_failed
from faultspan._pipeline.log_processor import FaultspanLogRecordProcessor
from faultspan._pipeline.processor import FaultspanSpanProcessor

_logger = logging.getLogger("faultspan")
OTEL_CONFIG_FILE = "OTEL_CONFIG_FILE"
LIFECYCLE = "faultspan_lifecycle"  # the entry-point name of lifecycle.LifecycleInstrumentor
_STANDARD_OPTIONS = {"service_name", "traces_exporter", "exporters", "metrics_exporter", "metric_readers"}


def _warn_config_file() -> None:
    if os.environ.get(OTEL_CONFIG_FILE):
        config.warn_once(
            "config-file",
            "faultspan: OTEL_CONFIG_FILE is set, so the SDK builds its pipeline from that file and ignores "
            "faultspan's configurator; faultspan re-parents the file's span processors under its redacting "
            "processor after start-up. Spans exported before instrumentation finishes are not redacted.",
        )


class FaultspanDistro(BaseDistro):  # type: ignore[misc]
    """Same defaults as opentelemetry-distro, plus faultspan's configurator."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault(OTEL_PYTHON_CONFIGURATOR, "faultspan")
        os.environ.setdefault(OTEL_TRACES_EXPORTER, "otlp")
        os.environ.setdefault(OTEL_METRICS_EXPORTER, "otlp")
        os.environ.setdefault(OTEL_LOGS_EXPORTER, "otlp")
        os.environ.setdefault(OTEL_EXPORTER_OTLP_PROTOCOL, "grpc")
        _warn_config_file()


def _processor(downstream: Sequence[SpanProcessor] = ()) -> FaultspanSpanProcessor:
    """faultspan's processor, giving each exporter attached to it durable delivery where it applies."""
    return FaultspanSpanProcessor(downstream, wiring=durable.wiring)


def _log_processor(downstream: Sequence[LogRecordProcessor] = ()) -> FaultspanLogRecordProcessor:
    """faultspan's log record processor, with durable delivery for each OTLP logs exporter attached."""
    return FaultspanLogRecordProcessor(downstream, wiring=durable.log_wiring)


class FaultspanConfigurator(sdk_private.SdkConfigurator):
    def _configure(self, **kwargs: Any) -> None:
        if os.environ.get(OTEL_CONFIG_FILE):
            _warn_config_file()
            sdk_private.configure_sdk(self, **kwargs)
            return
        processor = _processor()
        logs = _log_processor()
        if processor.held is not None:
            kwargs.setdefault("sampler", keeping_failed(sdk_private.configured_sampler()))
        sdk_private.configure_sdk(
            self,
            span_processors=[processor],
            export_span_processor=processor.attach,
            log_record_processors=[logs],
            export_log_record_processor=logs.attach,
            **kwargs,
        )


def install(provider: TracerProvider) -> FaultspanSpanProcessor:
    """Put faultspan's processor in front of whatever ``provider`` already has (idempotent)."""
    installed: list[FaultspanSpanProcessor] = []

    def replace(existing: tuple[SpanProcessor, ...]) -> tuple[SpanProcessor, ...] | None:
        for processor in existing:
            if isinstance(processor, FaultspanSpanProcessor):
                installed.append(processor)
                return None
        installed.append(_processor(existing))
        if existing:
            _logger.info("faultspan: placed %d existing span processor(s) behind its redactor", len(existing))
        return (installed[0],)

    sdk_private.replace_span_processors(provider, replace)
    faultspan = installed[0]
    if faultspan.held is not None and not isinstance(provider.sampler, KeepFailedSampler):
        provider.sampler = keeping_failed(provider.sampler)
        _logger.info("faultspan: keeping failed traces; tracers obtained before now keep their sampler")
    return faultspan


def install_logs(provider: LoggerProvider) -> FaultspanLogRecordProcessor:
    """Put faultspan's log record processor in front of whatever ``provider`` already has (idempotent)."""
    found: list[FaultspanLogRecordProcessor] = []

    def reparent(existing: tuple[LogRecordProcessor, ...]) -> Sequence[LogRecordProcessor] | None:
        for processor in existing:
            if isinstance(processor, FaultspanLogRecordProcessor):
                found.append(processor)
                return None
        found.append(_log_processor(existing))
        if existing:
            _logger.info("faultspan: placed %d log record processor(s) behind its redactor", len(existing))
        return found

    sdk_private.replace_log_record_processors(provider, reparent)
    return found[0]


def ensure_pipeline() -> None:
    """``opentelemetry_post_instrument`` hook: the safety net when faultspan's configurator did not run."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        try:
            install(provider)
        except Exception as err:
            _logger.warning("faultspan: spans from this process are NOT redacted: %s", err)
    logger_provider = get_logger_provider()
    if isinstance(logger_provider, LoggerProvider):
        try:
            install_logs(logger_provider)
        except Exception as err:
            _logger.warning("faultspan: log records from this process are NOT redacted: %s", err)


class Handle:
    """What ``configure()`` returns."""

    def __init__(
        self,
        provider: TracerProvider,
        processor: FaultspanSpanProcessor,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.provider = provider
        self.processor = processor
        self.meter_provider = meter_provider

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        ok = self.provider.force_flush(timeout_millis)
        if self.meter_provider is not None:
            ok = self.meter_provider.force_flush(timeout_millis) and ok
        return ok

    def shutdown(self) -> None:
        self.provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()
        recording.unwrap_record_exception()
        lifecycle.LifecycleInstrumentor().uninstrument()


def _names(option: str | Sequence[str] | None, variable: str, default: str) -> list[str]:
    names = option or os.environ.get(variable, default)
    if isinstance(names, str):
        names = names.split(",")
    return [name.strip() for name in names if name.strip() and name.strip() != "none"]


def _exporters(names: Sequence[str], signal: Literal["traces", "metrics"]) -> list[Any]:
    """Exporters (or metric readers) by ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` name, resolved
    exactly as the SDK does (``otlp`` follows the OTLP protocol variables); an unknown name is reported and
    skipped instead of disabling everything."""
    resolve: Callable[[str], Sequence[type[Any]]] = (
        sdk_private.trace_exporter_classes if signal == "traces" else sdk_private.metric_exporter_classes
    )
    exporters: list[Any] = []
    for name in names:
        try:
            classes = resolve(name)
        except Exception as err:
            config.warn_once(f"exporter:{name}", "faultspan: %s exporter %r ignored: %s", signal, name, err)
            continue
        exporters.extend(exporter() for exporter in classes)
    return exporters


def _meter_provider(options: dict[str, Any], resource: Resource) -> MeterProvider | None:
    """The global MeterProvider for ``faultspan.failures``, made here when none is set yet: a reader per
    ``metrics_exporter`` name (default: ``OTEL_METRICS_EXPORTER``, else as for traces), ``metric_readers``."""
    if isinstance(metrics.get_meter_provider(), MeterProvider):
        return None
    default = "none" if options.get("exporters") else "otlp"
    found = _exporters(_names(options.get("metrics_exporter"), OTEL_METRICS_EXPORTER, default), "metrics")
    readers = [
        *(item if isinstance(item, MetricReader) else PeriodicExportingMetricReader(item) for item in found),
        *options.get("metric_readers", ()),
    ]
    if not readers:
        return None
    provider = MeterProvider(resource=resource, metric_readers=readers)
    metrics.set_meter_provider(provider)
    return provider


def configure(**options: Any) -> Handle:
    """Programmatic set-up for apps not run under opentelemetry-instrument.

    Takes every faultspan option (the lower-case name of an ``OTEL_PYTHON_FAULTSPAN_*`` variable), plus
    ``service_name``, ``traces_exporter`` (names as in ``OTEL_TRACES_EXPORTER``), ``exporters``
    (SpanExporter instances), ``metrics_exporter`` (names as in ``OTEL_METRICS_EXPORTER``) and
    ``metric_readers`` (MetricReader instances). Unknown options are reported and ignored (strict mode:
    TypeError).
    """
    known = set(config.option_names()) | _STANDARD_OPTIONS
    for name in options:
        if name not in known:
            if options.get("strict"):
                raise TypeError(f"faultspan.configure: unknown option {name!r}")
            config.warn_once(f"configure:{name}", "faultspan.configure: unknown option %r ignored", name)
    runtime.load({name: value for name, value in options.items() if name in known - _STANDARD_OPTIONS})
    service_name = options.get("service_name")
    resource = Resource.create({"service.name": service_name} if service_name else {})
    existing = trace.get_tracer_provider()
    if isinstance(existing, TracerProvider):
        provider = existing
        _logger.info("faultspan.configure: a TracerProvider is already set; adding faultspan to it")
    else:
        sampler = sdk_private.configured_sampler()
        if runtime.current().settings.keep_failed_traces:
            sampler = keeping_failed(sampler)
        provider = TracerProvider(resource=resource, sampler=sampler)
    processor = install(provider)
    default = "none" if options.get("exporters") else "otlp"
    names = _names(options.get("traces_exporter"), OTEL_TRACES_EXPORTER, default)
    for exporter in [*_exporters(names, "traces"), *options.get("exporters", ())]:
        provider.add_span_processor(processor.attach(exporter))
    if provider is not existing:
        trace.set_tracer_provider(provider)
    logger_provider = get_logger_provider()
    if isinstance(logger_provider, LoggerProvider):
        install_logs(logger_provider)
    meter_provider = _meter_provider(options, resource)
    if not config.instrumentation_disabled(LIFECYCLE):
        lifecycle.LifecycleInstrumentor().instrument()
    recording.wrap_record_exception()
    return Handle(provider, processor, meter_provider)
