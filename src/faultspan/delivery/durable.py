"""Durable OTLP delivery: a batching processor that spools what the collector does not take.

One attempt per batch with a short timeout (never the SDK exporter's backoff loop of up to 10 s while spans
pile up); a batch the collector does not take goes to the spool and a sender thread re-sends the spool,
oldest first, once the collector answers again. While the collector is known to be down, batches go straight
to the spool, so the export path never waits on the network. Spans carrying an ``exception`` event are
journaled on disk before any network attempt and settled after it, so a process killed in between keeps them.

Sending reuses the configured OTLP exporter's own client (its endpoint, headers, TLS and compression) for a
single attempt: the gRPC stub and the HTTP client's ``_submit``. Those are private to the SDK; when they are
missing the exporter is left to a plain BatchSpanProcessor, with a warning.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from faultspan._capture.config import env_name, warn_once
from faultspan._capture.runtime import current, internal_error
from faultspan._pipeline import lifecycle
from faultspan.delivery import spool as spooling
from faultspan.delivery.spool import Outcome, Ref, Spool

if TYPE_CHECKING:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

GRPC_EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
HTTP_EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.http.trace_exporter"

ATTEMPT_SECONDS = 2.0
_BATCH = 512
_DELAY_SECONDS = 0.1
_RETRY_MIN_SECONDS = 0.25
_RETRY_MAX_SECONDS = 1.0
_IDLE_SCAN_SECONDS = 5.0
_REMEMBERED = 1024
# Of a flush's time budget, the share spent on the network; the rest is for writing what is left to disk.
_NETWORK_SHARE = 0.8


class Transport(Protocol):
    destination: str

    def send(self, payload: bytes, timeout: float) -> Outcome: ...


_EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
# Answers that mean the collector will never take this data. Anything else is kept and retried: a collector
# being stopped mid-request answers INTERNAL or UNKNOWN (a reset stream), not only UNAVAILABLE.
_REFUSALS = frozenset(
    {
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "FAILED_PRECONDITION",
        "UNIMPLEMENTED",
    }
)


class GrpcTransport:
    """Sends the serialized request as is through the exporter's channel (no parse and re-serialize)."""

    def __init__(self, exporter: GrpcSpanExporter) -> None:
        self._exporter = exporter
        if exporter._channel is None:
            raise TypeError("the gRPC exporter has no channel")
        self._channel: Any = None
        self._call: Any = None
        self.destination = f"grpc {exporter._endpoint}"

    def send(self, payload: bytes, timeout: float) -> Outcome:
        import grpc

        exporter = self._exporter
        channel = exporter._channel
        if channel is None:
            return Outcome.RETRY
        if channel is not self._channel:
            self._channel = channel
            self._call = channel.unary_unary(_EXPORT_METHOD)
        try:
            self._call(payload, metadata=exporter._headers, timeout=timeout)
        except grpc.RpcError as error:
            code = error.code()
            if code is grpc.StatusCode.UNAVAILABLE:
                # As the SDK does: a fresh channel; grpc's reconnect backoff (minutes) would delay recovery.
                exporter._initialize_channel_and_stub()
            return Outcome.REJECTED if code.name in _REFUSALS else Outcome.RETRY
        except ValueError:  # the channel was closed by a concurrent shutdown
            return Outcome.RETRY
        return Outcome.SENT


class HttpTransport:
    def __init__(self, exporter: HttpSpanExporter) -> None:
        self._client = exporter._client
        self.destination = f"http {exporter._endpoint}"
        if not hasattr(self._client, "_submit") or not hasattr(self._client, "_compress"):
            raise TypeError("the HTTP exporter's client has no single-attempt send")

    def send(self, payload: bytes, timeout: float) -> Outcome:
        try:
            result = self._client._submit(self._client._compress(payload), timeout)
        except Exception:
            return Outcome.RETRY
        status = result.status_code
        if status is None:
            return Outcome.RETRY
        if 200 <= status < 300:
            return Outcome.SENT
        # Like gRPC above: only a client error other than a timeout or throttling is final.
        return Outcome.REJECTED if 400 <= status < 500 and status not in (408, 429) else Outcome.RETRY


