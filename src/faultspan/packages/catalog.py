"""The packages of a directory for ``list`` and ``groups``: reading them, the filters, the grouping.

A package stands for ``occurrences`` failures (default 1) seen between ``created`` and ``last_occurrence``
(default ``created``): later occurrences of the same fingerprint are counted into the newest package instead
of being written. A time filter keeps a package when that span of time overlaps the window.

``list --json`` is an array, oldest first, of ``created``, ``service``, ``exception`` (``type``,
``message``), ``fingerprint``, ``trace_id``, ``occurrences``, ``last_seen`` and ``file`` (the path).
``groups --json`` is an array, the most recently seen first, of ``fingerprint``, ``count`` (occurrences
summed), ``packages`` (files), ``first_seen``, ``last_seen``, ``services`` (sorted), ``exception`` (of the
newest package) and ``example`` (the newest package's path). Times are RFC 3339 UTC with milliseconds.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from faultspan.packages.format import EXTENSION, PackageError, read_package, rfc3339

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


@dataclass(frozen=True)
class Entry:
    """One verified package of the directory, with what its manifest says about occurrences."""

    path: Path
    manifest: dict[str, Any]
    created: datetime
    last_seen: datetime
    occurrences: int

    @classmethod
    def of(cls, path: Path, manifest: dict[str, Any]) -> Entry:
        created = _moment(manifest["created"])
        last_seen = created
        last = manifest.get("last_occurrence")
        if isinstance(last, str):
            with contextlib.suppress(ValueError):
                last_seen = max(created, _moment(last))
        return cls(path, manifest, created, last_seen, occurrences(manifest))


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
            and (self.until is None or entry.created <= self.until)
        )


def _entry(path: Path) -> Entry | PackageError:
    try:
        return Entry.of(path, read_package(path).manifest)
    except PackageError as error:
        return error


def scan(directory: Path) -> Iterator[tuple[Path, Entry | PackageError]]:
    """Every ``.fspkg`` of the directory in name order, verified, or why it cannot be trusted."""
    for path in sorted(directory.glob(f"*{EXTENSION}")):
        yield path, _entry(path)


def listing(entries: Iterable[Entry]) -> list[dict[str, Any]]:
    """``list --json``: one object per package, oldest first."""
    return [
        {
            "created": rfc3339(entry.created),
            "service": entry.manifest["service"],
            "exception": entry.manifest["exception"],
            "fingerprint": entry.manifest["fingerprint"],
            "trace_id": entry.manifest["trace_id"],
            "occurrences": entry.occurrences,
            "last_seen": rfc3339(entry.last_seen),
            "file": str(entry.path),
        }
        for entry in sorted(entries, key=lambda entry: (entry.created, entry.path.name))
    ]


def groups(entries: Iterable[Entry]) -> list[dict[str, Any]]:
    """``groups --json``: one object per fingerprint, the most recently seen first.

    ``exception`` and ``example`` come from the newest package of the group.
    """
    by_fingerprint: dict[str, list[Entry]] = {}
    for entry in entries:
        by_fingerprint.setdefault(entry.manifest["fingerprint"], []).append(entry)
    rows = []
    for fingerprint, members in by_fingerprint.items():
        newest = max(members, key=lambda entry: (entry.created, entry.path.name))
        rows.append(
            {
                "fingerprint": fingerprint,
                "count": sum(entry.occurrences for entry in members),
                "packages": len(members),
                "first_seen": rfc3339(min(entry.created for entry in members)),
                "last_seen": rfc3339(max(entry.last_seen for entry in members)),
                "services": sorted({entry.manifest["service"] for entry in members}),
                "exception": newest.manifest["exception"],
                "example": str(newest.path),
            }
        )
    rows.sort(key=lambda row: (row["last_seen"], row["fingerprint"]), reverse=True)
    return rows
