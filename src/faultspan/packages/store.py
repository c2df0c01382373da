"""The package directory's bounds: packages per fingerprint per window, the size budget, stale temporaries.

One scan when the writer starts indexes the directory (sizes, and the fingerprints and occurrence counts of
the packages still inside the window, so a restarted process keeps counting). Processes sharing a directory
take turns: every decision and write happens inside ``shared()``, which holds an exclusive ``flock`` on the
directory itself and first catches up with what the others wrote or evicted since (only when the
directory changed), so the per-fingerprint limit and the size budget hold for all of them together. Counted
occurrences are added to what the newest package says, never written over it. Callers serialise access
within the process (the exporter's write lock), except ``next_rewrite``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from faultspan._capture.config import Settings
from faultspan.packages import atomic
from faultspan.packages import format as fspkg

# A storm of one failure rewrites its newest package at most once per this many seconds (and at flush).
REWRITE_DELAY_SECONDS = 1.0
# A temporary file of a live process older than this is a leftover of a dead one whose pid was reused.
STALE_TEMPORARY_SECONDS = 60.0
_STAMP_LENGTH = len("20261122T060834583364Z")
_STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"


@dataclass
class _Entry:
    size: int
    fingerprint: str | None


@dataclass
class _Fingerprint:
    written: deque[float] = field(default_factory=deque)  # created times (Unix) inside the window
    newest: str | None = None  # file name of the newest package, which counts later occurrences
    pending: int = 0  # occurrences counted by this process, not yet added to the newest package
    last_occurrence: float = 0.0
    rewrite_at: float | None = None  # monotonic time of the pending rewrite of ``newest``


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _is_stale(entry: os.DirEntry[str], now: float) -> bool:
    owner = atomic.temporary_owner(entry.name)
    if owner is not None and owner != os.getpid() and not process_exists(owner):
        return True
    return now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMPORARY_SECONDS


def _created(name: str) -> float | None:
    try:
        return datetime.strptime(name[:_STAMP_LENGTH], _STAMP_FORMAT).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def _unix(stamp: object, default: float) -> float:
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default


class PackageStore:
    def __init__(self, directory: Path, settings: Settings) -> None:
        self.directory = directory
        self._limit = settings.package_max_per_fingerprint
        self._window = settings.package_window_seconds
        self._budget = settings.package_dir_max_bytes
        self._signing_key = settings.signing_key
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # oldest first
        self._total = 0
        self._fingerprints: dict[str, _Fingerprint] = {}
        self._opened = False
        self._seen: int | None = None  # the directory's mtime when this process last caught up
        self._unsynced = False
        self.written = 0
        self.evicted = 0
        self.counted = 0
        self.rewrites = 0
        self.stale_removed = 0

    def open(self) -> None:
        """The one scan (retried at the next write until it succeeds, e.g. once a missing disk is back). A
        missing directory is an empty one: it is created by the first package, not by starting up."""
        if self._opened:
            return
        self._entries.clear()  # what an earlier, failed scan may have left
        self._fingerprints.clear()
        self._total = 0
        self._seen = None
        self._catch_up(remove_stale=True)
        self._opened = True

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """The directory to this process alone, and the index caught up with the other processes' writes."""
        self.directory.mkdir(parents=True, exist_ok=True)
        handle = os.open(self.directory, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._catch_up(remove_stale=False)
            yield
            # What changed the directory since the catch-up was this process: the index knows it already.
            with contextlib.suppress(FileNotFoundError):
                self._seen = self.directory.stat().st_mtime_ns
        finally:
            os.close(handle)  # releases the lock

    def _catch_up(self, *, remove_stale: bool) -> None:
        """Index packages that appeared and forget those that went since the last look; nothing to do when
        the directory has not changed."""
        try:
            changed = self.directory.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if changed == self._seen:
            return
        now = time.time()
        found: dict[str, int] = {}
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.name.startswith(".") and entry.name.endswith(atomic.TEMPORARY_SUFFIX):
                    if remove_stale and _is_stale(entry, now):
                        Path(entry.path).unlink(missing_ok=True)
                        self.stale_removed += 1
                elif entry.name.endswith(fspkg.EXTENSION) and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(FileNotFoundError):
                        found[entry.name] = entry.stat(follow_symlinks=False).st_size
        for name in [name for name in self._entries if name not in found]:
            self._forget(name)
        for name in sorted(found):
            if name not in self._entries:
                self._entries[name] = _Entry(found[name], self._recover(name, now))
                self._total += found[name]
        if found:
            self._entries = OrderedDict(sorted(self._entries.items()))
        self._seen = changed

    def _recover(self, name: str, now: float) -> str | None:
        """The fingerprint of a package inside the window (its count and occurrences restored), else None."""
        created = _created(name)
        if created is None or now - created > self._window:
            return None
        try:
            manifest = fspkg.read_manifest(self.directory / name)
        except fspkg.PackageError:
            return None
        state = self._fingerprints.setdefault(manifest["fingerprint"], _Fingerprint())
        state.written.append(created)
        state.written = deque(sorted(state.written))
        if state.newest is None or name > state.newest:
            if state.pending and state.newest is not None:  # ours belong to the package they were counted for
                self._rewrite(state)
            state.newest = name
            state.last_occurrence = max(
                state.last_occurrence, _unix(manifest.get("last_occurrence"), created)
            )
        return str(manifest["fingerprint"])

    def admit(self, fingerprint: str, now: float) -> bool:
        """Whether a package of this fingerprint may be written now; if not, the occurrence is counted in
        the newest package of the fingerprint (rewritten later, see ``rewrite``)."""
        state = self._fingerprints.get(fingerprint)
        if not self._limit or state is None or state.newest is None:
            return True
        while state.written and now - state.written[0] > self._window:
            state.written.popleft()
        if len(state.written) < self._limit:
            return True
        state.pending += 1
        state.last_occurrence = max(state.last_occurrence, now)
        if state.rewrite_at is None:
            state.rewrite_at = time.monotonic() + REWRITE_DELAY_SECONDS
        self.counted += 1
        return False

    def add(self, name: str, data: bytes, fingerprint: str, created: float) -> Path:
        """Writes a new package (never over an existing file), then evicts the oldest over the budget."""
        state = self._fingerprints.setdefault(fingerprint, _Fingerprint())
        if state.rewrite_at is not None:  # the occurrences counted so far belong to the previous package
            self._rewrite(state)
        path = self._write(name, data, replace=False)
        self._index(path.name, len(data), fingerprint)
        state.written.append(created)
        state.newest, state.pending, state.last_occurrence = path.name, 0, created
        self.written += 1
        self._evict(keep=path.name)
        return path

    def replace(self, name: str, build: Callable[..., bytes]) -> Path:
        """Rewrites a package whole (a trace a flush wrote early, more complete now), keeping the occurrences
        counted in it so far: ``build`` gets them as manifest fields (keyword arguments)."""
        counts: dict[str, Any] = {}
        with contextlib.suppress(fspkg.PackageError):
            manifest = fspkg.read_manifest(self.directory / name)
            counts = {key: manifest[key] for key in ("occurrences", "last_occurrence") if key in manifest}
        data = build(**counts)
        path = self._write(name, data, replace=True)
        self._index(name, len(data), self._entries[name].fingerprint if name in self._entries else None)
        self._evict(keep=name)
        return path

    def next_rewrite(self) -> float | None:
        """When the next rewrite is due. Read without the exporter's write lock (the writer asks while it
        holds its condition): copying the values is one step under the GIL."""
        pending = [state.rewrite_at for state in tuple(self._fingerprints.values())]
        return min((at for at in pending if at is not None), default=None)

    def rewrite(self, *, everything: bool) -> None:
        """Saves counted occurrences whose delay is over (all of them with ``everything``)."""
        now = time.monotonic()
        if not any(
            state.rewrite_at is not None and (everything or state.rewrite_at <= now)
            for state in self._fingerprints.values()
        ):
            return
        with self.shared():
            for state in list(self._fingerprints.values()):
                if state.rewrite_at is not None and (everything or state.rewrite_at <= now):
                    self._rewrite(state)

    def sync(self) -> None:
        """Makes the names written since the last sync durable: one directory fsync per batch."""
        if self._unsynced:
            self._unsynced = False
            atomic.sync_directory(self.directory)

    def _rewrite(self, state: _Fingerprint) -> None:
        name = state.newest
        if name is None or not state.pending:
            state.rewrite_at = None
            return
        state.rewrite_at = time.monotonic() + REWRITE_DELAY_SECONDS  # retried later if this fails
        try:
            manifest = fspkg.read_manifest(self.directory / name)
            recorded = manifest.get("occurrences")
            last = max(state.last_occurrence, _unix(manifest.get("last_occurrence"), state.last_occurrence))
            fields = {
                "occurrences": (recorded if isinstance(recorded, int) and recorded > 0 else 1)
                + state.pending,
                "last_occurrence": fspkg.rfc3339(datetime.fromtimestamp(last, timezone.utc)),
            }
            data = fspkg.rewritten(self.directory / name, fields, self._signing_key)
        except fspkg.PackageError:  # deleted or damaged behind our back: later occurrences get a new package
            state.newest = state.rewrite_at = None
            return
        self._write(name, data, replace=True)
        state.rewrite_at = None
        state.pending = 0
        self.rewrites += 1
        self._index(name, len(data), self._entries[name].fingerprint if name in self._entries else None)
        self._evict(keep=name)

    def _write(self, name: str, data: bytes, *, replace: bool) -> Path:
        try:
            path = atomic.write_atomic(self.directory, name, data, replace=replace)
        except FileNotFoundError:  # the directory was removed since the scan
            self.directory.mkdir(parents=True, exist_ok=True)
            path = atomic.write_atomic(self.directory, name, data, replace=replace)
        self._unsynced = True
        return path

    def _index(self, name: str, size: int, fingerprint: str | None) -> None:
        previous = self._entries.get(name)
        if previous is not None:
            self._total -= previous.size
            previous.size = size
        else:
            self._entries[name] = _Entry(size, fingerprint)
        self._total += size

    def _evict(self, keep: str) -> None:
        while self._budget and self._total > self._budget:
            victim = next((name for name in self._entries if name != keep), None)
            if victim is None:
                return
            self._forget(victim)
            (self.directory / victim).unlink(missing_ok=True)
            self.evicted += 1

    def _forget(self, name: str) -> None:
        entry = self._entries.pop(name)
        self._total -= entry.size
        state = self._fingerprints.get(entry.fingerprint or "")
        if state is not None and state.newest == name:
            state.newest = state.rewrite_at = None