def transport_for(exporter: SpanExporter) -> Transport | None:
    """A single-attempt sender through ``exporter``'s client, or None when it is not an OTLP exporter.

    An exporter class whose module was never imported cannot be the one at hand, so neither protocol's
    stack is imported just to check."""
    grpc_class = getattr(sys.modules.get(GRPC_EXPORTER_MODULE), "OTLPSpanExporter", None)
    http_class = getattr(sys.modules.get(HTTP_EXPORTER_MODULE), "OTLPSpanExporter", None)
    try:
        if grpc_class is not None and isinstance(exporter, grpc_class):
            return GrpcTransport(exporter)
        if http_class is not None and isinstance(exporter, http_class):
            return HttpTransport(exporter)
    except (AttributeError, TypeError) as err:
        warn_once("durable-unsupported", "faultspan: durable delivery unavailable for %r: %s", exporter, err)
    return None


def _has_exception(span: ReadableSpan) -> bool:
    return any(event.name == "exception" for event in span.events) if span._events else False


@contextlib.contextmanager
def _uninstrumented() -> Iterator[None]:
    """As the SDK's batch processor does: the exporter's own HTTP or gRPC calls make no spans."""
    token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        yield
    finally:
        detach(token)


def _payload(spans: Sequence[ReadableSpan]) -> bytes:
    payload: bytes = encode_spans(spans).SerializeToString()
    return payload


