"""What the Flask, Django and Starlette/FastAPI instrumentors share: one incoming request seen by a framework.

Each framework hook builds an ``Exchange`` while the server span is current (the official instrumentation's,
or the one ``server_span`` starts when that instrumentation is absent), remembers the exception the framework
saw, and calls ``finish`` once the response status is known: request context as HTTP semantic-convention
attributes (credentials masked at the source), and a failure recorded only for ``http_failure_statuses``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from faultspan._capture.redaction import REDACTED
from faultspan._capture.runtime import current, internal_error
from faultspan._pipeline import recording

Headers = Callable[[str], "str | None"]

_owned: weakref.WeakSet[Span] = weakref.WeakSet()


@dataclass
class Exchange:
    """The request as a framework knows it once routing ran."""

    method: str
    path: str
    query: str
    headers: Headers
    client: str | None = None
    route: str | None = None
    user: str | None = None
    body: Callable[[], bytes | None] = lambda: None  # read only for a failure, and only when opted in


def is_failure(status: int) -> bool:
    return any(low <= status <= high for low, high in current().settings.http_failure_statuses)


def _text(data: bytes, limit: int) -> str:
    text = data[:limit].decode("utf-8", errors="replace")
    return text + "..." if len(data) > limit else text


def attributes(exchange: Exchange, failed: bool) -> dict[str, Any]:
    """The request context as semantic-convention span attributes, secrets masked."""
    runtime = current()
    redactor, settings = runtime.redactor, runtime.settings
    out: dict[str, Any] = {
        "http.request.method": exchange.method,
        "url.path": redactor.scrub_text(exchange.path),
    }
    if exchange.query:
        out["url.query"] = redactor.scrub_text("?" + exchange.query)[1:]
    if exchange.route:
        out["http.route"] = exchange.route
    if exchange.client:
        out["client.address"] = exchange.client
    if exchange.user:
        out["user.id"] = exchange.user
    for name in settings.http_capture_headers:
        value = exchange.headers(name)
        if value is not None:
            lowered = name.lower()
            masked = REDACTED if redactor.is_secret_key(lowered) else redactor.scrub_text(value)
            out[f"http.request.header.{lowered}"] = (masked,)
    body = exchange.body() if failed and settings.http_capture_body else None
    if body is not None:
        out["http.request.body"] = redactor.scrub_text(_text(body, settings.http_max_body_bytes))
    return out


def finish(
    span: Span, exchange: Callable[[], Exchange], status: int | None, exc: BaseException | None
) -> None:
    """Annotate the server span; record ``exc`` (or a failure without one) when ``status`` is a failure.

    ``status`` is None when the exception escapes the framework: always a failure. ``exchange`` is built
    here, so that reading the framework's request can neither fail the request nor cost anything unsampled.
    """
    if not span.is_recording() or not is_instrumentation_enabled():
        return
    try:
        request = exchange()
        failed = status is None or is_failure(status)
        span.set_attributes(attributes(request, failed))
        if span in _owned:
            span.update_name(f"{request.method} {request.route}" if request.route else request.method)
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if not failed:
            return
        if exc is not None:
            recording.record(span, exc, escaped=status is None)
        elif status is not None:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
    except Exception as err:
        internal_error("http-finish", "could not annotate the server span", err)


def needs_span(officially_instrumented: bool) -> bool:
    """Start our own server span only when the official instrumentation is absent and no span is open."""
    return (
        not officially_instrumented
        and not trace.get_current_span().is_recording()
        and is_instrumentation_enabled()
    )


@contextmanager
def server_span(method: str, instrumentor: str) -> Iterator[Span]:
    """A SERVER span named after the method; ``finish`` renames it ``METHOD /route`` once routed."""
    with trace.get_tracer(instrumentor).start_as_current_span(method, kind=SpanKind.SERVER) as span:
        _owned.add(span)
        yield span


def wsgi_call(officially_instrumented: Callable[[Any], bool], instrumentor: str) -> Callable[[Any], Any]:
    """For ``Patches.wrap``: an application's WSGI ``__call__`` that opens our server span when needed."""

    def make(previous: Callable[..., Any]) -> Callable[..., Any]:
        def __call__(app: Any, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            if needs_span(officially_instrumented(app)):
                with server_span(str(environ.get("REQUEST_METHOD") or "HTTP"), instrumentor):
                    return previous(app, environ, start_response)
            return previous(app, environ, start_response)

        return __call__

    return make
