"""Outgoing HTTP calls and database queries in the failure's breadcrumb trail.

The official client instrumentations (requests, httpx, urllib, sqlite3 and the other DB-API ones) create a
CLIENT span per call. That span ends before the failure, so it is in the trace but not in the failing span's
trail. ``faultspan._pipeline.calls.remember_call``, called by faultspan's span processor when a CLIENT span
ends, turns it into an ``http`` or ``query`` breadcrumb of the current trail without adding an event
anywhere: the child span already carries the call; a capture copies the crumb onto the failing span.

For calls no official instrumentation traces, ``faultspan_outgoing`` wraps ``http.client`` (so urllib,
requests and urllib3 underneath), ``sqlite3.connect`` and, when httpx is importable, ``httpx.Client.send`` and
``httpx.AsyncClient.send``. Such a call yields a breadcrumb only when no CLIENT span is current, so a call an
official instrumentation traces is never counted twice, whichever instrumentations are installed, disabled or
loaded first. The official httpx instrumentation wraps the transports, below ``send``, so its CLIENT span is
never current there: a ``send`` adds its crumb only if no ``http`` crumb joined the trail during the call
(the official span ending inside it). Followed redirects and authentication retries make one crumb: the URL
asked for, the final status.
"""

from __future__ import annotations

import http.client
import importlib.util
import sqlite3
import weakref
from collections.abc import Callable, Collection
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind

from faultspan._pipeline import breadcrumbs
from faultspan._pipeline.api import breadcrumb
from faultspan._pipeline.calls import Call, http_call, query_call
from faultspan_instrumentation._base import Patches


def _traced_elsewhere() -> bool:
    """A CLIENT span traces the call already, or instrumentation is suppressed: no crumb of ours."""
    return (
        getattr(trace.get_current_span(), "kind", None) is SpanKind.CLIENT or not is_instrumentation_enabled()
    )


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
            _add(http_call(method, url, None, True))
            raise
        _add(http_call(method, url, response.status, False))
        return response

    return getresponse


def _statement(cursor: sqlite3.Cursor, method: Any, sql: str, *args: Any) -> Any:
    if _traced_elsewhere():
        return method(cursor, sql, *args)
    try:
        result = method(cursor, sql, *args)
    except Exception:
        _add(query_call("sqlite", sql, None, True))
        raise
    _add(query_call("sqlite", sql, None, False))
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


# httpx: ``send`` has the request and the final response (or the exception).
def _httpx_call(request: Any) -> Callable[[int | None], None] | None:
    """Watch one ``send``: None when a CLIENT span already traces it, else what records its outcome."""
    if _traced_elsewhere():
        return None
    before = set(breadcrumbs.trail())

    def done(status: int | None) -> None:
        if any(crumb.category == "http" and crumb not in before for crumb in breadcrumbs.trail()):
            return  # the official instrumentation's CLIENT span ended inside the call: already a crumb
        url = request.url.copy_with(userinfo=b"")
        _add(http_call(request.method, str(url), status, status is None))

    return done


def _send(previous: Any) -> Any:
    def send(client: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        done = _httpx_call(request)
        if done is None:
            return previous(client, request, *args, **kwargs)
        try:
            response = previous(client, request, *args, **kwargs)
        except Exception:
            done(None)
            raise
        done(response.status_code)
        return response

    return send


def _send_async(previous: Any) -> Any:
    async def send(client: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        done = _httpx_call(request)
        if done is None:
            return await previous(client, request, *args, **kwargs)
        try:
            response = await previous(client, request, *args, **kwargs)
        except Exception:
            done(None)
            raise
        done(response.status_code)
        return response

    return send


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
        if importlib.util.find_spec("httpx") is not None:
            import httpx

            self._patches.wrap(httpx.Client, "send", _send)
            self._patches.wrap(httpx.AsyncClient, "send", _send_async)

    def _uninstrument(self, **kwargs: Any) -> None:
        self._patches.restore()