class DurableSpanProcessor(SpanProcessor):
    """Batches spans for one OTLP exporter; whatever the collector does not take is spooled, then re-sent."""

    def __init__(
        self,
        exporter: SpanExporter,
        transport: Transport,
        spool: Spool,
        *,
        max_queue_size: int,
        attempt_seconds: float = ATTEMPT_SECONDS,
    ) -> None:
        self._exporter = exporter
        self._transport = transport
        self.spool = spool
        self._max_queue = max(max_queue_size, _BATCH)
        self._attempt_seconds = attempt_seconds
        self._stopping = False
        self._closed = False
        self._network_until: float | None = None
        self._journal_lock = threading.Lock()
        self._journaled_early: dict[int, Ref | None] = {}
        self._journaled_late: dict[int, None] = {}
        self.failures_at_once = FailuresAtOnce(self)
        self.sent = 0
        self.spooled = 0
        self._start()
        if hasattr(os, "register_at_fork"):
            restart = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (method := restart()) and method())

    def _start(self) -> None:
        self._queue: deque[tuple[ReadableSpan, Ref | None]] = deque()
        self._take_lock = threading.Lock()
        self._export_lock = threading.Lock()
        self._condition = threading.Condition()
        self._down = threading.Event()
        self._wake = threading.Event()
        self._wake.set()  # drain what earlier processes left, right away
        self._worker = threading.Thread(target=self._run, name="faultspan-durable-batch", daemon=True)
        self._sender = threading.Thread(target=self._send_loop, name="faultspan-durable-sender", daemon=True)
        self._worker.start()
        self._sender.start()

    def _after_fork(self) -> None:
        """A child (a pre-forking server's worker) gets its own threads and segment files, none of the
        parent's queued spans, and leaves the parent's files and locks alone."""
        self.spool.forget_files()
        self._start()

    # -- the span path -------------------------------------------------------------------------------

    def on_end(self, span: ReadableSpan) -> None:
        if self._stopping or not span.context.trace_flags.sampled:
            return
        ref = self._journaled(span) if _has_exception(span) else None
        self._queue.append((span, ref))
        if len(self._queue) >= self._max_queue:
            # A burst beyond the queue: the oldest batch goes to disk instead of being dropped.
            self._spill(self._take(_BATCH))
        elif len(self._queue) >= _BATCH:
            with self._condition:
                self._condition.notify()

    def _where(self) -> str:
        return f"{self.spool.directory} ({env_name('spool_dir')})"

    def _journal(self, span: ReadableSpan) -> Ref | None:
        try:
            return self.spool.journal(_payload([span]))
        except Exception as err:  # a full disk: the span still goes out with its batch
            internal_error("durable-journal", f"cannot journal failing spans in {self._where()}", err)
            return None

    def journal_at_once(self, span: ReadableSpan) -> None:
        """On the thread that ended ``span`` (see ``FailuresAtOnce``): redacted and on disk before this
        returns, unless the batch path got to it first. Failures only, so holding the lock is cheap."""
        from faultspan._pipeline.processor import redact_span

        key = span.context.span_id
        with self._journal_lock:
            if key in self._journaled_late:
                del self._journaled_late[key]
                return
            try:
                redacted = redact_span(span, current().redactor)
            except Exception as err:  # fail closed: never an unredacted span on disk
                internal_error("durable-journal", "could not redact a failing span for the journal", err)
                return
            self._journaled_early[key] = self._journal(redacted)
            if len(self._journaled_early) > _REMEMBERED:  # dropped before the batch path: stays on disk
                del self._journaled_early[next(iter(self._journaled_early))]

    def _journaled(self, span: ReadableSpan) -> Ref | None:
        """The journal entry of a failing span reaching the batch path: the one made at once, or a new one.
        The spans journaled here first are remembered for a while (a span is ended on its own thread long
        before the redaction worker hands it here), not forever: ``FailuresAtOnce`` may not be registered."""
        key = span.context.span_id
        with self._journal_lock:
            if key in self._journaled_early:
                return self._journaled_early.pop(key)
            self._journaled_late[key] = None
            if len(self._journaled_late) > _REMEMBERED:
                del self._journaled_late[next(iter(self._journaled_late))]
        return self._journal(span)

    def _take(self, count: int) -> list[tuple[ReadableSpan, Ref | None]]:
        with self._take_lock:
            return [self._queue.popleft() for _ in range(min(count, len(self._queue)))]

    def _run(self) -> None:
        while True:
            with self._condition:
                if not self._stopping and len(self._queue) < _BATCH:
                    self._condition.wait(_DELAY_SECONDS)
                stopping = self._stopping
            self._export_queued()
            if stopping:
                return

    def _export_queued(self) -> None:
        with self._export_lock, _uninstrumented():
            while batch := self._take(_BATCH):
                try:
                    self._export(batch)
                except Exception as err:  # noqa: PERF203 -- a full disk must not stop the worker
                    where = self._where()
                    internal_error("durable-export", f"cannot export or spool a batch in {where}", err)

    def _attempt_timeout(self) -> float:
        if self._network_until is None:
            return self._attempt_seconds
        return min(self._attempt_seconds, self._network_until - time.monotonic())

    def _export(self, batch: list[tuple[ReadableSpan, Ref | None]]) -> None:
        payload = _payload([span for span, _ in batch])
        refs = [ref for _, ref in batch if ref is not None]
        timeout = self._attempt_timeout()
        outcome = Outcome.RETRY
        if not self._down.is_set() and timeout > 0:
            try:
                outcome = self._transport.send(payload, timeout)
            except Exception as err:  # whatever the client raised, the batch is kept
                warn_once("durable-send", "faultspan: OTLP send failed (%r); spooling", err)
        if outcome is Outcome.SENT:
            self.sent += len(batch)
        elif outcome is Outcome.RETRY:
            self._down.set()
            self._wake.set()
            if not self.spool.append(payload):
                return  # over budget: journaled exception spans stay pending on disk
            self.spooled += len(batch)
        else:
            warn_once("durable-rejected", "faultspan: the collector rejected a batch of %d spans", len(batch))
        self.spool.settle(refs)

    def _spill(self, batch: list[tuple[ReadableSpan, Ref | None]]) -> None:
        try:
            kept = self.spool.append(_payload([span for span, _ in batch]))
        except Exception as err:
            internal_error("durable-spill", "could not spool a batch beyond the queue; dropped", err)
            return
        if kept:
            self.spooled += len(batch)
            self.spool.settle([ref for _, ref in batch if ref is not None])
            self._wake.set()

    # -- the sender ----------------------------------------------------------------------------------

    def _send_spooled(self, payload: bytes) -> Outcome:
        return self._transport.send(payload, self._attempt_seconds)

    def _drain(self) -> spooling.DrainResult:
        stop = self._is_closed
        with _uninstrumented():
            result = spooling.drain(self.spool.directory, self._send_spooled, stop)
            if not result.blocked and not stop() and self.spool.seal():
                result = spooling.drain(self.spool.directory, self._send_spooled, stop)
        return result

    def _is_closed(self) -> bool:
        return self._closed

    def _send_loop(self) -> None:
        backoff = _RETRY_MIN_SECONDS
        while not self._closed:
            self._wake.wait(backoff if self._down.is_set() else _IDLE_SCAN_SECONDS)
            self._wake.clear()
            if self._closed:
                return
            try:
                result = self._drain()
            except Exception as err:
                internal_error("durable-sender", "spool sender failed", err)
                result = spooling.DrainResult(blocked=True)
            if result.blocked:
                self._down.set()
                backoff = min(backoff * 2, _RETRY_MAX_SECONDS)
            else:
                self._down.clear()
                backoff = _RETRY_MIN_SECONDS

    # -- flush and shutdown --------------------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export everything queued within ``timeout_millis``; past its network share, straight to disk."""
        self._network_until = time.monotonic() + timeout_millis / 1000 * _NETWORK_SHARE
        try:
            self._export_queued()
        finally:
            self._network_until = None
        return True

    def shutdown(self) -> None:
        """Within the exit budget: export the queue, spool what did not go, then send the spool if the
        collector is up (so the next run need not)."""
        if self._stopping:
            return
        deadline = lifecycle.exit_deadline()
        budget = (
            current().settings.shutdown_timeout_millis / 1000
            if deadline is None
            else max(deadline - time.monotonic(), 0.0)
        )
        until = time.monotonic() + budget * _NETWORK_SHARE
        self._network_until = until
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        self._worker.join(budget)
        self._network_until = time.monotonic()  # whatever is still queued goes to disk
        self._export_queued()
        self._closed = True
        self._wake.set()
        self._sender.join(max(until - time.monotonic(), 0.0))
        self.spool.close()
        if not self._down.is_set() and not self._sender.is_alive():

            def send(payload: bytes) -> Outcome:
                left = min(self._attempt_seconds, until - time.monotonic())
                return self._transport.send(payload, left) if left > 0 else Outcome.RETRY

            with _uninstrumented():
                spooling.drain(self.spool.directory, send, lambda: time.monotonic() >= until)
        self._exporter.shutdown()


