"""Real-collector test support: an in-test OTLP/gRPC trace sink and a managed rotel collector.

Topology used by the tests::

    app (SDK / subprocess) --OTLP grpc|http--> rotel-agent --OTLP grpc (gzip)--> OtlpSink (in this process)

Everything listens on 127.0.0.1 only. Synchronisation never sleeps blindly: the sink wakes waiters through
a ``threading.Condition`` on every request, and collector readiness is a bounded loop of real connection
attempts paced by waiting on the collector process itself (so an early exit is noticed at once).
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    DESCRIPTOR as _LOGS_SERVICE_FILE,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    DESCRIPTOR as _METRICS_SERVICE_FILE,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    DESCRIPTOR as _TRACE_SERVICE_FILE,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

__all__ = [
    "ROTEL_CONFIG",
    "CollectorStartError",
    "OtlpSink",
    "ReceivedEvent",
    "ReceivedLog",
    "ReceivedSpan",
    "RotelCollector",
    "decode_any_value",
    "decode_attributes",
    "free_port",
    "read_rotel_config",
    "rotel_binary",
]

LOOPBACK = "127.0.0.1"
_TRACE_SERVICE = _TRACE_SERVICE_FILE.services_by_name["TraceService"].full_name
_LOGS_SERVICE = _LOGS_SERVICE_FILE.services_by_name["LogsService"].full_name
_METRICS_SERVICE = _METRICS_SERVICE_FILE.services_by_name["MetricsService"].full_name
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
Item = TypeVar("Item")


def free_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 a moment ago (bind to port 0, read it back, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


# ----------------------------------------------------------------------------------------------------
# Decoding of received OTLP data
# ----------------------------------------------------------------------------------------------------


def decode_any_value(value: AnyValue) -> object:
    """Turn an OTLP ``AnyValue`` into plain Python (str/int/float/bool/bytes/list/dict/None)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bytes_value":
        return value.bytes_value
    if kind == "array_value":
        return [decode_any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return decode_attributes(value.kvlist_value.values)
    # string_value_strindex only makes sense with a profiles dictionary; keep it visible rather than guess.
    return f"<strindex:{value.string_value_strindex}>"


def decode_attributes(attributes: Sequence[KeyValue]) -> dict[str, object]:
    """Turn a repeated ``KeyValue`` field into a dict (last key wins, as in the SDK)."""
    return {kv.key: decode_any_value(kv.value) for kv in attributes}


@dataclass(frozen=True)
class ReceivedEvent:
    """One span event as it arrived downstream of the collector."""

    name: str
    attributes: dict[str, object]
    time_unix_nano: int


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived downstream of the collector, flattened with its resource and scope."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: dict[str, object]
    events: list[ReceivedEvent]
    status_code: int
    status_message: str
    resource: dict[str, object]
    scope_name: str
    scope_version: str = ""
    links: list[tuple[str, str, dict[str, object]]] = field(default_factory=list)

    def events_named(self, name: str) -> list[ReceivedEvent]:
        """All events of this span called ``name`` (e.g. ``"exception"``), in order."""
        return [event for event in self.events if event.name == name]


@dataclass(frozen=True)
class ReceivedLog:
    """One log record as it arrived downstream of the collector, with its resource and scope."""

    body: object
    attributes: dict[str, object]
    event_name: str
    severity_number: int
    severity_text: str
    trace_id: str
    span_id: str
    time_unix_nano: int
    resource: dict[str, object]
    scope_name: str


def flatten_logs(request: ExportLogsServiceRequest) -> list[ReceivedLog]:
    return [
        ReceivedLog(
            body=decode_any_value(record.body),
            attributes=decode_attributes(record.attributes),
            event_name=record.event_name,
            severity_number=record.severity_number,
            severity_text=record.severity_text,
            trace_id=record.trace_id.hex(),
            span_id=record.span_id.hex(),
            time_unix_nano=record.time_unix_nano,
            resource=decode_attributes(resource_logs.resource.attributes),
            scope_name=scope_logs.scope.name,
        )
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
    ]


def flatten_request(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    """Flatten one export request into ``ReceivedSpan`` records, in wire order."""
    out: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = decode_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name
            scope_version = scope_spans.scope.version
            out.extend(
                ReceivedSpan(
                    name=span.name,
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    kind=span.kind,
                    start_time_unix_nano=span.start_time_unix_nano,
                    end_time_unix_nano=span.end_time_unix_nano,
                    attributes=decode_attributes(span.attributes),
                    events=[
                        ReceivedEvent(
                            name=event.name,
                            attributes=decode_attributes(event.attributes),
                            time_unix_nano=event.time_unix_nano,
                        )
                        for event in span.events
                    ],
                    status_code=span.status.code,
                    status_message=span.status.message,
                    resource=dict(resource),
                    scope_name=scope_name,
                    scope_version=scope_version,
                    links=[
                        (link.trace_id.hex(), link.span_id.hex(), decode_attributes(link.attributes))
                        for link in span.links
                    ],
                )
                for span in scope_spans.spans
            )
    return out


# ----------------------------------------------------------------------------------------------------
# The downstream sink
# ----------------------------------------------------------------------------------------------------


class OtlpSink:
    """An OTLP/gRPC receiver on 127.0.0.1 that records every ``ExportTraceServiceRequest`` and
    ``ExportLogsServiceRequest`` (and every ``ExportMetricsServiceRequest``: ``metric_requests``,
    ``wait_for_metrics``).

    The services are registered with a raw-bytes request deserializer, so ``raw_bytes()`` returns exactly
    the (decompressed) protobuf payloads that arrived, not a re-serialisation. grpcio handles rotel's gzip.
    """

    def __init__(
        self,
        *,
        max_workers: int = 4,
        max_message_bytes: int = _MAX_MESSAGE_BYTES,
        require_metadata: tuple[str, str] | None = None,
        server_credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        """With ``require_metadata``, a trace Export without that metadata is answered UNAUTHENTICATED;
        with ``server_credentials``, the sink listens over TLS."""
        self._require_metadata = require_metadata
        self.metadata: list[dict[str, str]] = []  # of each accepted trace request, in arrival order
        self._cond = threading.Condition()
        self._raw: list[bytes] = []
        self._requests: list[ExportTraceServiceRequest] = []
        self._spans: list[ReceivedSpan] = []
        self._logs: list[ReceivedLog] = []
        self._attempts = 0
        self._rejected = 0
        self._fail_status: grpc.StatusCode | None = None
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="otlp-sink"),
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        handler = grpc.method_handlers_generic_handler(
            _TRACE_SERVICE,
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    self._export,
                    request_deserializer=None,  # keep the exact bytes
                    response_serializer=ExportTraceServiceResponse.SerializeToString,
                )
            },
        )
        logs = grpc.method_handlers_generic_handler(
            _LOGS_SERVICE,
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    self._export_logs,
                    request_deserializer=None,
                    response_serializer=ExportLogsServiceResponse.SerializeToString,
                )
            },
        )
        self._metric_requests: list[ExportMetricsServiceRequest] = []
        metrics_handler = grpc.method_handlers_generic_handler(
            _METRICS_SERVICE,
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    self._export_metrics,
                    request_deserializer=ExportMetricsServiceRequest.FromString,
                    response_serializer=ExportMetricsServiceResponse.SerializeToString,
                )
            },
        )
        self._server.add_generic_rpc_handlers((handler, logs, metrics_handler))
        address = f"{LOOPBACK}:0"
        self.port: int = (
            self._server.add_insecure_port(address)
            if server_credentials is None
            else self._server.add_secure_port(address, server_credentials)
        )
        if not self.port:
            raise RuntimeError("OtlpSink could not bind 127.0.0.1:0")
        self._server.start()
        self._stopped = False

    # -- server side -------------------------------------------------------------------------------

    def _export(self, raw: bytes, context: grpc.ServicerContext) -> ExportTraceServiceResponse:
        metadata = {key: str(value) for key, value in context.invocation_metadata()}
        with self._cond:
            self._attempts += 1
            status = self._fail_status
            required = self._require_metadata
            if status is None and required is not None and metadata.get(required[0]) != required[1]:
                status = grpc.StatusCode.UNAUTHENTICATED
            if status is not None:
                self._rejected += 1
                self._cond.notify_all()
        if status is not None:
            context.abort(status, f"OtlpSink told to fail with {status.name}")
        request = ExportTraceServiceRequest.FromString(raw)
        spans = flatten_request(request)
        with self._cond:
            self.metadata.append(metadata)
            self._raw.append(bytes(raw))
            self._requests.append(request)
            self._spans.extend(spans)
            self._cond.notify_all()
        return ExportTraceServiceResponse()

    def _export_logs(self, raw: bytes, context: grpc.ServicerContext) -> ExportLogsServiceResponse:
        with self._cond:
            self._attempts += 1
            status = self._fail_status
            if status is not None:
                self._rejected += 1
                self._cond.notify_all()
        if status is not None:
            context.abort(status, f"OtlpSink told to fail with {status.name}")
        records = flatten_logs(ExportLogsServiceRequest.FromString(raw))
        with self._cond:
            self._raw.append(bytes(raw))
            self._logs.extend(records)
            self._cond.notify_all()
        return ExportLogsServiceResponse()

    def _export_metrics(
        self, request: ExportMetricsServiceRequest, context: grpc.ServicerContext
    ) -> ExportMetricsServiceResponse:
        with self._cond:
            self._metric_requests.append(request)
            self._cond.notify_all()
        return ExportMetricsServiceResponse()

    # -- public API --------------------------------------------------------------------------------

    def metric_requests(self) -> list[ExportMetricsServiceRequest]:
        """Snapshot of the metrics export requests, in arrival order."""
        with self._cond:
            return list(self._metric_requests)

    def wait_for_metrics(
        self, predicate: Callable[[list[ExportMetricsServiceRequest]], bool], timeout: float = 15.0
    ) -> list[ExportMetricsServiceRequest]:
        """Block until ``predicate(all metrics requests so far)`` is true; return that snapshot."""
        return self._wait(
            self._metric_requests,
            predicate,
            timeout,
            lambda: (
                f"wait_for_metrics timed out after {timeout:.1f}s: "
                f"{len(self._metric_requests)} metrics requests"
            ),
        )

    @property
    def endpoint(self) -> str:
        """``"127.0.0.1:PORT"``; prefix with ``http://`` for clients that want a URL."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def requests(self) -> list[ExportTraceServiceRequest]:
        """Snapshot of the accepted requests, in arrival order."""
        with self._cond:
            return list(self._requests)

    @property
    def attempts(self) -> int:
        """Export calls seen, including rejected ones."""
        with self._cond:
            return self._attempts

    @property
    def rejected(self) -> int:
        """Export calls answered with the ``fail_with`` status."""
        with self._cond:
            return self._rejected

    def spans(self) -> list[ReceivedSpan]:
        """Snapshot of every accepted span, flattened, in arrival order."""
        with self._cond:
            return list(self._spans)

    def logs(self) -> list[ReceivedLog]:
        """Snapshot of every accepted log record, flattened, in arrival order."""
        with self._cond:
            return list(self._logs)

    def wait_for_logs(
        self, predicate: Callable[[list[ReceivedLog]], bool], timeout: float = 15.0
    ) -> list[ReceivedLog]:
        """Block until ``predicate(all log records so far)`` is true; return that snapshot."""
        return self._wait(
            self._logs,
            predicate,
            timeout,
            lambda: (
                self._summary_locked(f"wait_for_logs timed out after {timeout:.1f}s")
                + f", {len(self._logs)} log records"
            ),
        )

    def raw_bytes(self) -> bytes:
        """The exact serialized payloads of all accepted requests, concatenated (for needle searches)."""
        with self._cond:
            return b"".join(self._raw)

    def fail_with(self, status: grpc.StatusCode | None) -> None:
        """Answer every following Export with ``status`` (e.g. UNAVAILABLE); ``None`` accepts again."""
        if status is grpc.StatusCode.OK:
            raise ValueError("use fail_with(None) to accept requests again")
        with self._cond:
            self._fail_status = status

    def clear(self) -> None:
        """Forget everything received so far (counters included)."""
        with self._cond:
            self._raw.clear()
            self.metadata.clear()
            self._requests.clear()
            self._spans.clear()
            self._logs.clear()
            self._attempts = 0
            self._rejected = 0

    def wait_for(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = 15.0
    ) -> list[ReceivedSpan]:
        """Block until ``predicate(all spans so far)`` is true; return that snapshot.

        Woken by every received request (no polling). Raises ``AssertionError`` with a summary on timeout.
        """
        return self._wait(
            self._spans,
            predicate,
            timeout,
            lambda: self._summary_locked(f"wait_for timed out after {timeout:.1f}s"),
        )

    def _wait(
        self,
        received: list[Item],
        predicate: Callable[[list[Item]], bool],
        timeout: float,
        failure: Callable[[], str],
    ) -> list[Item]:
        """Until ``predicate(snapshot of received)`` holds, woken by every request; ``failure()`` (called
        under the lock) is the message on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                snapshot = list(received)
                if predicate(snapshot):
                    return snapshot
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(failure())
                self._cond.wait(remaining)

    def wait_for_spans(self, count: int = 1, timeout: float = 15.0) -> list[ReceivedSpan]:
        """Block until at least ``count`` spans arrived."""
        return self.wait_for(lambda spans: len(spans) >= count, timeout)

    def wait_for_span(self, name: str, timeout: float = 15.0) -> ReceivedSpan:
        """Block until a span called ``name`` arrived; return the first one."""
        spans = self.wait_for(lambda spans: any(s.name == name for s in spans), timeout)
        return next(s for s in spans if s.name == name)

    def wait_for_attempts(self, count: int, timeout: float = 15.0) -> int:
        """Block until at least ``count`` Export calls (accepted or rejected) were seen."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._attempts < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        self._summary_locked(f"expected {count} export attempts within {timeout:.1f}s")
                    )
                self._cond.wait(remaining)
            return self._attempts

    def _summary_locked(self, headline: str) -> str:
        names = [s.name for s in self._spans]
        shown = ", ".join(repr(n) for n in names[:30]) + (" ..." if len(names) > 30 else "")
        fail = self._fail_status.name if self._fail_status is not None else "none"
        return (
            f"{headline}: sink {self.endpoint} saw {self._attempts} export attempts "
            f"({self._rejected} rejected, fail_with={fail}), {len(self._requests)} accepted requests, "
            f"{len(self._spans)} spans [{shown}]"
        )

    def summary(self) -> str:
        with self._cond:
            return self._summary_locked("OtlpSink")

    def stop(self, grace: float | None = None) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.stop(grace).wait()

    def __enter__(self) -> OtlpSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<OtlpSink {self.endpoint}>"


# ----------------------------------------------------------------------------------------------------
# The rotel collector
# ----------------------------------------------------------------------------------------------------


class CollectorStartError(RuntimeError):
    """rotel did not become ready; the message carries its log."""


def rotel_binary() -> Path:
    """Path of the ``rotel-agent`` executable shipped inside the ``rotel`` wheel."""
    import rotel

    path = Path(rotel.__file__).parent / "rotel-agent"
    if not path.is_file():
        raise FileNotFoundError(f"rotel-agent not found at {path}")
    return path


ROTEL_CONFIG = Path(__file__).resolve().parents[2] / "collector-config" / "rotel.env"


def read_rotel_config(path: Path = ROTEL_CONFIG) -> dict[str, str]:
    """The ``ROTEL_*`` settings of a ``rotel.env`` file: ``KEY=VALUE`` lines, ``#`` comment lines."""
    settings: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, separator, value = line.partition("=")
        if not separator or not key.startswith("ROTEL_") or key != key.strip():
            raise ValueError(f"{path}:{number}: expected ROTEL_NAME=value, got {line!r}")
        settings[key] = value.strip()
    return settings


