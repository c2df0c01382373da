"""Outgoing calls as breadcrumbs: an ended CLIENT span (from an official client instrumentation) or a call
``faultspan_outgoing`` saw itself becomes an ``http`` or ``query`` crumb (see docs/design.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from faultspan._capture.runtime import current, internal_error
from faultspan._pipeline import breadcrumbs

Call = tuple[str, str, str, dict[str, object]]
"""A call as a breadcrumb: category, message, level, data."""


def _first(attributes: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            return value
    return None


def http_call(method: object, url: object, status: object, failed: bool) -> Call:
    level = "info"
    if failed or (isinstance(status, int) and status >= 500):
        level = "error"
    elif isinstance(status, int) and status >= 400:
        level = "warning"
    data: dict[str, object] = {"method": method, "url": url}
    if status is not None:
        data["status_code"] = status
    message = f"{method} {url}" + (f" [{status}]" if status is not None else "")
    return "http", message, level, data


def query_call(system: object, statement: object, operation: object, failed: bool) -> Call:
    limit = current().settings.max_repr_length
    text = str(statement if statement is not None else operation)
    data: dict[str, object] = {"db.system": system}
    if operation is not None:
        data["db.operation"] = operation
    return "query", text[:limit], "error" if failed else "info", data


def _from_span(span: ReadableSpan) -> Call | None:
    attributes = span.attributes or {}
    failed = span.status.status_code is StatusCode.ERROR
    url = _first(attributes, "url.full", "http.url")
    if url is not None:
        method = _first(attributes, "http.request.method", "http.method")
        status = _first(attributes, "http.response.status_code", "http.status_code")
        return http_call(method, url, status, failed and status is None)
    system = _first(attributes, "db.system.name", "db.system")
    if system is not None:
        statement = _first(attributes, "db.query.text", "db.statement")
        operation = _first(attributes, "db.operation.name", "db.operation")
        return query_call(system, statement, operation if statement is None else None, failed)
    return None


def remember_call(span: ReadableSpan) -> None:
    """For the span processor: an ended CLIENT span's call joins the current trail (no span event), unless
    instrumentation is suppressed there (the helper is loaded with the wiring already)."""
    from opentelemetry.instrumentation.utils import is_instrumentation_enabled

    try:
        made = _from_span(span) if is_instrumentation_enabled() else None
        if made is None:
            return
        category, message, level, data = made
        ids = span.get_span_context()
        crumb = breadcrumbs.Crumb(
            timestamp=span.end_time or 0,
            category=category,
            message=message,
            level=level,
            data={key: breadcrumbs.attribute_value(value) for key, value in data.items()},
            trace_id=ids.trace_id if ids else 0,
            span_id=ids.span_id if ids else 0,
        )
        breadcrumbs.remember(crumb, current().settings.max_breadcrumbs)
    except Exception as err:
        internal_error("remember-call", "could not turn an outgoing call into a breadcrumb", err)
