"""``.pushed.json``: which packages of a directory were already delivered, per endpoint.

Keyed by the SHA-256 of the package file, so a renamed or copied package is still recognised. Saving
re-reads the file and merges before the atomic replace, so two pushes into one directory at the same time can
at worst send a package twice (at-least-once), never forget one that was confirmed.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from faultspan.packages.atomic import sync_directory, write_atomic
from faultspan.packages.format import rfc3339

NAME = ".pushed.json"
FORMAT = "faultspan-pushed"
VERSION = 1


class RecordError(Exception):
    """An unreadable record; ``str()`` is the one-line reason."""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise RecordError(f"cannot read ({error.strerror})") from None
    except ValueError as error:
        raise RecordError(f"not valid JSON ({error})") from None
    if (
        not isinstance(document, dict)
        or document.get("format") != FORMAT
        or document.get("version") != VERSION
    ):
        raise RecordError(f"not a {FORMAT} version {VERSION} record")
    endpoints = document.get("endpoints")
    if not isinstance(endpoints, dict) or not all(isinstance(entry, dict) for entry in endpoints.values()):
        raise RecordError("field 'endpoints' is not an object of objects")
    return endpoints


class PushRecord:
    def __init__(self, directory: Path) -> None:
        """Raises ``RecordError`` when an existing record cannot be used."""
        self.path = directory / NAME
        self._endpoints = _read(self.path)
        self._added: dict[str, dict[str, dict[str, Any]]] = {}

    def pushed(self, endpoint: str, package_digest: str) -> bool:
        return package_digest in self._endpoints.get(endpoint, {})

    def add(self, endpoint: str, package_digest: str, package: str, spans: int) -> None:
        entry = {"package": package, "pushed": rfc3339(datetime.now(timezone.utc)), "spans": spans}
        for endpoints in (self._endpoints, self._added):
            endpoints.setdefault(endpoint, {})[package_digest] = entry

    def save(self) -> None:
        """Merge what this run added into the file as it is now on disk; raises ``RecordError`` or OSError."""
        if not self._added:
            return
        endpoints = _read(self.path)
        for endpoint, entries in self._added.items():
            endpoints.setdefault(endpoint, {}).update(entries)
        document = {"format": FORMAT, "version": VERSION, "endpoints": endpoints}
        data = json.dumps(document, indent=1, sort_keys=True).encode()
        write_atomic(self.path.parent, NAME, data, replace=True)
        sync_directory(self.path.parent)
        self._added.clear()
