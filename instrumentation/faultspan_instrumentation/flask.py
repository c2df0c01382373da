"""``faultspan_flask``: Flask requests' failures with their request context, on the server span.

The exception is taken where Flask sees it: ``handle_user_exception`` (every exception a view or hook raised,
handled or not) and the ``got_request_exception`` signal (unhandled ones, also from ``after_request``). It is
remembered on the request and recorded when ``request_finished`` reports a status in
``http_failure_statuses``. An unhandled exception is recorded by the official instrumentation when it
traces the request (its teardown records it, with its own ``exception.escaped``): faultspan then only
enriches that recording; on faultspan's own span it records it itself. ``Flask.__call__`` opens that span
only where the official instrumentation does not decide (see ``_official``).
"""

from __future__ import annotations

import sys
from collections.abc import Collection
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from faultspan._pipeline import recording
from faultspan_instrumentation import _http, _official
from faultspan_instrumentation._base import Patches

_EXCEPTION = "faultspan.exception"
_UNHANDLED = "faultspan.unhandled"


def _user_id() -> str | None:
    login = sys.modules.get("flask_login")
    user = getattr(login, "current_user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(user.get_id())


def _exchange(request: Any) -> _http.Exchange:
    rule = request.url_rule
    return _http.Exchange(
        method=request.method,
        path=request.path,
        query=request.query_string.decode("latin-1"),
        headers=request.headers,
        client=request.remote_addr,
        route=rule.rule if rule is not None else None,
        user=_user_id(),
        body=lambda: request.get_data(cache=True),
    )


def _official_decides(app: Any) -> bool:
    return _official.app_opted(app) is not None or _official.in_use(
        "opentelemetry.instrumentation.flask", "FlaskInstrumentor"
    )


def _finish(request: Any, status: int | None, exc: BaseException | None) -> None:
    official = _official.FLASK_ACTIVATION in request.environ
    _http.finish(
        trace.get_current_span(),
        lambda: _exchange(request),
        status,
        exc,
        recorded_elsewhere=official and request.environ.get(_UNHANDLED) is exc,
    )


class FlaskInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    def instrumentation_dependencies(self) -> Collection[str]:
        return ("flask >= 2.2",)

    def _instrument(self, **kwargs: Any) -> None:
        import flask
        import flask.app

        def remember(previous: Any) -> Any:
            def handle_user_exception(app: Any, e: Exception) -> Any:
                flask.request.environ[_EXCEPTION] = e
                return previous(app, e)

            return handle_user_exception

        def got_request_exception(sender: Any, exception: BaseException, **extra: Any) -> None:
            request = flask.request
            request.environ[_EXCEPTION] = request.environ[_UNHANDLED] = exception
            if _official.FLASK_ACTIVATION in request.environ:
                recording.leave_to_owner(exception)  # its teardown records it, after Flask logs it
            _finish(request, None, exception)

        def request_finished(sender: Any, response: Any, **extra: Any) -> None:
            request = flask.request
            _finish(request, response.status_code, request.environ.get(_EXCEPTION))

        self._patches = Patches()
        self._patches.wrap(flask.app.Flask, "__call__", _http.wsgi_call(_official_decides, __name__))
        self._patches.wrap(flask.app.Flask, "handle_user_exception", remember)
        self._receivers = (
            (flask.got_request_exception, got_request_exception),
            (flask.request_finished, request_finished),
        )
        for signal, receiver in self._receivers:
            signal.connect(receiver, weak=False)

    def _uninstrument(self, **kwargs: Any) -> None:
        self._patches.restore()
        for signal, receiver in self._receivers:
            signal.disconnect(receiver)
