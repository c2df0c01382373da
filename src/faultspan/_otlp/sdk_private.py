"""Every access to a private name of the OpenTelemetry SDK and its exporters, in one place.

Each function here is covered by tests/test_sdk_private.py, which names the installed SDK version when the
SDK changed under it: an SDK upgrade is re-checked by running that one file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, SynchronousMultiLogRecordProcessor
from opentelemetry.sdk.trace import (
    ReadableSpan,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import SpanKind

if TYPE_CHECKING:
    from opentelemetry.sdk._configuration import _OTelSDKConfigurator
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader

    SdkConfigurator = _OTelSDKConfigurator

GRPC_EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
HTTP_EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
GRPC_LOG_EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.grpc._log_exporter"
HTTP_LOG_EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.http._log_exporter"


def plain_attributes(attributes: object) -> Mapping[str, Any]:
    """The SDK's BoundedAttributes iterates through Python-level Mapping methods; its own dict does not,
    which matters on the worker that reads every attribute of every span."""
    if type(attributes) is BoundedAttributes:
        return attributes._dict
    return attributes if isinstance(attributes, Mapping) else {}


def span_attributes(span: ReadableSpan) -> Mapping[str, Any]:
    """The span's own attributes without the copy ``span.attributes`` makes."""
    return plain_attributes(span._attributes)


def _non_empty(items: object) -> bool:
    """A BoundedList's length is a Python-level ``__len__``; its deque's is not (read on every span)."""
    return bool(items._dq) if type(items) is BoundedList else bool(items)  # type: ignore[attr-defined]


def has_events(span: ReadableSpan) -> bool:
    """Without the tuple copy ``span.events`` makes (most spans carry none)."""
    return _non_empty(span._events)


def has_links(span: ReadableSpan) -> bool:
    return _non_empty(span._links)


def lone_attributes(span: ReadableSpan) -> Mapping[str, Any] | None:
    """The span's own attributes when it has no events and no links (most spans), else None: what
    ``span_attributes``, ``has_events`` and ``has_links`` tell, in one call on every span's path."""
    events, links = span._events, span._links
    if (events._dq if type(events) is BoundedList else events) or (  # type: ignore[attr-defined]
        links._dq if type(links) is BoundedList else links  # type: ignore[attr-defined]
    ):
        return None
    attributes = span._attributes
    return attributes._dict if type(attributes) is BoundedAttributes else plain_attributes(attributes)


def plain_spans(spans: Sequence[ReadableSpan]) -> tuple[list[str], list[Mapping[str, Any] | None]]:
    """The spans' names, and for each its ``lone_attributes`` when its status carries no description, else
    None: what redaction's plain-span test reads, for a batch of spans in one call."""
    found = [
        None if status is None or status._description else lone_attributes(span)  # no status: not exported
        for span, status in zip(spans, map(_STATUS, spans), strict=True)
    ]
    return list(map(_NAME, spans)), found


_NAME = attrgetter("_name")
_STATUS = attrgetter("_status")


# A SpanContext is the tuple (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid) its
# properties read: typed so here, for the item at TRACE_FLAGS.
ContextTuple = tuple[int, int, bool, int, Any, bool]
span_context: Callable[[ReadableSpan], ContextTuple] = attrgetter("_context")
"""``span.context`` (the same for a live span) without the property's Python call: read on every span."""
kind_and_context: Callable[[ReadableSpan], tuple[SpanKind, ContextTuple]] = attrgetter("_kind", "_context")
TRACE_FLAGS = 3
"""The index of a ``SpanContext``'s trace flags: the tuple item its ``trace_flags`` property reads."""


def bounded(attributes: dict[str, Any], dropped: int) -> Mapping[str, Any]:
    """``attributes`` keeping the SDK's dropped-attribute count, without re-validating every value (the
    SDK's own ``__deepcopy__`` assigns the dict the same way)."""
    if not dropped:
        return attributes
    copy = BoundedAttributes(immutable=False)
    copy._dict = attributes
    copy.dropped = dropped
    copy._immutable = True
    return copy


def max_attribute_length(span: object) -> int | None:
    """The span's attribute value length limit (``OTEL_*ATTRIBUTE_VALUE_LENGTH_LIMIT``), None if unlimited."""
    value = getattr(getattr(span, "_limits", None), "max_attribute_length", None)
    return value if type(value) is int else None


# -- the SDK's configurator (its module costs ~45 ms to import: only the wiring needs it) -----------------


