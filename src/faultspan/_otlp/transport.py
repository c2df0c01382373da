"""Sending one OTLP trace request to the endpoint of the standard ``OTEL_EXPORTER_OTLP_*`` variables.

The variables mean what they mean to the Python SDK's OTLP exporters, so the environment that configures an
application also configures ``faultspan push``: the ``_TRACES_`` variables win over the general ones, the
default protocol is grpc, the timeout is in seconds, and the failures the SDK retries (gRPC UNAVAILABLE and
friends, HTTP 429/502/503/504, connection errors) are retried with jittered exponential backoff while the
timeout allows. A request that is still failing that way when the timeout runs out raises ``Unreachable``;
any other refusal raises ``Rejected`` for that request only.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.util.re import parse_env_headers

from faultspan.packages.format import TRACE, Package

PROTOCOLS = ("grpc", "http/protobuf", "http/json")
_PREFIX = "OTEL_EXPORTER_OTLP_"
_MAX_ATTEMPTS = 6  # as the SDK's exporters
_RETRYABLE_GRPC = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
_CONTENT_TYPES = {"http/protobuf": "application/x-protobuf", "http/json": "application/json"}


class EndpointError(ValueError):
    """A malformed variable; ``str()`` names it and says why."""


class Rejected(Exception):
    """The endpoint refused this request for good; ``str()`` is the one-line reason."""


class Unreachable(Exception):
    """The endpoint could not be reached, or kept answering "try later", for the whole timeout."""


@dataclass(frozen=True)
class _Retry:
    """A failure the SDK would retry: the reason, and the delay the endpoint asked for, if any."""

    reason: str
    delay: float | None = None


@dataclass(frozen=True)
class Endpoint:
    protocol: str
    url: str
    headers: Mapping[str, str]
    timeout: float
    insecure: bool
    certificate: str | None
    gzip: bool

    @property
    def key(self) -> str:
        """Names the endpoint in messages and in the push record: protocol and URL, never credentials."""
        parts = urlsplit(self.url)
        netloc = parts.netloc.rpartition("@")[2]
        return f"{self.protocol} {urlunsplit(parts._replace(netloc=netloc))}"


def _variable(environ: Mapping[str, str], name: str) -> tuple[str, str | None]:
    for variable in (f"{_PREFIX}TRACES_{name}", f"{_PREFIX}{name}"):
        value = environ.get(variable, "").strip()
        if value:
            return variable, value
    return f"{_PREFIX}{name}", None


def resolve(environ: Mapping[str, str] = os.environ) -> Endpoint:
    """The trace endpoint the environment configures; raises ``EndpointError`` for a malformed variable."""
    name, protocol = _variable(environ, "PROTOCOL")
    protocol = protocol or "grpc"
    if protocol not in PROTOCOLS:
        raise EndpointError(f"{name}: unsupported protocol {protocol!r} (expected {', '.join(PROTOCOLS)})")
    name, given = _variable(environ, "ENDPOINT")
    if protocol == "grpc":
        url = given or "http://localhost:4317"
    elif given and name == f"{_PREFIX}TRACES_ENDPOINT":  # the signal's URL is used as it is
        url = given
    else:  # the general endpoint is a base URL
        url = f"{(given or 'http://localhost:4318').removesuffix('/')}/v1/traces"
    scheme = urlsplit(url).scheme
    if protocol != "grpc" and scheme not in ("http", "https"):
        raise EndpointError(f"{name}: {url!r} is not an http:// or https:// URL")
    name, raw_timeout = _variable(environ, "TIMEOUT")
    try:
        timeout = float(raw_timeout or 10)
    except ValueError:
        raise EndpointError(f"{name}: {raw_timeout!r} is not a number of seconds") from None
    if not timeout > 0:
        raise EndpointError(f"{name}: {raw_timeout!r} is not a positive number of seconds")
    name, compression = _variable(environ, "COMPRESSION")
    if compression not in (None, "none", "gzip"):
        raise EndpointError(f"{name}: unsupported compression {compression!r} (expected gzip or none)")
    _, insecure = _variable(environ, "INSECURE")
    _, headers = _variable(environ, "HEADERS")
    _, certificate = _variable(environ, "CERTIFICATE")
    return Endpoint(
        protocol=protocol,
        url=url,
        headers=parse_env_headers(headers or "", liberal=True),
        timeout=timeout,
        insecure=scheme != "https" and (insecure.lower() == "true" if insecure else scheme == "http"),
        certificate=certificate,
        gzip=compression == "gzip",
    )


def _read_certificate(endpoint: Endpoint) -> bytes | None:
    if endpoint.certificate is None:
        return None
    try:
        with open(endpoint.certificate, "rb") as stream:
            return stream.read()
    except OSError as error:
        raise EndpointError(
            f"{_PREFIX}CERTIFICATE: cannot read {endpoint.certificate} ({error.strerror})"
        ) from None


def _check_partial_success(response: Any) -> None:
    partial = response.partial_success
    if partial.rejected_spans:
        detail = f": {partial.error_message}" if partial.error_message else ""
        raise Rejected(f"the endpoint rejected {partial.rejected_spans} spans{detail}")


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "no details"


def _decode_response(protocol: str, answer: bytes) -> Any:
    """The endpoint's ``ExportTraceServiceResponse``, or None when a 2xx answer has no OTLP body."""
    try:
        if protocol == "http/json":
            return json_format.Parse(answer, ExportTraceServiceResponse(), ignore_unknown_fields=True)
        return ExportTraceServiceResponse.FromString(answer)
    except (json_format.ParseError, DecodeError):
        return None


