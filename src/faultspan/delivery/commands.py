"""``faultspan spool [DIR] [--drain] [--json]``: what the durable OTLP spool holds, and sending it now.

Only argparse at import time: the OTLP stack is imported when the verb runs.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

_DRAIN_ATTEMPT_SECONDS = 10.0


def add_parsers(verbs: argparse._SubParsersAction[Any]) -> None:
    parser = verbs.add_parser(
        "spool",
        help="show the durable OTLP spool; --drain sends it to the OTEL_EXPORTER_OTLP_* endpoint",
    )
    parser.add_argument(
        "directory", nargs="?", help="spool directory (default: OTEL_PYTHON_FAULTSPAN_SPOOL_DIR)"
    )
    parser.add_argument("--drain", action="store_true", help="send every spooled batch now, oldest first")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(run=_run)


def _directory(args: argparse.Namespace) -> Path | None:
    if args.directory:
        return Path(args.directory)
    from faultspan._capture import config

    configured = config.load().spool_dir
    return None if configured.strip().lower() == "none" else Path(configured)


def _signal(directory: Path) -> Any:
    """The signal a destination's batches belong to, as its spool recorded it (traces when it did not)."""
    from faultspan._otlp.transport import LOGS, TRACES
    from faultspan._pipeline import spool

    where = spool.recorded_destination(directory)
    return LOGS if where is not None and where["signal"] == LOGS.name else TRACES


def _status(root: Path) -> dict[str, Any]:
    """Totals over every destination under ``root``."""
    from faultspan._pipeline import spool

    counted = ("segments", "segments_in_use", "pending_batches", "pending_spans", "pending_log_records")
    totals = dict.fromkeys((*counted, "bytes", "damaged_records"), 0)
    totals.update(evicted_segments=0, evicted_batches=0, evicted_bytes=0, quarantined_batches=0)
    found_in = spool.destinations(root)
    for directory in found_in:
        signal = _signal(directory)
        pending = "pending_spans" if signal.name == "traces" else "pending_log_records"
        files = spool.segments(directory)
        totals["segments"] += len(files)
        for path in files:
            with spool.claim(path) as fd:
                if fd is None:
                    totals["segments_in_use"] += 1
                    continue
                data = os.pread(fd, os.fstat(fd).st_size, 0)
            found = spool.scan(data)
            totals["bytes"] += len(data)
            totals["damaged_records"] += found.bad_records
            for record in found.records:
                if record.pending:
                    request = signal.request.FromString(record.payload)
                    totals["pending_batches"] += 1
                    totals[pending] += sum(
                        len(getattr(scope, signal.items))
                        for resources in getattr(request, signal.resources)
                        for scope in getattr(resources, signal.scopes)
                    )
        totals["quarantined_batches"] += spool.quarantined(directory)
        evicted = spool.evictions(directory)
        totals["evicted_segments"] += evicted.segments
        totals["evicted_batches"] += evicted.records
        totals["evicted_bytes"] += evicted.bytes
    return {"directory": str(root), "destinations": [path.name for path in found_in], **totals}


def _drain(root: Path) -> tuple[int, int, bool, list[str]]:
    """Every destination's batches, oldest first, to the endpoint they were spooled for (the standard
    variables give headers, timeout, certificate authorities and the client certificate and key; and the
    endpoint, for a spool that does not say)."""
    import dataclasses
    from urllib.parse import urlsplit

    from faultspan._otlp.transport import Transport, resolve
    from faultspan._pipeline import spool

    sent = rejected = 0
    blocked = False
    endpoints: list[str] = []
    for directory in spool.destinations(root):
        where = spool.recorded_destination(directory)
        signal = _signal(directory)
        endpoint = resolve(signal=signal)
        if where is not None:
            scheme = urlsplit(where["url"]).scheme
            endpoint = dataclasses.replace(
                endpoint,
                protocol=where["protocol"],
                url=where["url"],
                insecure=scheme == "http" or (scheme != "https" and endpoint.insecure),
            )
        transport = Transport(endpoint, signal)
        try:
            result = spool.drain(directory, spool.sender(directory, transport, _DRAIN_ATTEMPT_SECONDS))
        finally:
            transport.close()
        endpoints.append(transport.destination)
        sent, rejected, blocked = sent + result.sent, rejected + result.rejected, result.blocked
        if blocked:
            break
    return sent, rejected, blocked, endpoints


def _run(args: argparse.Namespace) -> int:
    directory = _directory(args)
    if directory is None:
        print("faultspan spool: the spool is off (OTEL_PYTHON_FAULTSPAN_SPOOL_DIR=none); name a directory")
        return 2
    if args.directory and not directory.is_dir():  # the configured one is created with its first batch
        print(f"faultspan spool: {directory}: no such directory")
        return 2
    report: dict[str, Any] = {}
    code = 0
    if args.drain:
        try:
            sent, rejected, blocked, endpoint = _drain(directory)
        except ValueError as err:
            print(f"faultspan spool: {err}")
            return 2
        report["drain"] = {"endpoints": endpoint, "sent": sent, "rejected": rejected, "complete": not blocked}
        code = 1 if blocked else 0
    report.update(_status(directory))
    if args.json:
        print(json.dumps(report))
        return code
    if "drain" in report:
        drained = report["drain"]
        state = "the collector stopped taking batches" if blocked else "done"
        print(
            f"drained to {', '.join(drained['endpoints']) or 'nowhere'}: {drained['sent']} batch(es) sent, "
            f"{drained['rejected']} rejected by the collector and moved aside; {state}"
        )
    print(
        f"{report['directory']}: {report['pending_spans']} span(s)"
        + (f" and {report['pending_log_records']} log record(s)" if report["pending_log_records"] else "")
        + f" in {report['pending_batches']} batch(es), "
        f"{report['segments']} segment(s) ({report['segments_in_use']} in use by a running process), "
        f"{report['bytes']} bytes"
    )
    if report["damaged_records"]:
        print(f"damaged or truncated records skipped: {report['damaged_records']}")
    if report["quarantined_batches"]:
        print(
            f"rejected by the collector as never deliverable, kept aside under quarantine/: "
            f"{report['quarantined_batches']} batch(es)"
        )
    if report["evicted_segments"]:
        print(
            f"evicted over the budget: {report['evicted_batches']} batch(es) in "
            f"{report['evicted_segments']} segment(s), {report['evicted_bytes']} bytes"
        )
    return code