class FailuresAtOnce(SpanProcessor):
    """Registered with the TracerProvider next to faultspan's processor, so it runs on the thread that ends
    each span: a span carrying an exception is journaled before that thread goes on, instead of after the
    redaction worker's next round (up to 100 ms during which a SIGKILL would lose it)."""

    def __init__(self, durable: DurableSpanProcessor) -> None:
        self._durable = weakref.ref(durable)

    def on_end(self, span: ReadableSpan) -> None:
        durable = self._durable()
        if durable is not None and span.context.trace_flags.sampled and _has_exception(span):
            durable.journal_at_once(span)


def open_spool(directory: str, destination: str, max_bytes: int) -> Spool | None:
    """The spool for ``destination``, or None when disabled (``none``). Its directory is created with the
    first file; an unwritable one is reported then (once), and those batches are lost."""
    if directory.strip().lower() == "none":
        return None
    return Spool(spooling.destination_dir(Path(directory).expanduser().resolve(), destination), max_bytes)


def durable_processor(exporter: SpanExporter, **kwargs: Any) -> DurableSpanProcessor | None:
    """``exporter`` wrapped for durable delivery, or None when it is not OTLP or the spool is off."""
    transport = transport_for(exporter)
    if transport is None:
        return None
    settings = current().settings
    spool = open_spool(settings.spool_dir, transport.destination, settings.spool_max_bytes)
    if spool is None:
        return None
    queue = kwargs.get("max_queue_size") or settings.queue_size
    return DurableSpanProcessor(exporter, transport, spool, max_queue_size=int(queue))