class Sender:
    """Sends ``trace.json`` documents, one request each, over one gRPC channel or one TLS context."""

    def __init__(self, endpoint: Endpoint) -> None:
        """Raises ``EndpointError`` when the certificate file cannot be read."""
        self.endpoint = endpoint
        certificate = _read_certificate(endpoint)
        self._attempt: Callable[[Package, float], _Retry | None]
        if endpoint.protocol == "grpc":
            target = urlsplit(endpoint.url).netloc or endpoint.url
            compression = grpc.Compression.Gzip if endpoint.gzip else grpc.Compression.NoCompression
            if endpoint.insecure:
                self._channel = grpc.insecure_channel(target, compression=compression)
            else:
                credentials = grpc.ssl_channel_credentials(root_certificates=certificate)
                self._channel = grpc.secure_channel(target, credentials, compression=compression)
            self._export = TraceServiceStub(self._channel).Export  # type: ignore[no-untyped-call]
            self._attempt = self._grpc
        else:
            self._channel = None
            authorities = certificate.decode("ascii") if certificate else None
            self._context = ssl.create_default_context(cadata=authorities)
            self._attempt = self._http

    def send(self, package: Package) -> None:
        """Deliver the package's ``ExportTraceServiceRequest`` (already decoded by verification); raises
        ``Rejected`` or ``Unreachable``."""
        deadline = time.monotonic() + self.endpoint.timeout
        for attempt in range(_MAX_ATTEMPTS):
            retry = self._attempt(package, max(deadline - time.monotonic(), 0.001))
            if retry is None:
                return
            backoff = retry.delay if retry.delay is not None else 2**attempt * random.uniform(0.8, 1.2)
            if attempt + 1 == _MAX_ATTEMPTS or backoff > deadline - time.monotonic():
                raise Unreachable(retry.reason)
            time.sleep(backoff)

    def _grpc(self, package: Package, timeout: float) -> _Retry | None:
        metadata = tuple(self.endpoint.headers.items())
        try:
            response = self._export(package.request, metadata=metadata, timeout=timeout)
        except grpc.RpcError as error:
            reason = f"{error.code().name}: {_one_line(error.details() or '')}"
            if error.code() in _RETRYABLE_GRPC:
                return _Retry(reason)
            raise Rejected(reason) from None
        _check_partial_success(response)
        return None

    def _http(self, package: Package, timeout: float) -> _Retry | None:
        protocol = self.endpoint.protocol
        if protocol == "http/json":
            body = json.dumps(package.members[TRACE], separators=(",", ":")).encode("utf-8")
        else:
            body = package.request.SerializeToString()
        headers = {"Content-Type": _CONTENT_TYPES[protocol], **self.endpoint.headers}
        if self.endpoint.gzip:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        request = urllib.request.Request(self.endpoint.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self._context) as response:
                answer = response.read()
        except urllib.error.HTTPError as error:
            reason = f"HTTP {error.code} {error.reason}"
            if error.code in _RETRYABLE_HTTP:
                delay = error.headers.get("Retry-After", "")
                return _Retry(reason, float(delay) if delay.isdigit() else None)
            raise Rejected(reason) from None
        except OSError as error:  # URLError, refused, reset, timed out
            return _Retry(_one_line(str(getattr(error, "reason", error))))
        parsed = _decode_response(protocol, answer) if answer else None
        if parsed is not None:
            _check_partial_success(parsed)
        return None

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
