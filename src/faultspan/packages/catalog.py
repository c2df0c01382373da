"""The packages of a directory for ``list`` and ``groups``: reading them, the filters, the grouping.

A package stands for ``occurrences`` failures (default 1) seen between its failure time (when the failing
span recorded its exception; the manifest's ``created`` is when the package was written, up to the package
wait later) and ``last_occurrence``: later occurrences of the same fingerprint are counted into the newest
package instead of being written. A time filter keeps a package when that span of time overlaps the window.
A package that ``faultspan replay`` wrote (its trace holds the replay's span) is a ``replay``: listed, but
never counted as an occurrence of the failure.

``list --json`` is an array, oldest failure first, of ``failure_time``, ``created``, ``service``,
``exception`` (``type``, ``message``), ``fingerprint``, ``trace_id``, ``occurrences``, ``last_seen``,
``replay`` (bool) and ``file`` (the path). ``groups --json`` is an array, the most recently seen first, of
``fingerprint``, ``count`` (occurrences summed, replays left out), ``replays``, ``packages`` (files),
``first_seen``, ``last_seen``, ``services`` (sorted), ``exception`` (of the newest package) and ``example``
(the newest package's path); ``groups --by path`` groups by ``faultspan.fingerprint.path`` instead (the
root-cause key split by call path) and adds it as ``path``, with ``fingerprint`` the newest package's.
Times are RFC 3339 UTC with milliseconds.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from faultspan.packages.format import EXTENSION, Package, PackageError, read_package, rfc3339

REPLAY_SCOPE = "faultspan.replay"  # the tracer of the span ``faultspan replay`` calls the function in
_EXCEPTION_EVENT = "exception"
_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, now: datetime) -> datetime:
    """``30m``, ``2h``, ``7d`` before ``now``, or ISO 8601 (UTC unless it has an offset); else ValueError."""
    relative = _RELATIVE.match(text.strip())
    if relative:
        return now - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither ISO 8601 nor a relative time like 30m, 2h, 7d") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def occurrences(manifest: dict[str, Any]) -> int:
    """The manifest's optional ``occurrences``: how many failures the package stands for."""
    count = manifest.get("occurrences")
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 1 else 1


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _spans(package: Package) -> Iterator[tuple[str, Any]]:
    """Every span of the trace, with the name of the instrumentation scope that made it."""
    for resource_spans in package.request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield scope_spans.scope.name, span


def failure_unix_nano(package: Package) -> int | None:
    """When the failing span recorded its (last) exception (its event, or its log record), if it did."""
    failing = package.manifest.get("span_id")
    times = [
        event.time_unix_nano
        for _, span in _spans(package)
        if span.span_id.hex() == failing
        for event in span.events
        if event.name == _EXCEPTION_EVENT and event.time_unix_nano > 0
    ]
    if not times and package.logs is not None:  # OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN=logs: its log record
        records = [
            record
            for resource in package.logs.resource_logs
            for scope in resource.scope_logs
            for record in scope.log_records
            if record.event_name == _EXCEPTION_EVENT and record.time_unix_nano > 0
        ]
        own = [record for record in records if record.span_id.hex() == failing]
        times = [record.time_unix_nano for record in own or records]
    return times[-1] if times else None


def failure_time(package: Package) -> datetime:
    """``failure_unix_nano``; the package's write time when the failing span holds no exception."""
    unix_nano = failure_unix_nano(package)
    if unix_nano is None:
        return _moment(package.manifest["created"])
    return datetime.fromtimestamp(unix_nano / 1e9, timezone.utc)


def is_replay(package: Package) -> bool:
    return any(scope == REPLAY_SCOPE for scope, _ in _spans(package))


