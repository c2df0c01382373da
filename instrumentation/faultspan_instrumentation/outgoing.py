"""Outgoing HTTP calls and database queries in the failure's breadcrumb trail.

The official client instrumentations (requests, httpx, urllib, sqlite3 and the other DB-API ones) create a
CLIENT span per call. That span ends before the failure, so it is in the trace but not in the failing span's
trail. :func:`remember_call`, called by faultspan's span processor when a CLIENT span ends, turns it into an
``http`` or ``query`` breadcrumb of the current trail without adding an event anywhere: the child span
already carries the call; a capture copies the crumb onto the failing span.

For calls no official instrumentation traces, ``faultspan_outgoing`` wraps ``http.client`` (so urllib,
requests and urllib3 underneath) and ``sqlite3.connect``. Such a call yields a breadcrumb only when no CLIENT
span is current, so a call an official instrumentation traces is never counted twice, whichever
instrumentations are installed, disabled or loaded first. httpx is covered only by its official
instrumentation (it does not use ``http.client``).
"""

from __future__ import annotations

import http.client
import sqlite3
import weakref
from collections.abc import Collection, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from faultspan import breadcrumbs
from faultspan.api import breadcrumb
from faultspan.runtime import current, internal_error
from faultspan_instrumentation._base import Patches

Call = tuple[str, str, str, dict[str, object]]
"""A call as a breadcrumb: category, message, level, data."""


def _first(attributes: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            return value
    return None


def _http(method: object, url: object, status: object, failed: bool) -> Call:
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


def _query(system: object, statement: object, operation: object, failed: bool) -> Call:
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
        return _http(method, url, status, failed)
    system = _first(attributes, "db.system.name", "db.system")
    if system is not None:
        statement = _first(attributes, "db.query.text", "db.statement")
        operation = _first(attributes, "db.operation.name", "db.operation")
        return _query(system, statement, operation if statement is None else None, failed)
    return None


def remember_call(span: ReadableSpan) -> None:
    """For the span processor: an ended CLIENT span's call joins the current trail (no span event)."""
    try:
        made = _from_span(span)
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


def _traced_elsewhere() -> bool:
    return getattr(trace.get_current_span(), "kind", None) is SpanKind.CLIENT


def _add(made: Call) -> None:
    category, message, level, data = made
    breadcrumb(category, message, level=level, **data)


# http.client: putrequest knows the method and target, getresponse the outcome.
_requests: weakref.WeakKeyDictionary[http.client.HTTPConnection, tuple[str, str]] = (
    weakref.WeakKeyDictionary()
)


def _url(connection: http.client.HTTPConnection, target: str) -> str:
    if "://" in target:
        return target
    scheme = "https" if isinstance(connection, http.client.HTTPSConnection) else "http"
    return f"{scheme}://{connection.host}:{connection.port}{target}"


def _putrequest(previous: Any) -> Any:
    def putrequest(
        connection: http.client.HTTPConnection, method: str, url: str, *args: Any, **kwargs: Any
    ) -> Any:
        _requests[connection] = (method, url)
        return previous(connection, method, url, *args, **kwargs)

    return putrequest


def _getresponse(previous: Any) -> Any:
    def getresponse(connection: http.client.HTTPConnection) -> Any:
        request = _requests.pop(connection, None)
        if request is None or _traced_elsewhere():
            return previous(connection)
        method, target = request
        url = _url(connection, target)
        try:
            response = previous(connection)
        except Exception:
            _add(_http(method, url, None, True))
            raise
        _add(_http(method, url, response.status, False))
        return response

    return getresponse


def _statement(cursor: sqlite3.Cursor, method: Any, sql: str, *args: Any) -> Any:
    if _traced_elsewhere():
        return method(cursor, sql, *args)
    try:
        result = method(cursor, sql, *args)
    except Exception:
        _add(_query("sqlite", sql, None, True))
        raise
    _add(_query("sqlite", sql, None, False))
    return result


class _Cursor(sqlite3.Cursor):
    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        return _statement(self, sqlite3.Cursor.execute, sql, parameters)  # type: ignore[no-any-return]

    def executemany(self, sql: str, parameters: Any, /) -> _Cursor:
        return _statement(self, sqlite3.Cursor.executemany, sql, parameters)  # type: ignore[no-any-return]

    def executescript(self, script: str, /) -> _Cursor:
        return _statement(self, sqlite3.Cursor.executescript, script)  # type: ignore[no-any-return]


class _Connection(sqlite3.Connection):
    """The C ``Connection.execute*`` shortcuts bypass Python-level cursors: route them through one."""

    def cursor(self, factory: Any = _Cursor) -> Any:
        return super().cursor(factory)

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return self.cursor().execute(sql, parameters)  # type: ignore[no-any-return]

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        return self.cursor().executemany(sql, parameters)  # type: ignore[no-any-return]

    def executescript(self, script: str, /) -> sqlite3.Cursor:
        return self.cursor().executescript(script)  # type: ignore[no-any-return]


_FACTORY_POSITION = 5


def _connect(previous: Any) -> Any:
    def connect(*args: Any, **kwargs: Any) -> Any:
        if len(args) <= _FACTORY_POSITION and "factory" not in kwargs:
            kwargs["factory"] = _Connection
        return previous(*args, **kwargs)

    return connect


class OutgoingInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        self._patches = Patches()
        self._patches.wrap(http.client.HTTPConnection, "putrequest", _putrequest)
        self._patches.wrap(http.client.HTTPConnection, "getresponse", _getresponse)
        self._patches.wrap(sqlite3, "connect", _connect)
        self._patches.wrap(sqlite3.dbapi2, "connect", _connect)

    def _uninstrument(self, **kwargs: Any) -> None:
        self._patches.restore()
