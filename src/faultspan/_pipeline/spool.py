"""The on-disk spool: append-only segment files of checksummed records, shared safely by processes.

A record is ``MAGIC | state | length | crc32(payload) | payload`` where the payload is a serialized OTLP
``ExportTraceServiceRequest``. ``state`` is the one mutable byte: a record is written pending and flipped to
done in place after the collector confirmed it, so a batch is never re-sent after a confirmed success and
a segment is deleted only when every record in it is done.

Every writer appends to segment files of its own (``<time_ns>-<pid>-<random>.seg``) and holds an exclusive
``flock`` on each while it has it open; a reader claims a segment with a non-blocking ``flock`` on its own
descriptor, so a segment is never read while it is written nor sent by two processes at once. A writer that
dies (even by SIGKILL) releases its locks with its descriptors, and its segments are read up to the last
whole record. A damaged record is found by its checksum and skipped; reading resumes at the next magic.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from faultspan._capture.config import warn_once
from faultspan._otlp.transport import Outcome, Transport

_logger = logging.getLogger("faultspan")
MAGIC = b"\xfa\x57\x5e\x01"
PENDING = b"P"
DONE = b"D"
_HEADER = struct.Struct("<4scII")
SUFFIX = ".seg"
EVICTIONS = "evictions.log"
# Batches a collector rejected as never deliverable as they are: kept aside, never sent again by a drain.
QUARANTINE = "quarantine"
QUARANTINE_MAX_BYTES = 16 * 1024 * 1024  # per destination; the oldest go first
# Where a destination's batches were meant to go (protocol, URL without credentials, signal), so a drain by
# another process or by ``faultspan spool --drain`` sends them there, whatever its own variables say.
DESTINATION = "destination.json"
_SEGMENT_CEILING = 4 * 1024 * 1024
_SEGMENT_FLOOR = 16 * 1024


@dataclass
class Record:
    offset: int
    pending: bool
    payload: bytes


@dataclass
class Scan:
    records: list[Record]
    bad_records: int
    bad_bytes: int


def encode(payload: bytes) -> bytes:
    return _HEADER.pack(MAGIC, PENDING, len(payload), zlib.crc32(payload)) + payload


def scan(data: bytes) -> Scan:
    """Every whole record of a segment; damaged stretches are counted and skipped up to the next magic."""
    records: list[Record] = []
    bad_records = bad_bytes = 0
    position = 0
    size = len(data)
    while position < size:
        header_end = position + _HEADER.size
        if header_end <= size and data[position : position + 4] == MAGIC:
            _, state, length, crc = _HEADER.unpack_from(data, position)
            end = header_end + length
            if state in (PENDING, DONE) and end <= size and zlib.crc32(data[header_end:end]) == crc:
                records.append(Record(position, state == PENDING, data[header_end:end]))
                position = end
                continue
        following = data.find(MAGIC, position + 1)
        resume = size if following < 0 else following
        bad_records += 1
        bad_bytes += resume - position
        position = resume
    return Scan(records, bad_records, bad_bytes)


def segments(directory: Path) -> list[Path]:
    """Segment files oldest first (names start with the creation time in nanoseconds)."""
    try:
        names = [entry.name for entry in os.scandir(directory) if entry.name.endswith(SUFFIX)]
    except FileNotFoundError:
        return []
    return [directory / name for name in sorted(names)]


def destination_dir(root: Path, destination: str) -> Path:
    """Where batches for ``destination`` (protocol and endpoint) are spooled: data meant for one collector
    is never sent to another that a later process happens to be configured with."""
    return root / re.sub(r"[^A-Za-z0-9.-]+", "_", destination).strip("_")


def destinations(root: Path) -> list[Path]:
    """Spool directories under ``root``: each subdirectory, and ``root`` itself when it is one."""
    try:
        found = sorted(entry.path for entry in os.scandir(root) if entry.is_dir())
    except FileNotFoundError:
        return []
    own = segments(root) or (root / EVICTIONS).exists()
    return [Path(path) for path in found] + ([root] if own else [])


def _segment_name() -> str:
    return f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"


@contextlib.contextmanager
def claim(path: Path) -> Iterator[int | None]:
    """An open, exclusively locked descriptor on ``path``; None when someone else holds it or it is gone."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        # Deleted by the reader that held the lock before us: nothing left to do.
        yield fd if os.fstat(fd).st_nlink else None
    finally:
        os.close(fd)