@dataclass(frozen=True)
class Entry:
    """One verified package of the directory: when it failed, when it was last seen, how many it counts."""

    path: Path
    manifest: dict[str, Any]
    failed: datetime
    last_seen: datetime
    occurrences: int
    replay: bool
    path_key: str  # faultspan.fingerprint.path of the failing span; its fingerprint in older packages

    @classmethod
    def of(cls, path: Path, package: Package) -> Entry:
        manifest = package.manifest
        failed = failure_time(package)
        count = occurrences(manifest)
        last_seen = failed
        last = manifest.get("last_occurrence")
        if count > 1 and isinstance(last, str):
            with contextlib.suppress(ValueError):
                last_seen = max(failed, _moment(last))
        key = _path_key(package) or manifest["fingerprint"]
        return cls(path, manifest, failed, last_seen, count, is_replay(package), key)

    def order(self) -> tuple[datetime, str]:
        """Oldest failure first; the file name breaks ties."""
        return self.failed, self.path.name


_PATH_KEY = "faultspan.fingerprint.path"


def _path_key(package: Package) -> str | None:
    """The failing span's path key: from its last exception event, else its own attribute."""
    failing = package.manifest.get("span_id")
    for resource_spans in package.request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if span.span_id.hex() != failing:
                    continue
                events = [event for event in span.events if event.name == "exception"]
                for attributes in (*(event.attributes for event in events[-1:]), span.attributes):
                    for item in attributes:
                        if item.key == _PATH_KEY and item.value.WhichOneof("value") == "string_value":
                            return str(item.value.string_value)
    return None


@dataclass(frozen=True)
class Filters:
    service: str | None = None
    fingerprint: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def keep(self, entry: Entry) -> bool:
        manifest = entry.manifest
        return (
            (self.service is None or manifest["service"] == self.service)
            and (self.fingerprint is None or manifest["fingerprint"].startswith(self.fingerprint.lower()))
            and (self.since is None or entry.last_seen >= self.since)
            and (self.until is None or entry.failed <= self.until)
        )


def _entry(path: Path) -> Entry | PackageError:
    try:
        return Entry.of(path, read_package(path))
    except PackageError as error:
        return error


def scan(directory: Path) -> Iterator[tuple[Path, Entry | PackageError]]:
    """Every ``.fspkg`` of the directory in name order, verified, or why it cannot be trusted."""
    for path in sorted(directory.glob(f"*{EXTENSION}")):
        yield path, _entry(path)


def listing(entries: Iterable[Entry]) -> list[dict[str, Any]]:
    """``list --json``: one object per package, oldest failure first."""
    return [
        {
            "failure_time": rfc3339(entry.failed),
            "created": entry.manifest["created"],
            "service": entry.manifest["service"],
            "exception": entry.manifest["exception"],
            "fingerprint": entry.manifest["fingerprint"],
            "trace_id": entry.manifest["trace_id"],
            "occurrences": entry.occurrences,
            "last_seen": rfc3339(entry.last_seen),
            "replay": entry.replay,
            "file": str(entry.path),
        }
        for entry in sorted(entries, key=Entry.order)
    ]


def groups(entries: Iterable[Entry], by: str = "fingerprint") -> list[dict[str, Any]]:
    """``groups --json``: one object per fingerprint (or path key), the most recently seen first.

    ``exception`` and ``example`` come from the newest package of the group; the times and the count from
    the captured ones (a group of replays alone takes its times from them).
    """
    by_key: dict[str, list[Entry]] = {}
    for entry in entries:
        by_key.setdefault(entry.path_key if by == "path" else entry.manifest["fingerprint"], []).append(entry)
    rows = []
    for key, members in by_key.items():
        captured = [entry for entry in members if not entry.replay]
        seen = captured or members
        example = max(members, key=Entry.order)
        rows.append(
            {
                **({"path": key} if by == "path" else {}),
                "fingerprint": example.manifest["fingerprint"],
                "count": sum(entry.occurrences for entry in captured),
                "replays": len(members) - len(captured),
                "packages": len(members),
                "first_seen": rfc3339(min(entry.failed for entry in seen)),
                "last_seen": rfc3339(max(entry.last_seen for entry in seen)),
                "services": sorted({entry.manifest["service"] for entry in members}),
                "exception": example.manifest["exception"],
                "example": str(example.path),
            }
        )
    rows.sort(key=lambda row: (row["last_seen"], row.get("path", row["fingerprint"])), reverse=True)
    return rows
