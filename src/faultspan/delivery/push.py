"""The push verb: re-send packages to the OTLP endpoint of the standard variables (docs/collector.md)."""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from faultspan._capture import config

if TYPE_CHECKING:
    from faultspan._otlp.transport import Endpoint, Transport
    from faultspan.delivery.push_record import PushRecord

_BAR = 24


class _Progress:
    """One line on stderr redrawn in place, only when stderr is a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._enabled = False
        self._total = self._done = 0

    def start(self, total: int) -> None:
        self._total = total
        self._enabled = total > 0 and self._stream.isatty()

    def advance(self, label: str) -> None:
        if not self._enabled:
            return
        filled = _BAR * self._done // self._total
        line = f"[{'#' * filled}{'.' * (_BAR - filled)}] {self._done}/{self._total} {label}"
        width = shutil.get_terminal_size().columns - 1
        self._stream.write(f"\r\x1b[K{line[:width]}")
        self._stream.flush()
        self._done += 1

    def clear(self) -> None:
        if self._enabled:
            self._stream.write("\r\x1b[K")
            self._stream.flush()


def _span_count(trace: dict[str, Any]) -> int:
    return sum(
        len(scope.get("spans", []))
        for resource in trace.get("resourceSpans", [])
        for scope in resource.get("scopeSpans", [])
    )


def _log_record_count(logs: Any) -> int:
    if logs is None:
        return 0
    return sum(len(scope.log_records) for resource in logs.resource_logs for scope in resource.scope_logs)


@dataclass
class _Run:
    endpoint: Endpoint
    sender: Transport | None  # None for a dry run
    log_sender: Transport | None  # the logs endpoint, for packages holding logs.json
    force: bool
    progress: _Progress
    pushed: int = 0
    spans: int = 0
    log_records: int = 0
    already: int = 0
    invalid: int = 0
    planned: int = 0
    failed: list[str] = field(default_factory=list)
    records: dict[Path, PushRecord | None] = field(default_factory=dict)

    def note(self, line: str) -> None:
        self.progress.clear()
        print(line, file=sys.stderr)

    def expand(self, arguments: list[str]) -> list[Path]:
        """Packages named or found (``*.fspkg``, not recursive) in the directories named, each once."""
        from faultspan.packages.format import EXTENSION

        paths: dict[Path, Path] = {}
        for argument in arguments:
            path = Path(argument)
            if path.is_dir():
                found = sorted(path.glob(f"*{EXTENSION}"))
            elif path.exists():
                found = [path]
            else:
                self.note(f"{path}: no such file or directory")
                self.invalid += 1
                found = []
            for package in found:
                paths.setdefault(package.resolve(), package)
        return list(paths.values())

    def record(self, directory: Path) -> PushRecord | None:
        from faultspan.delivery.push_record import NAME, PushRecord, RecordError

        if directory not in self.records:
            try:
                self.records[directory] = PushRecord(directory)
            except RecordError as error:
                self.note(f"{directory / NAME}: {error}; its packages are not pushed until it is removed")
                self.records[directory] = None
        return self.records[directory]

    def push(self, path: Path) -> None:
        """One package: skip if recorded, verify, send; raises ``Unreachable`` to stop the run.

        A recorded digest means these very bytes verified and were delivered before: no need to verify again.
        """
        from faultspan._otlp.transport import Rejected
        from faultspan.delivery.push_record import digest
        from faultspan.packages.format import TRACE, PackageError, read_package

        record = self.record(path.parent)
        if record is None:
            self.failed.append(f"{path}: the push record of its directory is unreadable")
            return
        try:
            key = digest(path)
        except OSError as error:
            self.note(f"{path}: cannot read ({error.strerror})")
            self.invalid += 1
            return
        if record.pushed(self.endpoint.key, key) and not self.force:
            self.already += 1
            return
        try:
            package = read_package(path)
        except PackageError as error:
            self.note(f"{path}: {error}")
            self.invalid += 1
            return
        trace = package.members[TRACE]
        spans = _span_count(trace)
        records = _log_record_count(package.logs)
        if self.sender is None:
            self.progress.clear()
            logged = f", {records} log records" if records else ""
            print(f"{path}: {spans} spans{logged}, trace {package.manifest['trace_id']}")
            self.planned += 1
            return
        try:
            self.sender.send(package.request.SerializeToString())
            if records and self.log_sender is not None:
                self.log_sender.send(package.logs.SerializeToString())
        except Rejected as error:
            self.failed.append(f"{path}: {error}")
            return
        record.add(self.endpoint.key, key, path.name, spans)
        self.pushed += 1
        self.spans += spans
        self.log_records += records

    def save(self) -> None:
        from faultspan.delivery.push_record import RecordError

        for record in self.records.values():
            if record is None:
                continue
            try:
                record.save()
            except (RecordError, OSError) as error:
                reason = getattr(error, "strerror", None) or error
                self.failed.append(f"{record.path}: cannot save the push record ({reason})")

    def summary(self, unsent: int) -> str:
        if self.sender is None:
            counts = [f"would push {self.planned}"]
        else:
            logged = f", {self.log_records} log records" if self.log_records else ""
            counts = [f"pushed {self.pushed} ({self.spans} spans{logged})"]
        counts += [f"{self.already} already pushed", f"{len(self.failed)} failed", f"{self.invalid} invalid"]
        if unsent:
            counts.append(f"{unsent} not sent")
        return f"{', '.join(counts)} -> {self.endpoint.key}"


def _push(args: argparse.Namespace) -> int:
    from faultspan._otlp.transport import LOGS, EndpointError, Transport, Unreachable, resolve

    try:
        endpoint = resolve()
        sender = None if args.dry_run else Transport(endpoint)
        log_sender = None if args.dry_run else Transport(resolve(signal=LOGS), LOGS)
    except EndpointError as error:
        print(f"faultspan push: {error}", file=sys.stderr)
        return 2
    progress = _Progress(sys.stderr)
    run = _Run(endpoint, sender, log_sender, force=args.force, progress=progress)
    paths = run.expand(args.paths or [config.load().package_dir])
    progress.start(len(paths))
    unsent = 0
    try:
        for index, path in enumerate(paths):
            progress.advance(path.name)
            try:
                run.push(path)
            except Unreachable as error:
                unsent = len(paths) - index
                plural = "" if unsent == 1 else "s"
                run.note(f"{endpoint.key}: unreachable ({error}); {unsent} package{plural} not sent")
                break
    finally:
        progress.clear()
        for transport in (sender, log_sender):
            if transport is not None:
                transport.close()
        run.save()
    print(run.summary(unsent))
    for line in run.failed:
        print(line, file=sys.stderr)
    return 1 if run.failed or run.invalid or unsent else 0


def add_parsers(verbs: argparse._SubParsersAction[Any]) -> None:
    push = verbs.add_parser(
        "push",
        help="re-send replay packages to the OTLP endpoint of OTEL_EXPORTER_OTLP_* (once per endpoint)",
    )
    push.add_argument(
        "paths",
        nargs="*",
        metavar="PKG|DIR",
        help="packages or directories (default: OTEL_PYTHON_FAULTSPAN_PACKAGE_DIR or ./.faultspan/)",
    )
    push.add_argument("--force", action="store_true", help="send packages already recorded as pushed")
    push.add_argument("--dry-run", action="store_true", help="list what would be sent, send nothing")
    push.set_defaults(run=_push)
