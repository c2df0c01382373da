"""An OTLP/HTTP trace receiver on 127.0.0.1 that answers with a chosen status code."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from support.collector import LOOPBACK


class HttpStatusSink:
    """Answers every POST with ``status`` (200 by default); with ``max_body``, a larger body gets 413.
    Accepted requests are kept decoded, in arrival order."""

    def __init__(self) -> None:
        self.status = 200
        self.max_body: int | None = None
        self.accepted: list[ExportTraceServiceRequest] = []
        self.attempts = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with sink._lock:
                    sink.attempts += 1
                    status = sink.status
                    if sink.max_body is not None and len(body) > sink.max_body:
                        status = 413
                    if status == 200:
                        sink.accepted.append(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString() if status == 200 else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="http-status-sink", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def spans(self) -> int:
        with self._lock:
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
