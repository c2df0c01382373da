"""``faultspan_fastapi``: Starlette and FastAPI requests' failures with their request context.

``build_middleware_stack`` is wrapped so that ``FaultspanMiddleware`` sits right inside the outermost
``ServerErrorMiddleware``: the official instrumentation rebuilds its stack from that one's inner app, which
puts ours inside its server span. The request is annotated when its response starts (the official middleware
may end its span as soon as the response is complete), or when an exception escapes the app: that one
escapes further and is recorded by the span's owner (the official middleware, or ``use_span`` of faultspan's
own span), which faultspan's ``record_exception`` enriches. ``Starlette.__call__`` opens a span only where
no official instrumentation decides (see ``_official``) and no span is current (FastAPI's native telemetry).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from faultspan._capture.runtime import current
from faultspan_instrumentation import _http, _official
from faultspan_instrumentation._base import Patches

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


def _user_id(scope: Scope) -> str | None:
    user = scope.get("user")  # set by Starlette's AuthenticationMiddleware
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    try:
        return str(user.identity)
    except NotImplementedError:  # BaseUser leaves it abstract; SimpleUser only has a display name
        return str(user.display_name)


def _route(scope: Scope) -> str | None:
    """The matched route's template with the prefix it was reached under (``include_router(prefix=...)``,
    ``Mount``): the route itself only knows the part after the prefix."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    path_format = getattr(route, "path_format", None)
    if not isinstance(template, str) or not isinstance(path_format, str):
        return None
    try:
        concrete = path_format.format(**scope.get("path_params", {}))
    except (KeyError, IndexError, ValueError):
        return template
    path = str(scope.get("path", ""))
    return path[: len(path) - len(concrete)] + template if path.endswith(concrete) else template


def _exchange(scope: Scope, body: bytearray | None) -> _http.Exchange:
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    client = scope.get("client")
    return _http.Exchange(
        method=scope.get("method", "HTTP"),
        path=scope.get("path", ""),
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        client=client[0] if client else None,
        route=_route(scope),
        user=_user_id(scope),
        body=lambda: None if body is None else bytes(body),
    )


def _records(span: trace.Span) -> bool:
    """Whether the span's owner records an exception escaping the app: the official ASGI middleware and
    ``use_span`` of faultspan's own span do; FastAPI's native telemetry does not."""
    scope = getattr(span, "instrumentation_scope", None)
    return span in _http.owned() or str(getattr(scope, "name", "")).startswith(_official.SCOPE_PREFIX)


class FaultspanMiddleware:
    def __init__(self, app: Asgi) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        span = trace.get_current_span()
        settings = current().settings
        body = bytearray() if settings.http_capture_body else None
        started = False

        async def receiving() -> Message:
            message = await receive()
            room = settings.http_max_body_bytes + 1 - len(body) if body is not None else 0
            if room > 0 and message.get("type") == "http.request":
                body.extend(message.get("body", b"")[:room])  # type: ignore[union-attr]
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if message.get("type") == "http.response.start":
                # Now: the official middleware may end its span as soon as the response is complete.
                started = True
                _http.finish(span, lambda: _exchange(scope, body), int(message["status"]), None)
            await send(message)

        try:
            await self.app(scope, receiving if body is not None else receive, sending)
        except Exception as exc:
            # Not started: ServerErrorMiddleware answers 500. Started: the status is on the span already.
            status = None if started else 500
            _http.finish(span, lambda: _exchange(scope, body), status, exc, recorded_elsewhere=_records(span))
            raise


class FastAPIInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    def instrumentation_dependencies(self) -> Collection[str]:
        return ("starlette >= 0.27",)

    def _instrument(self, **kwargs: Any) -> None:
        from starlette.applications import Starlette
        from starlette.middleware.errors import ServerErrorMiddleware

        classes: list[type] = [Starlette]
        try:
            from fastapi.applications import FastAPI

            classes.append(FastAPI)
        except ImportError:
            pass
        self._patches = Patches()
        for cls in classes:
            if "build_middleware_stack" in vars(cls):
                self._patches.wrap(cls, "build_middleware_stack", _wrap_build(ServerErrorMiddleware))
        self._patches.wrap(Starlette, "__call__", _wrap_call)

    def _uninstrument(self, **kwargs: Any) -> None:
        self._patches.restore()


def _wrap_build(error_middleware: type) -> Callable[[Callable[[Any], Asgi]], Callable[[Any], Asgi]]:
    def make(original: Callable[[Any], Asgi]) -> Callable[[Any], Asgi]:
        def build_middleware_stack(app: Any) -> Asgi:
            stack = original(app)
            if isinstance(stack, error_middleware) and not isinstance(stack.app, FaultspanMiddleware):  # type: ignore[attr-defined]
                stack.app = FaultspanMiddleware(stack.app)  # type: ignore[attr-defined]
            return stack

        return build_middleware_stack

    return make


def _official_decides(app: Any) -> bool:
    return (
        _official.app_opted(app) is not None
        or _official.in_use("opentelemetry.instrumentation.fastapi", "FastAPIInstrumentor")
        or _official.in_use("opentelemetry.instrumentation.starlette", "StarletteInstrumentor")
    )


def _wrap_call(original: Callable[[Any, Scope, Receive, Send], Awaitable[None]]) -> Any:
    async def __call__(app: Any, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _http.needs_span(_official_decides(app)):
            with _http.server_span(scope.get("method", "HTTP"), __name__):
                await original(app, scope, receive, send)
            return
        await original(app, scope, receive, send)

    return __call__
