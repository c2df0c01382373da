"""Files that appear whole or not at all, whatever kills the writing process."""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

MAX_NAME_ATTEMPTS = 100
TEMPORARY_SUFFIX = ".tmp"
_TEMPORARY_NAME = re.compile(r"\.([0-9]+)-[^/]*\.tmp")


_temporary_numbers = itertools.count()
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _temporary(directory: Path) -> tuple[int, str]:
    """A new hidden file named after this process, so a later start can tell a dead writer's leftovers."""
    while True:
        path = os.path.join(directory, f".{os.getpid()}-{next(_temporary_numbers)}{TEMPORARY_SUFFIX}")
        try:
            return os.open(path, _CREATE, 0o600), path
        except FileExistsError:  # left by a dead process that had the same pid
            continue


def _write_all(handle: int, data: bytes) -> None:
    """Plain ``os.write`` calls: system calls are what a package write costs (``open()`` adds three)."""
    view = memoryview(data)
    while view:
        view = view[os.write(handle, view) :]


def temporary_owner(name: str) -> int | None:
    """The pid in a temporary file's name, None for a name this module did not make."""
    match = _TEMPORARY_NAME.fullmatch(name)
    return int(match[1]) if match else None


def write_atomic(directory: Path, name: str, data: bytes, *, replace: bool = False) -> Path:
    """Written to a temporary file in ``directory``, then linked under ``name`` (a new name with a ``-<n>``
    suffix when it exists: a package is never replaced) or, with ``replace``, renamed onto it.

    A reader sees all or nothing whatever kills the process. The directory entry becomes durable at the next
    ``sync_directory``: the writer syncs once per batch of packages, not per package.
    """
    handle, temporary = _temporary(directory)
    try:
        try:
            _write_all(handle, data)
        finally:
            os.close(handle)
        if replace:
            final = directory / name
            os.replace(temporary, final)
            return final
        return _link_new(temporary, directory, name)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _link_new(temporary: str, directory: Path, name: str) -> Path:
    stem, suffix = os.path.splitext(name)
    for attempt in range(MAX_NAME_ATTEMPTS):
        final = directory / (name if attempt == 0 else f"{stem}-{attempt}{suffix}")
        try:
            os.link(temporary, final)
        except FileExistsError:
            continue
        return final
    raise FileExistsError(f"{directory / name} and {MAX_NAME_ATTEMPTS - 1} suffixed names exist")


def sync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