# The defaults of every RotelCollector: the committed test configuration.
_CONFIG = read_rotel_config()


def _collector_env(settings: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTEL_", "OTEL_"))}
    env["NO_COLOR"] = "1"
    env.update(settings)
    return env


def _http_probe(port: int, timeout: float) -> bool:
    """An empty OTLP/HTTP trace export: rotel answers 200 and records nothing."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("POST", "/v1/traces", body=b"", headers={"Content-Type": "application/x-protobuf"})
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _tcp_probe(port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


_ADDR_IN_USE = "Address already in use"
_LOG_SEQUENCE = itertools.count(1)


class RotelCollector:
    """A rotel-agent process in the foreground (so ``pid`` is the collector itself) on loopback ports.

    Ports: unless given, both are picked with ``port_factory``; if rotel exits at once with "Address already
    in use", new ports are picked (up to ``port_attempts`` times). Once the collector has been ready, or once
    an endpoint property has been read, the ports are pinned: ``stop()``/``start()``/``restart()`` reuse them,
    so a client keeps talking to the same address across a collector restart.

    ``exporter_endpoint`` is where rotel forwards traces (``"127.0.0.1:PORT"`` or a URL); ``None`` uses
    rotel's ``blackhole`` exporter. Retry backoffs default to fast values so "downstream down for a while"
    tests stay quick; pass ``None`` to keep rotel's defaults (5 s initial, 30 s max).

    Settings reach rotel as ``ROTEL_*`` variables (``environment()``): every line of
    ``collector-config/rotel.env`` (the defaults of the keyword arguments below come from it), then the
    ports, the exporter endpoint and any argument given here.
    """

    def __init__(
        self,
        exporter_endpoint: str | None,
        *,
        log_dir: Path | None = None,
        grpc_port: int | None = None,
        http_port: int | None = None,
        exporter_protocol: Literal["grpc", "http"] = _CONFIG["ROTEL_OTLP_EXPORTER_PROTOCOL"],  # type: ignore[assignment]
        batch_timeout: str = _CONFIG["ROTEL_BATCH_TIMEOUT"],
        retry_initial_backoff: str | None = _CONFIG.get("ROTEL_OTLP_EXPORTER_RETRY_INITIAL_BACKOFF"),
        retry_max_backoff: str | None = _CONFIG.get("ROTEL_OTLP_EXPORTER_RETRY_MAX_BACKOFF"),
        extra_args: Sequence[str] = (),
        start_timeout: float = 10.0,
        port_attempts: int = 5,
        port_factory: Callable[[], int] = free_port,
        binary: Path | None = None,
    ) -> None:
        if exporter_endpoint is not None and "://" not in exporter_endpoint:
            exporter_endpoint = f"http://{exporter_endpoint}"
        self.exporter_endpoint = exporter_endpoint
        self.exporter_protocol = exporter_protocol
        self.batch_timeout = batch_timeout
        self.retry_initial_backoff = retry_initial_backoff
        self.retry_max_backoff = retry_max_backoff
        self.extra_args = tuple(extra_args)
        self.start_timeout = start_timeout
        self.port_attempts = port_attempts
        self._port_factory = port_factory
        self.binary = binary if binary is not None else rotel_binary()
        self._pinned = grpc_port is not None or http_port is not None
        self._grpc_port = grpc_port if grpc_port is not None else port_factory()
        self._http_port = http_port if http_port is not None else port_factory()
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if log_dir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="rotel-")
            log_dir = Path(self._tmpdir.name)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"rotel-{os.getpid()}-{next(_LOG_SEQUENCE)}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._last_pid: int | None = None
        self.starts = 0
        self.last_start_seconds: float | None = None
        self.last_stop_seconds: float | None = None

    # -- addresses ---------------------------------------------------------------------------------

    @property
    def grpc_port(self) -> int:
        self._pinned = True
        return self._grpc_port

    @property
    def http_port(self) -> int:
        self._pinned = True
        return self._http_port

    @property
    def grpc_endpoint(self) -> str:
        """``http://127.0.0.1:G``: OTEL_EXPORTER_OTLP_ENDPOINT for the grpc protocol (insecure)."""
        return f"http://{LOOPBACK}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """``http://127.0.0.1:H``: OTEL_EXPORTER_OTLP_ENDPOINT for http/protobuf (the SDK appends /v1/traces);
        an explicit exporter ``endpoint=`` argument needs ``f"{http_endpoint}/v1/traces"``."""
        return f"http://{LOOPBACK}:{self.http_port}"

    def exporter_env(self, protocol: Literal["grpc", "http/protobuf"] = "grpc") -> dict[str, str]:
        """The OTEL_* variables that point a stock SDK at this collector with ``protocol``."""
        endpoint = self.grpc_endpoint if protocol == "grpc" else self.http_endpoint
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}

    # -- process -----------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """Pid of the running (or last) collector process."""
        if self._last_pid is None:
            raise RuntimeError("collector was never started")
        return self._last_pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def environment(self) -> dict[str, str]:
        """The ``ROTEL_*`` variables rotel starts with: ``collector-config/rotel.env`` with this instance's
        ports, exporter and settings applied (``None`` removes a setting, so rotel's default applies)."""
        settings: dict[str, str | None] = {
            **_CONFIG,
            "ROTEL_OTLP_GRPC_ENDPOINT": f"{LOOPBACK}:{self._grpc_port}",
            "ROTEL_OTLP_HTTP_ENDPOINT": f"{LOOPBACK}:{self._http_port}",
            "ROTEL_BATCH_TIMEOUT": self.batch_timeout,
        }
        if self.exporter_endpoint is None:
            settings = {k: v for k, v in settings.items() if not k.startswith("ROTEL_OTLP_EXPORTER_")}
            settings["ROTEL_EXPORTER"] = "blackhole"
        else:
            settings |= {
                "ROTEL_EXPORTER": "otlp",
                "ROTEL_OTLP_EXPORTER_ENDPOINT": self.exporter_endpoint,
                "ROTEL_OTLP_EXPORTER_PROTOCOL": self.exporter_protocol,
                "ROTEL_OTLP_EXPORTER_RETRY_INITIAL_BACKOFF": self.retry_initial_backoff,
                "ROTEL_OTLP_EXPORTER_RETRY_MAX_BACKOFF": self.retry_max_backoff,
            }
        return {key: value for key, value in settings.items() if value is not None}

    def command(self) -> list[str]:
        """The command line; the settings are in ``environment()``."""
        return [str(self.binary), "start", *self.extra_args]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> RotelCollector:
        """Spawn rotel and return once it is ready; raise ``CollectorStartError`` (with its log) otherwise."""
        if self.running:
            raise RuntimeError(f"collector already running (pid {self.pid})")
        began = time.monotonic()
        attempts = 1 if self._pinned else max(1, self.port_attempts)
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self._grpc_port = self._port_factory()
                self._http_port = self._port_factory()
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            with self.log_path.open("ab") as log:
                settings = self.environment()
                shown = " ".join([*(f"{k}={v}" for k, v in settings.items()), *self.command()])
                log.write(f"### start #{self.starts + 1}.{attempt}: {shown}\n".encode())
                log.flush()
                self._proc = subprocess.Popen(
                    self.command(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=_collector_env(settings),
                    close_fds=True,
                )
            self._last_pid = self._proc.pid
            if self._wait_ready(began + self.start_timeout):
                self._pinned = True
                self.starts += 1
                self.last_start_seconds = time.monotonic() - began
                return self
            # It exited before becoming ready.
            with self.log_path.open("rb") as log:
                log.seek(offset)
                output = log.read().decode(errors="replace")
            if _ADDR_IN_USE in output and attempt < attempts:
                continue
            raise CollectorStartError(
                f"rotel exited with code {self._proc.returncode} before becoming ready "
                f"(grpc {self._grpc_port}, http {self._http_port}, attempt {attempt}/{attempts}); "
                f"log {self.log_path}:\n{output}"
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_ready(self, deadline: float) -> bool:
        """True once ready; False if the process exited; raises on deadline (after killing it)."""
        proc = self._proc
        assert proc is not None
        while True:
            if proc.poll() is not None:
                return False
            if (
                _http_probe(self._http_port, timeout=0.5)
                and _tcp_probe(self._grpc_port, timeout=0.5)
                and proc.poll() is None
            ):
                return True
            if time.monotonic() >= deadline:
                self._terminate(timeout=2.0)
                raise CollectorStartError(
                    f"rotel (pid {proc.pid}) not ready within {self.start_timeout:.1f}s "
                    f"(grpc {self._grpc_port}, http {self._http_port}); "
                    f"log {self.log_path}:\n{self.log_text()}"
                )
            # Pace the next connection attempt by waiting on the process itself: returns early if it dies.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.005)

    def _terminate(self, timeout: float) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # Popen checks the pid is still its child before signalling
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5.0)
        return proc.returncode

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the collector's own pid, wait up to ``timeout`` s, then SIGKILL. Returns the exit code.

        rotel exits in milliseconds, or after about 3 s when it still holds data it cannot deliver (dropped).
        """
        began = time.monotonic()
        code = self._terminate(timeout)
        if code is not None:
            self.last_stop_seconds = time.monotonic() - began
        return code

    def kill(self) -> int | None:
        """SIGKILL the collector's own pid (a crash, no flush)."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5.0)
        return proc.returncode

    def restart(self, timeout: float = 5.0) -> RotelCollector:
        """Stop, then start again on the same ports."""
        self.stop(timeout)
        return self.start()

    def close(self) -> None:
        """Stop and remove the temporary log directory if this object created one."""
        self.stop()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> RotelCollector:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self._last_pid}" if self.running else "stopped"
        return f"<RotelCollector grpc {LOOPBACK}:{self._grpc_port} http {LOOPBACK}:{self._http_port} {state}>"