def _read(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0) if size else b""


def _report_damage(path: Path, found: Scan) -> None:
    if found.bad_records:
        _logger.warning(
            "faultspan: spool segment %s: skipped %d damaged or truncated record(s) (%d bytes)",
            path,
            found.bad_records,
            found.bad_bytes,
        )


def private_directory(directory: Path) -> None:
    """A destination's directory and the spool root above it, the owner's only like the files in them."""
    directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.mkdir(mode=0o700, exist_ok=True)


def recorded_destination(directory: Path) -> dict[str, str] | None:
    """The destination ``directory`` was written for, None when it does not say (or says it badly)."""
    try:
        found = json.loads((directory / DESTINATION).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    keys = ("protocol", "url", "signal")
    if not isinstance(found, dict) or not all(isinstance(found.get(key), str) for key in keys):
        return None
    return {key: found[key] for key in keys}


def _record_destination(directory: Path, where: Mapping[str, str]) -> None:
    if (directory / DESTINATION).exists():
        return
    temporary = directory / f".{DESTINATION}.{os.getpid()}.tmp"
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(handle, json.dumps(dict(where)).encode("utf-8"))
    finally:
        os.close(handle)
    os.replace(temporary, directory / DESTINATION)


def quarantine(directory: Path, payload: bytes, where: str) -> None:
    """Moves a batch the collector at ``where`` will never take aside, so the batches behind it go on: one
    file per batch under ``quarantine/`` (a segment of one record, readable like any), within its budget."""
    aside = directory / QUARANTINE
    private_directory(aside)
    path = aside / _segment_name()
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(handle, encode(payload))
    finally:
        os.close(handle)
    kept = sorted(aside.glob(f"*{SUFFIX}"), reverse=True)
    total = 0
    for older in kept:
        with contextlib.suppress(FileNotFoundError):  # another process's drain may prune it first
            total += older.stat().st_size
            if total > QUARANTINE_MAX_BYTES and older != path:
                older.unlink()
    warn_once(
        f"quarantine:{aside}",
        "faultspan: %s rejected a batch as never deliverable; moved aside to %s (later ones too, counted "
        "by faultspan spool)",
        where,
        aside,
    )


def sender(directory: Path, transport: Transport, attempt_seconds: float) -> Callable[[bytes], Outcome]:
    """Sends one spooled batch of ``directory`` to ``transport``; what it will never take is moved aside."""

    def aside(part: bytes) -> None:
        quarantine(directory, part, transport.destination)

    def send(payload: bytes) -> Outcome:
        return transport.deliver(payload, attempt_seconds, aside)

    return send


def quarantined(directory: Path) -> int:
    return len(list((directory / QUARANTINE).glob(f"*{SUFFIX}")))


def record_eviction(directory: Path, path: Path, records: int, size: int) -> None:
    """One line per evicted segment; O_APPEND keeps concurrent writers' lines whole."""
    line = f"{time.time():.3f} {os.getpid()} {records} {size} {path.name}\n".encode()
    private_directory(directory)
    fd = os.open(directory / EVICTIONS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@dataclass
class Evictions:
    segments: int = 0
    records: int = 0
    bytes: int = 0


def evictions(directory: Path) -> Evictions:
    total = Evictions()
    try:
        lines = (directory / EVICTIONS).read_text().splitlines()
    except FileNotFoundError:
        return total
    for line in lines:
        parts = line.split(maxsplit=4)  # the name last: ``(new batch)`` has a space
        if len(parts) == 5 and parts[2].isdigit() and parts[3].isdigit():
            total.segments += 1
            total.records += int(parts[2])
            total.bytes += int(parts[3])
    return total


@dataclass
class DrainResult:
    sent: int = 0
    rejected: int = 0
    blocked: bool = False  # stopped at a record the collector did not take


def drain_segment(path: Path, fd: int, send: Callable[[bytes], Outcome], result: DrainResult) -> None:
    """Send the pending records of a claimed segment in order; delete it once every record is done. ``send``
    decides what a rejected record becomes (``quarantine`` it, or drop it)."""
    found = scan(_read(fd))
    _report_damage(path, found)
    for record in found.records:
        if not record.pending:
            continue
        outcome = send(record.payload)
        if outcome is Outcome.RETRY:
            result.blocked = True
            return
        os.pwrite(fd, DONE, record.offset + 4)
        if outcome is Outcome.SENT:
            result.sent += 1
        else:  # ``send`` moved it aside
            result.rejected += 1
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def drain(directory: Path, send: Callable[[bytes], Outcome], stop: Callable[[], bool] = bool) -> DrainResult:
    """Send every claimable segment oldest first; stops at the first record the collector does not take."""
    result = DrainResult()
    for path in segments(directory):
        if stop():
            break
        with claim(path) as fd:
            if fd is not None:
                drain_segment(path, fd, send, result)
        if result.blocked:
            break
    return result


class _File:
    """A segment this process writes: open, locked, appended to."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / _segment_name()
        # Locked under a name readers ignore, then renamed (the lock stays with the open file): a reader
        # could otherwise claim the new, empty segment between its creation and the lock, and delete it.
        # No O_APPEND: Linux's pwrite ignores the offset on such descriptors, and records are marked in place.
        creating = self.path.with_suffix(".new")
        private_directory(directory)  # only once there is something to keep
        self.fd = os.open(creating, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        os.rename(creating, self.path)
        self.size = 0
        self.pending = 0

    def append(self, record: bytes) -> int:
        offset = self.size
        os.pwrite(self.fd, record, offset)
        self.size += len(record)
        self.pending += 1
        return offset

    def close(self, *, delete: bool = False) -> None:
        if delete:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self.fd)


@dataclass(frozen=True)
class Ref:
    """A journaled record: the file it is in and where."""

    file: _File
    offset: int


class Spool:
    """The writing side for one process: failed batches, and exception spans journaled before sending."""

    def __init__(self, directory: Path, max_bytes: int, where: Mapping[str, str] | None = None) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._where = where
        self.segment_bytes = max(_SEGMENT_FLOOR, min(_SEGMENT_CEILING, max_bytes // 8))
        self._lock = threading.Lock()
        self._active: _File | None = None
        self._journal: _File | None = None
        self._old_journals: set[_File] = set()
        self._total = self._measure()
        self.evicted_records = 0

    @property
    def size(self) -> int:
        """Bytes this spool's directory holds, as this process last counted them."""
        return self._total

    def _new_file(self) -> _File:
        file = _File(self.directory)
        if self._where is not None:
            _record_destination(self.directory, self._where)
            self._where = None
        return file

    def _measure(self) -> int:
        total = 0
        for path in segments(self.directory):
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    # -- failed batches ------------------------------------------------------------------------------

    def append(self, payload: bytes) -> bool:
        """Keep a batch the collector did not take; False when it cannot fit at all (counted as evicted)."""
        record = encode(payload)
        with self._lock:
            if not self._make_room(len(record)):
                self._count_dropped(len(record))
                return False
            if self._active is not None and self._active.size + len(record) > self.segment_bytes:
                self._seal_locked()
            if self._active is None:
                self._active = self._new_file()
            self._active.append(record)
            self._total += len(record)
        return True

    def seal(self) -> bool:
        """Close the segment being written so a reader can claim it; False when there was nothing."""
        with self._lock:
            return self._seal_locked()

    def _seal_locked(self) -> bool:
        active, self._active = self._active, None
        if active is None:
            return False
        active.close()
        return True

    # -- the journal ---------------------------------------------------------------------------------

    def journal(self, payload: bytes) -> Ref | None:
        """Write a record that is pending until ``settle``: survives the process being killed meanwhile."""
        record = encode(payload)
        with self._lock:
            if not self._make_room(len(record)):
                self._count_dropped(len(record))
                return None
            journal = self._journal
            if journal is not None and journal.size + len(record) > self.segment_bytes:
                self._old_journals.add(journal)
                journal = None
            if journal is None:
                journal = self._journal = self._new_file()
            offset = journal.append(record)
            self._total += len(record)
            return Ref(journal, offset)

    def settle(self, refs: list[Ref]) -> None:
        """These journaled records were sent, or copied into a failed batch: done. An emptied journal shrinks
        back to nothing, so a healthy process keeps no spool data."""
        with self._lock:
            for ref in refs:
                ref.file.pending -= 1
                if ref.file.fd < 0:
                    continue
                os.pwrite(ref.file.fd, DONE, ref.offset + 4)
                if ref.file.pending:
                    continue
                self._total -= ref.file.size
                if ref.file is self._journal:
                    os.ftruncate(ref.file.fd, 0)
                    ref.file.size = 0
                else:
                    self._old_journals.discard(ref.file)
                    ref.file.close(delete=True)
                    ref.file.fd = -1

    # -- budget --------------------------------------------------------------------------------------

    def _make_room(self, size: int) -> bool:
        if self._total + size <= self.max_bytes:
            return True
        self._total = self._measure()  # other processes write here too
        if self._total + size <= self.max_bytes:
            return True
        own = {file.path for file in (self._active, self._journal, *self._old_journals) if file is not None}
        for path in segments(self.directory):
            if path in own:
                continue
            self._evict(path)
            if self._total + size <= self.max_bytes:
                return True
        # Only our own segment is left: the oldest data is its head, so give up the segment being written.
        if self._active is not None:
            path = self._active.path
            self._seal_locked()
            self._evict(path)
        return self._total + size <= self.max_bytes

    def _evict(self, path: Path) -> None:
        with claim(path) as fd:
            if fd is None:
                return
            data = _read(fd)
            pending = sum(record.pending for record in scan(data).records)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._total -= len(data)
        if pending:
            self.evicted_records += pending
            record_eviction(self.directory, path, pending, len(data))
            _logger.warning(
                "faultspan: spool over its budget (%d bytes): evicted %d unsent batch(es) in %s",
                self.max_bytes,
                pending,
                path.name,
            )

    def _count_dropped(self, size: int) -> None:
        self.evicted_records += 1
        record_eviction(self.directory, self.directory / "(new batch)", 1, size)
        _logger.warning(
            "faultspan: spool over its budget (%d bytes) and nothing older to evict: a batch was dropped",
            self.max_bytes,
        )

    def forget_files(self) -> None:
        """After fork, in the child: the parent's files stay the parent's (closing our copies of the
        descriptors does not release its locks)."""
        self._lock = threading.Lock()
        for file in (self._active, self._journal, *self._old_journals):
            if file is not None and file.fd >= 0:
                os.close(file.fd)
        self._active = self._journal = None
        self._old_journals.clear()

    def close(self) -> None:
        """Seal everything; journals with nothing pending are deleted, others stay for a later drain."""
        with self._lock:
            self._seal_locked()
            for journal in (self._journal, *self._old_journals):
                if journal is not None and journal.fd >= 0:
                    journal.close(delete=not journal.pending)
                    journal.fd = -1
            self._journal = None
            self._old_journals.clear()
            if not segments(self.directory) and not (self.directory / QUARANTINE).exists():
                # Nothing left to say where it goes: a healthy run leaves no file behind.
                (self.directory / DESTINATION).unlink(missing_ok=True)
