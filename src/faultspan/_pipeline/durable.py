"""Durable OTLP delivery: a batching processor that spools what the collector does not take, for spans and
for log records (each signal has its own spool directory, drained through its own transport).

One attempt per batch with a short timeout (never the SDK exporter's backoff loop of up to 10 s while spans
pile up); a batch the collector does not take goes to the spool and a sender thread re-sends the spool,
oldest first, once the collector answers again. While the collector is known to be down, batches go straight
to the spool, so the export path never waits on the network. Spans carrying an ``exception`` event are
journaled on disk before any network attempt and settled after it, so a process killed in between keeps them.

Sending goes through faultspan's OTLP transport (the retry table of docs/delivery.md), configured as the SDK
exporter is: its endpoint, headers, timeout and compression, and its TLS (for HTTP the certificate files
of its session, for gRPC its own channel credentials). An exporter that does something the transport
cannot (a session of its own with an auth hook) keeps the SDK's batch processor and sends itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from faultspan._capture.config import env_name, warn, warn_once
from faultspan._capture.exceptions import FINGERPRINT
from faultspan._capture.runtime import current, internal_error
from faultspan._otlp.sdk_private import ExporterTarget, exporter_target, has_events, span_attributes
from faultspan._otlp.transport import (
    LOGS,
    TRACES,
    Endpoint,
    EndpointError,
    Outcome,
    Signal,
    Transport,
)
from faultspan._pipeline import lifecycle
from faultspan._pipeline import spool as spooling
from faultspan._pipeline.log_processor import batch_wiring as log_batch_wiring
from faultspan._pipeline.log_processor import readable
from faultspan._pipeline.processor import RedactOnce, batch_wiring
from faultspan._pipeline.spool import Ref, Spool
from faultspan._pipeline.worker import BATCH, Worker

ATTEMPT_SECONDS = 2.0
_RETRY_MIN_SECONDS = 0.25
_RETRY_MAX_SECONDS = 1.0
_IDLE_SCAN_SECONDS = 5.0
# Delivery failing this long is reported (with what waits in the spool), then at most this often.
OUTAGE_WARNING_SECONDS = 30.0
OUTAGE_REPEAT_SECONDS = 600.0
# Of a flush's time budget, the share spent on the network; the rest is for writing what is left to disk.
_NETWORK_SHARE = 0.8


def endpoint_for(target: ExporterTarget) -> Endpoint:
    """The endpoint of ``target``, with everything the exporter sends with (in memory only)."""
    url = target.endpoint
    if target.protocol == "grpc" and "://" not in url:
        url = f"{'http' if target.insecure else 'https'}://{url}"
    return Endpoint(
        protocol=target.protocol,
        url=url,
        headers=dict(target.headers),
        timeout=target.timeout,
        insecure=target.insecure,
        certificate=target.certificate,
        compression=target.compression,
        client_certificate=target.client_certificate,
        client_key=target.client_key,
        credentials=target.credentials,
        channel_options=target.channel_options,
    )


def transport_for(exporter: SpanExporter | LogRecordExporter) -> Transport | None:
    """A transport sending as ``exporter`` does, or None when it is not an SDK OTLP exporter or sends in a
    way the transport cannot (then the exporter sends itself, as without faultspan)."""
    try:
        target = exporter_target(exporter)
        if target is None:
            return None
        if target.unsupported is not None:
            warn_once(
                f"durable-unsupported-{target.unsupported}",
                "faultspan: %r sends with %s: it sends itself, without the spool",
                exporter,
                target.unsupported,
            )
            return None
        signal = LOGS if target.signal == LOGS.name else TRACES
        return Transport(endpoint_for(target), signal)
    except (AttributeError, TypeError, EndpointError) as err:
        warn_once("durable-unsupported", "faultspan: durable delivery unavailable for %r: %s", exporter, err)
    return None


def _has_exception(span: ReadableSpan) -> bool:
    """An ``exception`` event, or the fingerprint a failing span keeps when its exception is a log record
    (``OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN=logs``): journaled at once either way."""
    if has_events(span) and any(event.name == "exception" for event in span.events):
        return True
    return FINGERPRINT in span_attributes(span)


def _payload(spans: Sequence[ReadableSpan]) -> bytes:
    payload: bytes = encode_spans(spans).SerializeToString()
    return payload


Queued = tuple[ReadableSpan, Ref | None]


class DurableSpanProcessor(SpanProcessor):
    """Batches spans for one OTLP exporter; whatever the collector does not take is spooled, then re-sent."""

    def __init__(
        self,
        exporter: SpanExporter,
        transport: Transport,
        spool: Spool,
        redact: RedactOnce,
        *,
        max_queue_size: int,
        attempt_seconds: float = ATTEMPT_SECONDS,
    ) -> None:
        self._exporter = exporter
        self._transport = transport
        self._redact = redact
        self.spool = spool
        # One attempt never waits longer than the exporter itself would.
        timeout = transport.endpoint.timeout
        self._attempt_seconds = min(attempt_seconds, timeout) if timeout > 0 else attempt_seconds
        self._closed = False
        self._network_until: float | None = None
        self._down = threading.Event()
        self._backoff = _RETRY_MIN_SECONDS
        self._down_since: float | None = None
        self._warned_at: float | None = None
        self.sent = 0
        self.spooled = 0
        self._batches: Worker[Queued] = Worker(
            "faultspan-durable-batch",
            self._export_round,
            capacity=max(max_queue_size, BATCH),
            overflow=self._spill,  # a burst beyond the queue: the oldest batch goes to disk, not away
            forked=self._forked,
        )
        # Drains what earlier processes left right away, then whenever a batch could not go out.
        self._sender: Worker[None] = Worker(
            "faultspan-durable-sender", self._send_round, capacity=0, interval=self._send_interval, awake=True
        )

    def _forked(self) -> None:
        """A child (a pre-forking server's worker) gets its own segment files and leaves the parent's files
        and locks alone."""
        self.spool.forget_files()
        self._down = threading.Event()

    # -- the span path -------------------------------------------------------------------------------

    def on_end(self, span: ReadableSpan) -> None:
        """On the thread that ends ``span``: a span carrying an exception is redacted and journaled before
        that thread goes on (a SIGKILL right after a captured failure keeps it); the rest is queued raw."""
        if self._batches.stopping or not span.context.trace_flags.sampled:
            return
        ref = self._journal(span) if _has_exception(span) else None
        self._batches.put((span, ref))

    def _where(self) -> str:
        return f"{self.spool.directory} ({env_name('spool_dir')})"

    def _payload(self, spans: Sequence[ReadableSpan]) -> bytes | None:
        """The redacted spans as one request; None when none of them could be redacted."""
        redacted = self._redact.batch(spans)
        return _payload(redacted) if redacted else None

    def _journal(self, span: ReadableSpan) -> Ref | None:
        try:
            redacted = self._redact.one(span)
            return None if redacted is None else self.spool.journal(_payload([redacted]))
        except Exception as err:  # a full disk: the span still goes out with its batch
            internal_error("durable-journal", f"cannot journal failing spans in {self._where()}", err)
            return None

    def _export_round(self, batch: list[Queued], final: bool) -> None:
        if not batch:
            return
        with suppress_instrumentation():  # as the SDK's batch processor: the exporter's calls make no spans
            try:
                self._export(batch)
            except Exception as err:  # a full disk must not stop the worker
                internal_error("durable-export", f"cannot export or spool a batch in {self._where()}", err)

    def _attempt_timeout(self) -> float:
        if self._network_until is None:
            return self._attempt_seconds
        return min(self._attempt_seconds, self._network_until - time.monotonic())

    def _export(self, batch: list[Queued]) -> None:
        refs = [ref for _, ref in batch if ref is not None]
        payload = self._payload([span for span, _ in batch])
        if payload is None:
            self.spool.settle(refs)
            return
        timeout = self._attempt_timeout()
        outcome = Outcome.RETRY
        if not self._down.is_set() and timeout > 0:
            try:
                outcome = self._transport.deliver(payload, timeout, self._aside)
            except Exception as err:  # whatever the client raised, the batch is kept
                warn_once("durable-send", "faultspan: OTLP send failed (%r); spooling", err)
        if outcome is Outcome.SENT:
            self.sent += len(batch)
        elif outcome is Outcome.RETRY:
            self._down.set()
            self._sender.wake()
            if not self.spool.append(payload):
                return  # over budget: journaled exception spans stay pending on disk
            self.spooled += len(batch)
        self.spool.settle(refs)

    def _spill(self, batch: list[Queued]) -> None:
        try:
            payload = self._payload([span for span, _ in batch])
            kept = payload is None or self.spool.append(payload)
        except Exception as err:
            internal_error("durable-spill", "could not spool a batch beyond the queue; dropped", err)
            return
        if kept:
            self.spooled += len(batch)
            self.spool.settle([ref for _, ref in batch if ref is not None])
            self._sender.wake()

    # -- the sender ----------------------------------------------------------------------------------

    def _aside(self, payload: bytes) -> None:
        spooling.quarantine(self.spool.directory, payload, self._transport.destination)

    def _send_spooled(self, payload: bytes) -> Outcome:
        return self._transport.deliver(payload, self._attempt_seconds, self._aside)

    def _is_closed(self) -> bool:
        return self._closed

    def _send_interval(self) -> float:
        return self._backoff if self._down.is_set() else _IDLE_SCAN_SECONDS

    def _send_round(self, _: list[None], final: bool) -> None:
        if self._closed:
            return
        stop = self._is_closed
        try:
            with suppress_instrumentation():
                result = spooling.drain(self.spool.directory, self._send_spooled, stop)
                if not result.blocked and not stop() and self.spool.seal():
                    result = spooling.drain(self.spool.directory, self._send_spooled, stop)
        except Exception as err:
            internal_error("durable-sender", "spool sender failed", err)
            result = spooling.DrainResult(blocked=True)
        if result.blocked:
            self._down.set()
            self._backoff = min(self._backoff * 2, _RETRY_MAX_SECONDS)
            self._report_outage()
        else:
            self._down.clear()
            self._backoff = _RETRY_MIN_SECONDS
            self._down_since = self._warned_at = None

    def _report_outage(self) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
        if now - self._down_since < OUTAGE_WARNING_SECONDS:
            return
        if self._warned_at is not None and now - self._warned_at < OUTAGE_REPEAT_SECONDS:
            return
        self._warned_at = now
        warn(
            "faultspan: %s has taken nothing for %d s; %d bytes wait in the spool %s, sent once it is back",
            self._transport.destination,
            now - self._down_since,
            self.spool.size,
            self.spool.directory,
        )

    # -- flush and shutdown --------------------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export everything queued within ``timeout_millis``; past its network share, straight to disk."""
        self._network_until = time.monotonic() + timeout_millis / 1000 * _NETWORK_SHARE
        try:
            return self._batches.flush(timeout_millis / 1000)
        finally:
            self._network_until = None

    def shutdown(self) -> None:
        """Within the exit budget: export the queue, spool what did not go, then send the spool if the
        collector is up (so the next run need not)."""
        if self._batches.stopping:
            return
        deadline = lifecycle.exit_deadline()
        budget = (
            current().settings.shutdown_timeout_millis / 1000
            if deadline is None
            else max(deadline - time.monotonic(), 0.0)
        )
        until = time.monotonic() + budget * _NETWORK_SHARE
        self._network_until = until
        finished = self._batches.shutdown(budget)
        self._network_until = time.monotonic()  # whatever is still queued goes to disk
        if not finished:
            self._batches.shutdown()
        self._closed = True
        sender_done = self._sender.shutdown(max(until - time.monotonic(), 0.0))
        self.spool.close()
        if not self._down.is_set() and sender_done:

            def send(payload: bytes) -> Outcome:
                left = min(self._attempt_seconds, until - time.monotonic())
                return self._transport.deliver(payload, left, self._aside) if left > 0 else Outcome.RETRY

            with suppress_instrumentation():
                spooling.drain(self.spool.directory, send, lambda: time.monotonic() >= until)
        self._transport.close()
        self._exporter.shutdown()


class DurableLogRecordProcessor(DurableSpanProcessor, LogRecordProcessor):
    """Durable delivery of log records, which faultspan's log record processor redacted already: the span
    path's batching, spool and sender with log records as the items, in the logs spool of the endpoint."""

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        if not self._batches.stopping:
            self._batches.put((log_record, None))  # type: ignore[arg-type]

    def _payload(self, records: Sequence[Any]) -> bytes | None:
        return encode_logs([readable(record) for record in records]).SerializeToString() if records else None


def _spooled(exporter: SpanExporter | LogRecordExporter, signal: Signal) -> tuple[Transport, Spool] | None:
    """The transport and the spool for ``exporter``, or None when it is not an OTLP exporter of ``signal``
    or the spool is off (``none``). The spool's directory is created with its first file; an unwritable
    one is reported then (once), and those batches are lost."""
    settings = current().settings
    if settings.spool_dir.strip().lower() == "none":
        return None
    transport = transport_for(exporter)
    if transport is None:
        return None
    if transport.signal is not signal:
        transport.close()
        return None
    root = Path(settings.spool_dir).expanduser().resolve()
    spool = Spool(
        spooling.destination_dir(root, transport.destination),
        settings.spool_max_bytes,
        {
            "protocol": transport.endpoint.protocol,
            "url": transport.endpoint.public_url,
            "signal": transport.signal.name,
        },
    )
    return transport, spool


def durable_processor(
    exporter: SpanExporter, redact: RedactOnce, **kwargs: Any
) -> DurableSpanProcessor | None:
    """``exporter`` wrapped for durable delivery, or None when it is not OTLP or the spool is off."""
    found = _spooled(exporter, TRACES)
    if found is None:
        return None
    queue = kwargs.get("max_queue_size") or current().settings.queue_size
    return DurableSpanProcessor(exporter, *found, redact, max_queue_size=int(queue))


def log_wiring(exporter: LogRecordExporter, **kwargs: Any) -> LogRecordProcessor:
    """The log record processor's wiring with the spool on: durable delivery for an OTLP logs exporter,
    the SDK's batch processor for any other (console)."""
    found = _spooled(exporter, LOGS)
    if found is None:
        return log_batch_wiring(exporter, **kwargs)
    queue = kwargs.get("max_queue_size") or current().settings.queue_size
    return DurableLogRecordProcessor(
        exporter,  # type: ignore[arg-type]
        *found,
        RedactOnce(),  # unused: the records arrive redacted
        max_queue_size=int(queue),
    )


def wiring(exporter: SpanExporter, redact: RedactOnce, **kwargs: Any) -> SpanProcessor:
    """The pipeline's ``Wiring`` with the spool on: durable delivery for an OTLP exporter, the default
    batch processor for any other."""
    durable = durable_processor(exporter, redact, **kwargs)
    return batch_wiring(exporter, redact, **kwargs) if durable is None else durable
