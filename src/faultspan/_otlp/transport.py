"""The one OTLP transport: endpoint resolution, one request at a time, and one table of what an answer means.

Live delivery, the spool drain (live and ``faultspan spool --drain``) and ``faultspan push`` all send through
``Transport`` and classify every answer with ``grpc_outcome`` / ``http_outcome`` (the table is in
docs/delivery.md), so they agree on what is retried and what is given up. The variables mean what they mean
to the Python SDK's OTLP exporters: the signal's variables (``OTEL_EXPORTER_OTLP_TRACES_*``) win over the
general ones, the default protocol is grpc, the timeout is in seconds. Signal-generic: ``TRACES`` and ``LOGS``
differ only in their variables, HTTP path, gRPC service and message types.
"""

from __future__ import annotations

import enum
import gzip
import json
import os
import random
import ssl
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.util.re import parse_env_headers

from faultspan._capture import config
from faultspan._otlp.otlp_json import request_document

_MAX_ATTEMPTS = 6  # as the SDK's exporters
_CONTENT_TYPES = {"http/protobuf": "application/x-protobuf", "http/json": "application/json"}


class Outcome(enum.Enum):
    SENT = "sent"
    RETRY = "retry"  # unreachable, timed out, or an answer meaning "later": keep the data and try again
    REJECTED = "rejected"  # the endpoint will never take this data as it is: retrying cannot help
    TOO_LARGE = "too large"  # the request is over the endpoint's size limit: send it in smaller parts


_GRPC_OUTCOMES: Mapping[str, Outcome] = {  # by status name: grpc is imported only to send
    "OK": Outcome.SENT,
    # The OTLP specification's retryable codes.
    "CANCELLED": Outcome.RETRY,
    "DEADLINE_EXCEEDED": Outcome.RETRY,
    "ABORTED": Outcome.RETRY,
    "OUT_OF_RANGE": Outcome.RETRY,
    "UNAVAILABLE": Outcome.RETRY,
    "DATA_LOSS": Outcome.RETRY,
    "RESOURCE_EXHAUSTED": Outcome.RETRY,  # throttling; a message over the limit: TOO_LARGE
    # A collector stopped mid-request answers with a reset stream, which surfaces as these two.
    "UNKNOWN": Outcome.RETRY,
    "INTERNAL": Outcome.RETRY,
    # About the credentials, not the data: kept until the endpoint's configuration is fixed.
    "UNAUTHENTICATED": Outcome.RETRY,
    "PERMISSION_DENIED": Outcome.RETRY,
    # The data itself, or a receiver that is no OTLP service for this signal.
    "INVALID_ARGUMENT": Outcome.REJECTED,
    "NOT_FOUND": Outcome.REJECTED,
    "ALREADY_EXISTS": Outcome.REJECTED,
    "FAILED_PRECONDITION": Outcome.REJECTED,
    "UNIMPLEMENTED": Outcome.REJECTED,
}
_HTTP_RETRY = frozenset({401, 403, 408, 429})
_HTTP_TOO_LARGE = 413


def grpc_outcome(status: str, details: str = "") -> Outcome:
    """What a gRPC status (its name, e.g. ``UNAVAILABLE``) means for the request it answered."""
    if status == "RESOURCE_EXHAUSTED" and "larger than max" in details:
        return Outcome.TOO_LARGE
    return _GRPC_OUTCOMES.get(status, Outcome.RETRY)


def http_outcome(status: int) -> Outcome:
    """What an HTTP status means for the request it answered: 2xx sent, 413 too large, 401/403/408/429 and
    every 5xx retried, any other 4xx rejected, anything else (a redirect not followed) retried."""
    if 200 <= status < 300:
        return Outcome.SENT
    if status == _HTTP_TOO_LARGE:
        return Outcome.TOO_LARGE
    if 400 <= status < 500 and status not in _HTTP_RETRY:
        return Outcome.REJECTED
    return Outcome.RETRY


@dataclass(frozen=True)
class Signal:
    """What differs between signals on the wire."""

    name: str  # "traces": the OTEL_EXPORTER_OTLP_TRACES_* variables and the HTTP path /v1/traces
    service: str
    request: Any  # the Export*ServiceRequest message class
    response: Any
    resources: str  # the request's repeated field, its scopes' field and their items' field
    scopes: str
    items: str
    rejected: str  # the partial-success count

    @property
    def method(self) -> str:
        return f"/{self.service}/Export"