def __getattr__(name: str) -> Any:
    """``SdkConfigurator``: the SDK's configurator, which distros subclass (its own documented route)."""
    if name == "SdkConfigurator":
        from opentelemetry.sdk._configuration import _OTelSDKConfigurator

        return _OTelSDKConfigurator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def configure_sdk(configurator: SdkConfigurator, **kwargs: Any) -> None:
    """The SDK's own configuration (``span_processors`` and ``export_span_processor`` since 1.40)."""
    from opentelemetry.sdk._configuration import _OTelSDKConfigurator

    _OTelSDKConfigurator._configure(configurator, **kwargs)  # type: ignore[no-untyped-call]


def trace_exporter_classes(name: str) -> list[type[SpanExporter]]:
    """The exporter classes an ``OTEL_TRACES_EXPORTER`` name stands for, resolved as the SDK does (``otlp``
    follows the protocol variables); raises for an unknown name."""
    return _exporter_classes(name, "traces")


def metric_exporter_classes(name: str) -> list[type[MetricExporter | MetricReader]]:
    """The exporter (or reader) classes an ``OTEL_METRICS_EXPORTER`` name stands for, as above."""
    return _exporter_classes(name, "metrics")


def _exporter_classes(name: str, signal: Literal["traces", "metrics"]) -> list[Any]:
    from opentelemetry.sdk._configuration import _get_exporter_entry_point, _import_exporters

    index = 0 if signal == "traces" else 1
    names: list[list[Any]] = [[], [], []]  # traces, metrics, logs
    names[index] = [_get_exporter_entry_point(name, signal)]
    return list(_import_exporters(*names)[index].values())


def configured_sampler() -> Sampler:
    """The sampler the SDK's configurator builds from ``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG``:
    the built-in names and any ``opentelemetry_traces_sampler`` entry point; the SDK's default otherwise."""
    from opentelemetry.sdk._configuration import _get_sampler, _import_sampler
    from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

    return _import_sampler(_get_sampler()) or _get_from_env_or_default()


def replace_span_processors(
    provider: TracerProvider, replace: Callable[[tuple[SpanProcessor, ...]], Sequence[SpanProcessor] | None]
) -> None:
    """Swap the provider's registered processors for ``replace(current)`` (unchanged when it returns None),
    under the provider's lock; raises TypeError for a provider whose processors cannot be swapped."""
    multi = provider._active_span_processor
    if not isinstance(multi, SynchronousMultiSpanProcessor):
        raise TypeError(f"cannot install faultspan on {type(multi).__name__}")
    with multi._lock:
        replaced = replace(multi._span_processors)
        if replaced is not None:
            multi._span_processors = tuple(replaced)


# -- the OTLP exporters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExporterTarget:
    """Where and how an SDK OTLP span or log exporter sends, as it was configured (arguments, then the
    environment): everything faultspan's transport needs to send exactly as the exporter would. Never
    persisted (headers and credentials stay in memory)."""

    protocol: str  # "grpc" or "http/protobuf"
    endpoint: str  # gRPC: host:port as the exporter keeps it; HTTP: the full URL
    insecure: bool  # gRPC: a plaintext channel; HTTP: False (the URL's scheme decides)
    headers: tuple[tuple[str, str], ...]  # as sent (HTTP: the environment's merged with the code's)
    timeout: float
    compression: str | None  # "gzip", "deflate" or None
    signal: str = "traces"  # the name of the transport's Signal (the transport imports this module's kin)
    certificate: str | None = None  # HTTP: the CA file or directory the session verifies with
    client_certificate: str | None = None  # HTTP: a PEM file, holding the key too when client_key is None
    client_key: str | None = None
    credentials: Any = None  # gRPC: the exporter's own ChannelCredentials (from the code or the environment)
    channel_options: tuple[tuple[str, Any], ...] = ()
    unsupported: str | None = None  # what faultspan cannot carry: then the exporter has to send itself


def exporter_target(exporter: object) -> ExporterTarget | None:
    """The target of an SDK OTLP span or log exporter, None for any other exporter. An exporter class whose
    module was never imported cannot be the one at hand, so neither protocol's stack is imported to check."""
    import sys

    for signal, grpc_module, http_module, name in (
        ("traces", GRPC_EXPORTER_MODULE, HTTP_EXPORTER_MODULE, "OTLPSpanExporter"),
        ("logs", GRPC_LOG_EXPORTER_MODULE, HTTP_LOG_EXPORTER_MODULE, "OTLPLogExporter"),
    ):
        grpc_class = getattr(sys.modules.get(grpc_module), name, None)
        http_class = getattr(sys.modules.get(http_module), name, None)
        if grpc_class is not None and isinstance(exporter, grpc_class):
            return _grpc_target(exporter, signal)
        if http_class is not None and isinstance(exporter, http_class):
            return _http_target(exporter, signal)
    return None


