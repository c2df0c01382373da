"""faultspan's log record processor against the bare SDK's BatchLogRecordProcessor, in the same run.

    python benchmarks/logs.py [--quick]

Records come from stdlib logging through the contrib ``LoggingHandler`` (opentelemetry-instrumentation-
logging), each with fresh values (an order number, a random id, an ``extra=`` attribute), into a discarding
exporter.
Bare: ``BatchLogRecordProcessor`` alone. faultspan: its processor in front of the same (enrichment on the
logging thread, redaction on its worker). Rows, per record:
- hot path: CPU and wall time of the logging thread (``log.info`` returns);
- total CPU: process CPU time (all threads) for the same records, flush included;
- the same for records carrying a fresh secret (``password=<random>``), which redaction rewrites.
- ``log.exception`` of an exception raised 10 frames deep: the handler's own work against faultspan's
  capture of frames, locals, chain and fingerprint on top, total CPU.
Bare and faultspan rounds alternate and the median round is reported, so drift hits both sides alike.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import statistics
import time
from collections.abc import Callable, Sequence

from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult

from faultspan._pipeline.log_processor import FaultspanLogRecordProcessor


class Discard(LogRecordExporter):
    def __init__(self) -> None:
        self.count = 0

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self.count += len(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        return

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _logger(with_faultspan: bool) -> tuple[logging.Logger, LoggerProvider, LoggingHandler]:
    provider = LoggerProvider(shutdown_on_exit=False)
    batch = BatchLogRecordProcessor(Discard(), max_queue_size=1 << 20, max_export_batch_size=512)
    provider.add_log_record_processor(FaultspanLogRecordProcessor([batch]) if with_faultspan else batch)
    handler = LoggingHandler(logger_provider=provider)
    logger = logging.getLogger(f"bench.{with_faultspan}.{time.monotonic_ns()}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, provider, handler


def _deep(depth: int, order: int) -> None:
    customer = {"id": depth, "email": "jane@example.com", "tier": "gold"}
    items = [("sku-1", 2), ("sku-2", 1)]
    total = 42.5 * depth
    if depth == 0:
        raise ValueError(f"order {order} failed: total {total} for {customer['email']}")
    _deep(depth - 1, order)
    del items


Emit = Callable[[logging.Logger, int], None]


def _clean(logger: logging.Logger, index: int) -> None:
    logger.info("order %d shipped to %s", index, secrets.token_hex(4), extra={"order.id": index})


def _secret(logger: logging.Logger, index: int) -> None:
    password = secrets.token_urlsafe(12)
    logger.info("login for user %d with password=%s", index, password, extra={"order.id": index})


def _exception(logger: logging.Logger, index: int) -> None:
    try:
        _deep(9, index)
    except ValueError:
        logger.exception("order %d failed", index)


def _run(with_faultspan: bool, emit: Emit, count: int) -> tuple[float, float, float]:
    """Per record: logging thread CPU, its wall time, process CPU (flush included)."""
    logger, provider, handler = _logger(with_faultspan)
    cpu = time.process_time()
    thread = time.thread_time()
    start = time.perf_counter()
    for index in range(count):
        emit(logger, index)
    wall = time.perf_counter() - start
    thread = time.thread_time() - thread
    provider.force_flush()
    cpu = time.process_time() - cpu
    logger.removeHandler(handler)
    provider.shutdown()
    return thread / count, wall / count, cpu / count


def _row(label: str, bare: float, ours: float) -> None:
    print(f"{label:<44} {bare * 1e6:>9.1f} µs {ours * 1e6:>9.1f} µs {ours / bare:>7.2f}x")


def _case(name: str, emit: Emit, count: int, rounds: int) -> None:
    bare_runs, our_runs = [], []
    for _ in range(rounds):
        bare_runs.append(_run(False, emit, count))
        our_runs.append(_run(True, emit, count))
    labels = ("logging thread CPU", "  ... wall time", "total CPU, flush included")
    for index, label in enumerate(labels):
        _row(
            f"{name}: {label}" if index == 0 else f"  {label}",
            statistics.median(run[index] for run in bare_runs),
            statistics.median(run[index] for run in our_runs),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer records and rounds")
    args = parser.parse_args()
    count, rounds = (2_000, 3) if args.quick else (20_000, 7)
    print(f"{'per log record':<44} {'bare SDK':>12} {'faultspan':>12} {'ratio':>8}")
    _case("clean record", _clean, count, rounds)
    _case("record with a secret", _secret, count, rounds)
    _case("log.exception, 10 frames", _exception, max(count // 20, 100), rounds)


if __name__ == "__main__":
    main()
