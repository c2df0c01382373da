"""Replaying a package's recorded call: the checks before any code runs, the call, the verdict."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.trace import format_trace_id

from faultspan._capture import config
from faultspan._capture import replay_store as store
from faultspan._capture import replayable as capture
from faultspan._capture.exceptions import message_of, type_name
from faultspan._capture.runtime import current
from faultspan._pipeline import distro, recording
from faultspan.packages import signing
from faultspan.packages.catalog import REPLAY_SCOPE
from faultspan.packages.format import EXTENSION, REPLAY, Package, PackageError, read_package
from faultspan.replay.lines import LineRecorder

REPRODUCED = "reproduced"
DIFFERENT = "different failure"
NO_FAILURE = "no failure"
_CALL = ("replayable", "callable", "args", "kwargs")


class Refused(Exception):
    """The package is not replayed; ``str()`` is the one-line reason."""


@dataclass(frozen=True)
class Outcome:
    verdict: str
    original: dict[str, str]
    replay: dict[str, str] | None
    package: Path | None
    recording: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        recorded = self.recording
        return {
            "verdict": self.verdict,
            "original": self.original,
            "replay": self.replay,
            "package": str(self.package) if self.package else None,
            "recording": None
            if recorded is None
            else {
                "lines": len(recorded["lines"]),
                "truncated": recorded["truncated"],
                "limit": recorded["limit"],
            },
        }


def check(path: Path, settings: config.Settings) -> Package:
    """The verified, trusted and replayable package, or ``Refused``."""
    try:
        package = read_package(path)
    except PackageError as error:
        raise Refused(f"fails verification: {error}") from None
    if settings.signing_key:
        signature = package.signature
        if signature is None:
            raise Refused(f"unsigned, and {config.env_name('signing_key')} is set: refusing to run it")
        if not signing.is_signed_by(package.manifest, signature, settings.signing_key):
            variable = config.env_name("signing_key")
            raise Refused(f"signature does not match {variable} (altered, or signed with another key)")
    document = package.members[REPLAY]
    if document.get("replayable") is not True:
        raise Refused(f"not replayable: {document.get('reason', 'no reason given')}")
    return package


def _original(package: Package) -> dict[str, str]:
    manifest = package.manifest
    recorded = package.members[REPLAY].get("fingerprint")
    return {
        "fingerprint": recorded if isinstance(recorded, str) else manifest["fingerprint"],
        "type": manifest["exception"]["type"],
        "message": manifest["exception"]["message"],
    }


def _call(
    target: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], recorder: LineRecorder | None
) -> Exception | None:
    with recorder or contextlib.nullcontext():
        try:
            result = target(*args, **kwargs)
            if inspect.iscoroutine(result):
                asyncio.run(result)
        except Exception as error:  # the failure being replayed, whatever it is
            return error
    return None


def _written(directory: Path, trace_id: str) -> Path | None:
    for path in sorted(directory.glob(f"*-{trace_id[:8]}*{EXTENSION}")):  # name-trace[-n].fspkg
        with contextlib.suppress(PackageError):
            if read_package(path).manifest["trace_id"] == trace_id:
                return path
    return None


def run(package: Package, *, output: Path, record_lines: bool, max_lines: int) -> Outcome:
    """Call the recorded callable under a fresh tracer whose package exporter writes into ``output``."""
    document = package.members[REPLAY]
    if os.getcwd() not in sys.path:  # the app's modules, as ``python -m`` would find them
        sys.path.insert(0, os.getcwd())
    try:
        target, args, kwargs = capture.decode_call(document)
    except capture.BadCall as error:
        raise Refused(str(error)) from None
    handle = distro.configure(
        package_dir=str(output), traces_exporter="faultspan", service_name=package.manifest["service"] or None
    )
    try:
        runtime = current()
        recorder = LineRecorder(runtime.settings, runtime.redactor, max_lines) if record_lines else None
        tracer = handle.provider.get_tracer(REPLAY_SCOPE)
        with tracer.start_as_current_span(
            f"faultspan replay {document['callable']}", record_exception=False, set_status_on_exception=False
        ) as span:
            failure = _call(target, args, kwargs, recorder)
            ids = span.get_span_context()
            # What the decorator recorded for this span (the same call), with the recording added.
            kept = store.take(ids.trace_id, ids.span_id) or {key: document[key] for key in _CALL}
            if recorder is not None:
                kept["recording"] = recorder.document()
            fingerprint = None
            if failure is not None:
                fingerprint = kept["fingerprint"] = recording.record(span, failure, escaped=True)
                store.remember(ids.trace_id, ids.span_id, kept)
    finally:
        handle.shutdown()
    original = _original(package)
    if failure is None:
        return Outcome(NO_FAILURE, original, None, None, kept.get("recording"))
    message = runtime.redactor.scrub_text(message_of(failure))
    replayed = {"fingerprint": fingerprint or "", "type": type_name(failure), "message": message}
    verdict = REPRODUCED if fingerprint == original["fingerprint"] else DIFFERENT
    written = _written(output, format_trace_id(ids.trace_id))
    return Outcome(verdict, original, replayed, written, kept.get("recording"))
