"""What the Flask, Django and Starlette/FastAPI instrumentors share: one incoming request seen by a framework.

Each framework hook builds an ``Exchange`` while the server span is current and calls ``finish`` once the
response status is known. What ``finish`` writes depends on who made the span (docs/compatibility.md):

* the official instrumentation's span: its attributes, status and exception events are left exactly as it
  makes them. A failing request gets only what it cannot know: ``user.id``, the body when opted in, the
  headers of ``OTEL_PYTHON_FAULTSPAN_HTTP_CAPTURE_HEADERS`` (none by default), and the exception of a
  failing response that the official instrumentation does not record itself (one an error handler turned
  into a 5xx);
* the span faultspan opens where no official instrumentation is in use: request context in the HTTP
  semantic conventions that ``OTEL_SEMCONV_STABILITY_OPT_IN`` selects, with the request headers that
  ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST`` names, as the official one would.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.http import (
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST,
    get_custom_header_attributes,
    get_custom_headers,
    normalise_request_header_name,
    sanitize_method,
)

from faultspan._capture.redaction import REDACTED
from faultspan._capture.runtime import current, internal_error
from faultspan._pipeline import recording
from faultspan_instrumentation import _official

_owned: weakref.WeakSet[Span] = weakref.WeakSet()


@dataclass
class Exchange:
    """The request as a framework knows it once routing ran."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # case-insensitive where the framework's own mapping is
    client: str | None = None
    route: str | None = None
    user: str | None = None
    body: Callable[[], bytes | None] = lambda: None  # read only for a failure, and only when opted in


def is_failure(status: int) -> bool:
    return any(low <= status <= high for low, high in current().settings.http_failure_statuses)


def _text(data: bytes, limit: int) -> str:
    text = data[:limit].decode("utf-8", errors="replace")
    return text + "..." if len(data) > limit else text


def _headers(exchange: Exchange, names: list[str], sensitive: list[str]) -> dict[str, Any]:
    """``names`` (regexes, as the official variables take them) as the official attributes would be, each a
    tuple of strings, credentials masked."""
    captured = get_custom_header_attributes(exchange.headers, names, sensitive, normalise_request_header_name)
    redactor = current().redactor
    out: dict[str, Any] = {}
    for key, values in captured.items():
        secret = redactor.is_secret_key(key.rpartition(".")[2].replace("_", "-"))
        out[key] = tuple(REDACTED if secret else redactor.scrub_text(value) for value in values)
    return out


def request_attributes(exchange: Exchange, status: int | None) -> dict[str, Any]:
    """The request on a span faultspan opened, in the semantic conventions the official ones would use."""
    old, new = _official.http_modes()
    redactor = current().redactor
    method = sanitize_method(exchange.method)
    path = redactor.scrub_text(exchange.path)
    query = redactor.scrub_text("?" + exchange.query)[1:] if exchange.query else ""
    out: dict[str, Any] = {}
    if exchange.route:
        out["http.route"] = exchange.route
    if old:
        out["http.method"] = method
        out["http.target"] = f"{path}?{query}" if query else path
        if exchange.client:
            out["net.peer.ip"] = exchange.client
        if status is not None:
            out["http.status_code"] = status
    if new:
        out["http.request.method"] = method
        if method != exchange.method:
            out["http.request.method_original"] = exchange.method
        out["url.path"] = path
        if query:
            out["url.query"] = query
        if exchange.client:
            out["client.address"] = exchange.client
        if status is not None:
            out["http.response.status_code"] = status
    names = get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST)
    sensitive = get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS)
    out.update(_headers(exchange, names, sensitive))
    return out


def failure_attributes(exchange: Exchange, span_attributes: Mapping[str, Any]) -> dict[str, Any]:
    """What a failing request adds to any server span: the user, opted-in headers and body, never a key
    the span already has."""
    settings = current().settings
    out: dict[str, Any] = {}
    if exchange.user:
        out["user.id"] = exchange.user
    if settings.http_capture_headers:
        names = [re.escape(name.strip()) for name in settings.http_capture_headers]
        out.update(_headers(exchange, names, []))
    body = exchange.body() if settings.http_capture_body else None
    if body is not None:
        out["http.request.body"] = current().redactor.scrub_text(_text(body, settings.http_max_body_bytes))
    return {key: value for key, value in out.items() if key not in span_attributes}


def finish(
    span: Span,
    exchange: Callable[[], Exchange],
    status: int | None,
    exc: BaseException | None,
    *,
    recorded_elsewhere: bool = False,
) -> None:
    """Annotate the server span; record ``exc`` (or a failure without one) when ``status`` is a failure.

    ``status`` is None when the exception escapes the framework: always a failure. ``recorded_elsewhere``
    says that the span's owner records ``exc`` itself (the official instrumentation, or ``use_span`` of the
    span faultspan opened, for an exception that escapes): faultspan then only enriches that recording.
    ``exchange`` is built here, so that reading the framework's request can neither fail the request nor
    cost anything for a request that needs nothing.
    """
    if not span.is_recording() or not is_instrumentation_enabled():
        return
    try:
        owned = span in _owned
        failed = status is None or is_failure(status)
        if not owned and not failed:
            return
        request = exchange()
        if owned:
            span.set_attributes(request_attributes(request, status))
            span.update_name(f"{request.method} {request.route}" if request.route else request.method)
        if not failed:
            return
        span.set_attributes(failure_attributes(request, getattr(span, "attributes", None) or {}))
        if exc is not None:
            if not recorded_elsewhere:
                recording.record(span, exc, escaped=status is None)
        elif status is not None and getattr(getattr(span, "status", None), "status_code", None) is not (
            StatusCode.ERROR
        ):
            if owned and _official.http_modes()[1]:
                span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR, f"HTTP {status}" if owned else None))
    except Exception as err:
        internal_error("http-finish", "could not annotate the server span", err)


def owned() -> weakref.WeakSet[Span]:
    """The server spans faultspan opened itself."""
    return _owned


def needs_span(official_decides: bool) -> bool:
    """Start our own server span only where no official instrumentation decides and no span is open."""
    return (
        not official_decides and not trace.get_current_span().is_recording() and is_instrumentation_enabled()
    )


@contextmanager
def server_span(method: str, instrumentor: str) -> Iterator[Span]:
    """A SERVER span named after the method; ``finish`` renames it ``METHOD /route`` once routed."""
    with trace.get_tracer(instrumentor).start_as_current_span(method, kind=SpanKind.SERVER) as span:
        _owned.add(span)
        yield span


def wsgi_call(official_decides: Callable[[Any], bool], instrumentor: str) -> Callable[[Any], Any]:
    """For ``Patches.wrap``: an application's WSGI ``__call__`` that opens our server span when needed."""

    def make(previous: Callable[..., Any]) -> Callable[..., Any]:
        def __call__(app: Any, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            if needs_span(official_decides(app)):
                with server_span(str(environ.get("REQUEST_METHOD") or "HTTP"), instrumentor):
                    return previous(app, environ, start_response)
            return previous(app, environ, start_response)

        return __call__

    return make
