"""``faultspan_django``: Django requests' failures with their request context, on the server span.

``FaultspanMiddleware`` is placed in ``settings.MIDDLEWARE`` right inside the official instrumentation's
middleware (first when it is absent) when Django loads its middleware, so settings may be configured after
instrumentation. A view's exception reaches its ``process_exception`` (which only remembers it: the
official middleware's ``process_exception`` runs next and records it, as without faultspan); other
exceptions that become a 500 come from the ``got_request_exception`` signal (sent inside Django's
``except`` block). The exception is recorded by faultspan only when the response's status is in
``http_failure_statuses`` and the official middleware does not record it itself. ``WSGIHandler`` opens the
server span only where the official instrumentation does not decide (see ``_official``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from faultspan._otlp.sdk_private import DJANGO_MIDDLEWARE
from faultspan._pipeline import recording
from faultspan_instrumentation import _http, _official
from faultspan_instrumentation._base import Patches

_OFFICIAL = DJANGO_MIDDLEWARE
_OURS = f"{__name__}.FaultspanMiddleware"
_EXCEPTION = "_faultspan_exception"


def _user_id(request: Any) -> str | None:
    user = getattr(request, "user", None)  # set by AuthenticationMiddleware, loaded lazily
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(user.pk)


def _body(request: Any) -> bytes | None:
    from django.http.request import RawPostDataException  # type: ignore[import-untyped]

    try:
        return bytes(request.body)
    except RawPostDataException:  # the app streamed it: nothing left to show
        return None


def _exchange(request: Any) -> _http.Exchange:
    match = request.resolver_match
    return _http.Exchange(
        method=request.method,
        path=request.path,
        query=request.META.get("QUERY_STRING", ""),
        headers=request.headers,
        client=request.META.get("REMOTE_ADDR"),
        route=getattr(match, "route", None) or None,
        user=_user_id(request),
        body=lambda: _body(request),
    )


class FaultspanMiddleware:
    """Right inside the official middleware, so its ``process_exception`` runs first and can answer."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        response = self.get_response(request)
        exc = getattr(request, _EXCEPTION, None)
        _http.finish(
            trace.get_current_span(),
            lambda: _exchange(request),
            response.status_code,
            exc,
            recorded_elsewhere=exc is not None and request.META.get(_official.DJANGO_EXCEPTION) is exc,
        )
        return response

    def process_exception(self, request: Any, exception: Exception) -> None:
        setattr(request, _EXCEPTION, exception)
        if _official.DJANGO_ACTIVATION in request.META:
            # Its process_exception, next, keeps it for its process_response, which records it after
            # Django logged it ("Internal Server Error").
            recording.leave_to_owner(exception)


def _got_request_exception(sender: Any, request: Any = None, **extra: Any) -> None:
    if request is not None:
        setattr(request, _EXCEPTION, sys.exc_info()[1])


def _official_decides(handler: Any) -> bool:
    return _OFFICIAL in _middleware() or _official.in_use(
        "opentelemetry.instrumentation.django", "DjangoInstrumentor"
    )


def _middleware() -> list[str]:
    from django.conf import settings  # type: ignore[import-untyped]

    return list(settings.MIDDLEWARE)


class DjangoInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    def instrumentation_dependencies(self) -> Collection[str]:
        return ("django >= 4.2",)

    def _instrument(self, **kwargs: Any) -> None:
        from django.conf import settings
        from django.core.handlers.base import BaseHandler  # type: ignore[import-untyped]
        from django.core.handlers.wsgi import WSGIHandler  # type: ignore[import-untyped]
        from django.core.signals import got_request_exception  # type: ignore[import-untyped]

        def insert_ours(previous: Any) -> Any:
            def load_middleware(handler: Any, is_async: bool = False) -> Any:
                middleware = _middleware()
                if _OURS not in middleware:
                    position = middleware.index(_OFFICIAL) + 1 if _OFFICIAL in middleware else 0
                    middleware.insert(position, _OURS)
                    settings.MIDDLEWARE = middleware
                return previous(handler, is_async)

            return load_middleware

        self._patches = Patches()
        self._patches.wrap(BaseHandler, "load_middleware", insert_ours)
        self._patches.wrap(WSGIHandler, "__call__", _http.wsgi_call(_official_decides, __name__))
        got_request_exception.connect(_got_request_exception, weak=False)

    def _uninstrument(self, **kwargs: Any) -> None:
        from django.conf import settings
        from django.core.signals import got_request_exception

        self._patches.restore()
        got_request_exception.disconnect(_got_request_exception)
        if settings.configured and _OURS in _middleware():
            settings.MIDDLEWARE = [path for path in _middleware() if path != _OURS]