def _grpc_target(exporter: Any, signal: str) -> ExporterTarget:
    import grpc

    credentials = None if exporter._insecure else exporter._credentials
    unsupported = None
    if credentials is not None and not isinstance(credentials, grpc.ChannelCredentials):
        unsupported = f"credentials of type {type(credentials).__name__}"
    compression = {grpc.Compression.Gzip: "gzip", grpc.Compression.Deflate: "deflate"}
    return ExporterTarget(
        "grpc",
        exporter._endpoint,
        exporter._insecure,
        tuple(exporter._headers or ()),
        float(exporter._timeout),
        compression.get(exporter._compression),
        signal,
        credentials=credentials,
        channel_options=tuple(exporter._channel_options),
        unsupported=unsupported,
    )


def _http_target(exporter: Any, signal: str) -> ExporterTarget:
    from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport

    client = exporter._client
    compression = client._compression.value
    target = ExporterTarget(
        "http/protobuf",
        client._endpoint,
        False,
        tuple(client._headers.items()),
        float(client._timeout),
        None if compression == "none" else compression,
        signal,
    )
    transport = client._transport
    if type(transport) is not RequestsHTTPTransport:
        return dataclasses.replace(target, unsupported=f"an HTTP transport {type(transport).__name__}")
    session = transport._session
    unsupported = _session_difference(session)
    if unsupported is not None:
        return dataclasses.replace(target, unsupported=unsupported)
    authorities = _verify_locations(session)
    if authorities is None:
        return dataclasses.replace(target, unsupported="a session that does not verify certificates")
    cert = session.cert
    certificate, key = (cert[0], cert[1]) if isinstance(cert, tuple) else (cert, None)
    return dataclasses.replace(
        target,
        certificate=authorities,
        client_certificate=certificate,
        client_key=key,
    )


_SESSION_SETTINGS = ("auth", "proxies", "hooks", "params", "stream", "trust_env", "max_redirects", "headers")


def _session_difference(session: Any) -> str | None:
    """What a ``requests.Session`` does beyond what faultspan's transport can do (an auth hook, a proxy,
    an adapter of its own...), None for the session the exporter builds itself."""
    import requests

    if type(session) is not requests.Session:
        return f"a session of type {type(session).__name__}"
    with requests.Session() as fresh:
        for name in _SESSION_SETTINGS:
            if getattr(session, name) != getattr(fresh, name):
                return f"a session with its own {name}"
        if len(session.cookies):
            return "a session with cookies"
        if {prefix: type(adapter) for prefix, adapter in session.adapters.items()} != {
            prefix: type(adapter) for prefix, adapter in fresh.adapters.items()
        }:
            return "a session with adapters of its own"
    return None


def _verify_locations(session: Any) -> str | None:
    """The CA file or directory ``requests`` verifies this session's requests with, as it merges them:
    ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` first (they win over the session's), then the exporter's
    certificate file, then requests' own bundle; None when it does not verify at all."""
    import os

    from requests.utils import DEFAULT_CA_BUNDLE_PATH, extract_zipped_paths

    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        return bundle
    if session.verify is False:
        return None
    return session.verify if isinstance(session.verify, str) else extract_zipped_paths(DEFAULT_CA_BUNDLE_PATH)


# -- the contrib instrumentations (their markers, read to stay out of their way) -------------------------

DJANGO_MIDDLEWARE = "opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"
"""The dotted path opentelemetry-instrumentation-django inserts into ``settings.MIDDLEWARE``."""


def instrumented_by_opentelemetry(app: object) -> bool:
    """Whether opentelemetry-instrumentation-flask / -fastapi instrumented this application object."""
    return bool(getattr(app, "_is_instrumented_by_opentelemetry", False))


# -- the logs SDK -------------------------------------------------------------------------------------


def replace_log_record_processors(
    provider: LoggerProvider,
    replace: Callable[[tuple[LogRecordProcessor, ...]], Sequence[LogRecordProcessor] | None],
) -> None:
    """Swap the provider's registered log record processors for ``replace(current)`` (unchanged when it
    returns None), under the provider's lock; TypeError for a provider whose processors cannot be swapped."""
    multi = provider._multi_log_record_processor
    if not isinstance(multi, SynchronousMultiLogRecordProcessor):
        raise TypeError(f"cannot install faultspan on {type(multi).__name__}")
    with multi._lock:
        replaced = replace(multi._log_record_processors)
        if replaced is not None:
            multi._log_record_processors = tuple(replaced)