TRACES = Signal(
    "traces",
    "opentelemetry.proto.collector.trace.v1.TraceService",
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
    "resource_spans",
    "scope_spans",
    "spans",
    "rejected_spans",
)
LOGS = Signal(
    "logs",
    "opentelemetry.proto.collector.logs.v1.LogsService",
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
    "resource_logs",
    "scope_logs",
    "log_records",
    "rejected_log_records",
)


def split(signal: Signal, payload: bytes) -> list[bytes]:
    """The request in two halves of its items (resources and scopes repeated as needed); empty when it
    holds fewer than two items."""
    request = signal.request.FromString(payload)
    leaves = [
        (resource, scope, item)
        for resource in getattr(request, signal.resources)
        for scope in getattr(resource, signal.scopes)
        for item in getattr(scope, signal.items)
    ]
    if len(leaves) < 2:
        return []
    middle = len(leaves) // 2
    return [_rebuild(signal, leaves[:middle]), _rebuild(signal, leaves[middle:])]


def _rebuild(signal: Signal, leaves: list[tuple[Any, Any, Any]]) -> bytes:
    request = signal.request()
    resource_in = scope_in = resource_out = scope_out = None
    for resource, scope, item in leaves:
        if resource is not resource_in:
            resource_in, resource_out = resource, getattr(request, signal.resources).add()
            resource_out.resource.CopyFrom(resource.resource)
            resource_out.schema_url = resource.schema_url
            scope_in = None
        if scope is not scope_in:
            scope_in, scope_out = scope, getattr(resource_out, signal.scopes).add()
            scope_out.scope.CopyFrom(scope.scope)
            scope_out.schema_url = scope.schema_url
        getattr(scope_out, signal.items).add().CopyFrom(item)
    data: bytes = request.SerializeToString()
    return data


class EndpointError(ValueError):
    """A malformed variable; ``str()`` names it and says why."""


class Rejected(Exception):
    """The endpoint refused this request for good; ``str()`` is the one-line reason."""


class Unreachable(Exception):
    """The endpoint could not be reached, or kept answering "try later", for the whole timeout."""


