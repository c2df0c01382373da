"""An OTLP/HTTP trace receiver on 127.0.0.1 that answers with a chosen status code."""

from __future__ import annotations

import gzip
import ssl
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from support.collector import LOOPBACK

_DECODE = {"gzip": gzip.decompress, "deflate": zlib.decompress}


class HttpStatusSink:
    """Answers every POST with ``status`` (200 by default); with ``max_body``, a larger body gets 413;
    with ``require_header``, a request without that header (name, value) gets 401. Accepted requests are
    kept decoded, in arrival order, with their headers (``headers``). With ``tls``, it serves HTTPS."""

    def __init__(
        self, *, require_header: tuple[str, str] | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.status = 200
        self.max_body: int | None = None
        self.accepted: list[ExportTraceServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self.attempts = 0
        self._scheme = "http" if tls is None else "https"
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = _DECODE.get(self.headers.get("Content-Encoding", ""), bytes)(body)
                headers = {key.lower(): value for key, value in self.headers.items()}
                with sink._lock:
                    sink.attempts += 1
                    status = sink.status
                    if sink.max_body is not None and len(body) > sink.max_body:
                        status = 413
                    if (
                        status == 200
                        and require_header
                        and headers.get(require_header[0]) != require_header[1]
                    ):
                        status = 401
                    if status == 200:
                        sink.accepted.append(ExportTraceServiceRequest.FromString(body))
                        sink.headers.append(headers)
                        sink._lock.notify_all()
                answer = ExportTraceServiceResponse().SerializeToString() if status == 200 else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._lock = threading.Condition()
        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="http-status-sink", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{self._scheme}://{LOOPBACK}:{self._server.server_address[1]}"

    def spans(self) -> int:
        with self._lock:
            return self._spans_locked()

    def wait_for_spans(self, count: int, timeout: float = 15.0) -> int:
        """Block until at least ``count`` spans were accepted (woken by each request); the count."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while (spans := self._spans_locked()) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{spans} of {count} spans after {timeout:.0f} s ({self.attempts} attempts)"
                    )
                self._lock.wait(remaining)
            return spans

    def _spans_locked(self) -> int:
        return sum(
            len(scope.spans)
            for request in self.accepted
            for resource in request.resource_spans
            for scope in resource.scope_spans
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> HttpStatusSink:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