@dataclass(frozen=True)
class Endpoint:
    """Where and how to send. Headers and credentials are kept in memory only (never in a repr, never in
    the spool's ``destination.json``)."""

    protocol: str
    url: str
    headers: Mapping[str, str] = field(repr=False)
    timeout: float
    insecure: bool
    certificate: str | None  # a CA file (or, for HTTP, a directory)
    compression: str | None  # "gzip", "deflate" or None
    client_certificate: str | None = None  # PEM; holds the key too when client_key is None (HTTP)
    client_key: str | None = None
    credentials: Any = field(default=None, repr=False)  # gRPC: ChannelCredentials to use as they are
    channel_options: tuple[tuple[str, Any], ...] = ()

    @property
    def public_url(self) -> str:
        """The URL without credentials."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))

    @property
    def key(self) -> str:
        """Names the endpoint in messages and in the push record: protocol and URL, never credentials."""
        return f"{self.protocol} {self.public_url}"


def resolve(environ: Mapping[str, str] = os.environ, signal: Signal = TRACES) -> Endpoint:
    """The endpoint the environment configures for ``signal``; raises ``EndpointError`` for a malformed
    variable (read in the configuration module, as ``faultspan config`` checks it)."""
    try:
        target = config.otlp_target(environ, signal.name)
    except config.ConfigError as err:
        raise EndpointError(str(err)) from None
    return Endpoint(
        protocol=target.protocol,
        url=target.url,
        headers=parse_env_headers(target.headers, liberal=True),
        timeout=target.timeout,
        insecure=target.insecure,
        certificate=target.certificate,
        compression="gzip" if target.gzip else None,
        client_certificate=config.otlp_variable(environ, "CLIENT_CERTIFICATE", signal.name)[1],
        client_key=config.otlp_variable(environ, "CLIENT_KEY", signal.name)[1],
    )


@dataclass(frozen=True)
class Answer:
    """One request's result: its outcome, a one-line reason unless sent, the delay the endpoint asked for,
    and, on a success, the partial-success refusal the endpoint reported (if any)."""

    outcome: Outcome
    reason: str = ""
    delay: float | None = None
    partial: str | None = None


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "no details"


def _read(path: str | None, name: str) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError as error:
        raise EndpointError(f"{config.OTLP_PREFIX}{name}: cannot read {path} ({error.strerror})") from None


def _tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    """The HTTP client's TLS context: the endpoint's certificate authorities (the system's when none) and
    its client certificate; raises ``EndpointError``."""
    authorities, pair = endpoint.certificate, endpoint.client_certificate
    try:
        if authorities is not None and os.path.isdir(authorities):
            context = ssl.create_default_context(capath=authorities)
        else:
            context = ssl.create_default_context(cafile=authorities)
    except (OSError, ssl.SSLError) as error:
        raise EndpointError(f"{config.OTLP_PREFIX}CERTIFICATE: cannot load {authorities} ({error})") from None
    if pair is None:
        return context
    try:
        # An encrypted key is refused, never prompted for on the terminal (which would hang the host).
        context.load_cert_chain(pair, endpoint.client_key, password=lambda: b"")
    except (OSError, ssl.SSLError) as error:
        raise EndpointError(f"{config.OTLP_PREFIX}CLIENT_CERTIFICATE: cannot load {pair} ({error})") from None
    return context


class Transport:
    """Sends serialized ``signal`` requests to ``endpoint``, over one gRPC channel or one TLS context."""

    def __init__(self, endpoint: Endpoint, signal: Signal = TRACES) -> None:
        """Raises ``EndpointError`` when a certificate or key file cannot be read."""
        self.endpoint = endpoint
        self.signal = signal
        self._attempt: Callable[[bytes, float], Answer]
        self._channel: Any = None
        if endpoint.protocol == "grpc":
            self._certificate = _read(endpoint.certificate, "CERTIFICATE")
            self._client_chain = _read(endpoint.client_certificate, "CLIENT_CERTIFICATE")
            self._client_key = _read(endpoint.client_key, "CLIENT_KEY")
            self._connect()
            self._attempt = self._grpc
        else:
            self._context = _tls_context(endpoint)
            self._attempt = self._http

    @property
    def destination(self) -> str:
        """Names the spool of this endpoint: ``grpc host:port`` or ``http URL``, after the signal for every
        signal but traces (``logs grpc host:port``), so no batch is sent to another signal's service."""
        where = f"grpc {self._target()}" if self.endpoint.protocol == "grpc" else f"http {self.endpoint.url}"
        return where if self.signal is TRACES else f"{self.signal.name} {where}"

    def _target(self) -> str:
        return urlsplit(self.endpoint.url).netloc or self.endpoint.url

    def _connect(self) -> None:
        """A fresh channel; also after UNAVAILABLE, as the SDK does (grpc's reconnect backoff grows to
        minutes, which would delay recovery)."""
        import grpc

        if self._channel is not None:
            self._channel.close()
        endpoint = self.endpoint
        target = self._target()
        compression = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}.get(
            endpoint.compression or "", grpc.Compression.NoCompression
        )
        options = endpoint.channel_options
        if endpoint.insecure:
            self._channel = grpc.insecure_channel(target, options, compression)
        else:
            credentials = endpoint.credentials or grpc.ssl_channel_credentials(
                self._certificate, self._client_key, self._client_chain
            )
            self._channel = grpc.secure_channel(target, credentials, options, compression)
        self._call = self._channel.unary_unary(self.signal.method)

    def attempt(self, payload: bytes, timeout: float) -> Answer:
        """One request with ``payload`` (a serialized request), classified; never raises for the
        endpoint's answer or an unreachable endpoint."""
        return self._attempt(payload, max(timeout, 0.001))

    def deliver(
        self, payload: bytes, timeout: float, aside: Callable[[bytes], None] | None = None
    ) -> Outcome:
        """One attempt per part, ``timeout`` each: a request too large is sent in halves (recursively),
        a single item too large is rejected. Never TOO_LARGE; RETRY as soon as one part must wait. Each
        rejected part (the whole request when it is rejected as it is) goes to ``aside`` when given, so the
        parts sent beside it do not hide it."""
        outcome = self.attempt(payload, timeout).outcome
        if outcome is Outcome.TOO_LARGE:
            parts = split(self.signal, payload)
            if parts:
                outcomes = [self.deliver(part, timeout, aside) for part in parts]
                if Outcome.RETRY in outcomes:
                    return Outcome.RETRY
                return Outcome.SENT if Outcome.SENT in outcomes else Outcome.REJECTED
            outcome = Outcome.REJECTED
        if outcome is Outcome.REJECTED and aside is not None:
            aside(payload)
        return outcome

    def send(self, payload: bytes) -> None:
        """Deliver ``payload`` within the endpoint's timeout, retrying what the table retries with jittered
        exponential backoff (or the delay the endpoint asked for); raises ``Rejected`` or ``Unreachable``."""
        deadline = time.monotonic() + self.endpoint.timeout
        for attempt in range(_MAX_ATTEMPTS):
            answer = self.attempt(payload, deadline - time.monotonic())
            if answer.outcome is Outcome.SENT:
                if answer.partial:
                    raise Rejected(answer.partial)
                return
            if answer.outcome is Outcome.TOO_LARGE:
                parts = split(self.signal, payload)
                if not parts:
                    raise Rejected(f"{answer.reason} (a single item over the endpoint's limit)")
                for part in parts:
                    self.send(part)
                return
            if answer.outcome is Outcome.REJECTED:
                raise Rejected(answer.reason)
            backoff = answer.delay if answer.delay is not None else 2**attempt * random.uniform(0.8, 1.2)
            if attempt + 1 == _MAX_ATTEMPTS or backoff > deadline - time.monotonic():
                raise Unreachable(answer.reason)
            time.sleep(backoff)

    def _partial(self, response: Any) -> str | None:
        partial = response.partial_success
        rejected = getattr(partial, self.signal.rejected)
        if not rejected:
            return None
        detail = f": {partial.error_message}" if partial.error_message else ""
        return f"the endpoint rejected {rejected} {self.signal.items.replace('_', ' ')}{detail}"

    def _grpc(self, payload: bytes, timeout: float) -> Answer:
        import grpc

        metadata = tuple(self.endpoint.headers.items())
        try:
            answer = self._call(payload, metadata=metadata, timeout=timeout)
        except grpc.RpcError as error:
            code, details = error.code(), error.details() or ""
            if code is grpc.StatusCode.UNAVAILABLE:
                self._connect()
            return Answer(grpc_outcome(code.name, details), f"{code.name}: {_one_line(details)}")
        except ValueError:  # the channel was closed by a concurrent close()
            return Answer(Outcome.RETRY, "the channel was closed")
        try:
            response = self.signal.response.FromString(answer)
        except DecodeError:
            return Answer(Outcome.SENT)
        return Answer(Outcome.SENT, partial=self._partial(response))

    def _http(self, payload: bytes, timeout: float) -> Answer:
        protocol = self.endpoint.protocol
        if protocol == "http/json":
            document = request_document(self.signal.request.FromString(payload))
            body = json.dumps(document, separators=(",", ":")).encode("utf-8")
        else:
            body = payload
        headers = {"Content-Type": _CONTENT_TYPES[protocol], **self.endpoint.headers}
        if self.endpoint.compression is not None:
            body = gzip.compress(body) if self.endpoint.compression == "gzip" else zlib.compress(body)
            headers["Content-Encoding"] = self.endpoint.compression
        request = urllib.request.Request(self.endpoint.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self._context) as response:
                status, answer = response.status, response.read()
        except urllib.error.HTTPError as error:
            with error:
                delay = error.headers.get("Retry-After", "")
                return Answer(
                    http_outcome(error.code),
                    f"HTTP {error.code} {error.reason}",
                    float(delay) if delay.isdigit() else None,
                )
        except OSError as error:  # URLError, refused, reset, timed out
            return Answer(Outcome.RETRY, _one_line(str(getattr(error, "reason", error))))
        outcome = http_outcome(status)
        if outcome is not Outcome.SENT:
            return Answer(outcome, f"HTTP {status}")
        parsed = self._decode(answer) if answer else None
        return Answer(Outcome.SENT, partial=None if parsed is None else self._partial(parsed))

    def _decode(self, answer: bytes) -> Any:
        """The endpoint's response message, or None when a 2xx answer has no OTLP body."""
        try:
            if self.endpoint.protocol == "http/json":
                return json_format.Parse(answer, self.signal.response(), ignore_unknown_fields=True)
            return self.signal.response.FromString(answer)
        except (json_format.ParseError, DecodeError):
            return None

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
