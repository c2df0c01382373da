"""Pairwise precision and recall of the grouping keys on tests/grouping_corpus.py, two releases of it.

``python benchmarks/grouping.py``: one row per key, live (what faultspan's capture writes) and from the text
(what the processor computes for an event the SDK recorded without faultspan). For comparison, a key built the
way Pydantic Logfire documents its fingerprint (exception type and every frame's module, function and source
line, recursion collapsed, chained exceptions included, the message ignored), implemented here from that
description.
"""

from __future__ import annotations

import linecache
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import grouping_corpus as corpus
from faultspan._capture import exceptions
from faultspan._capture import fingerprint as fp
from faultspan._capture.config import Settings

SETTINGS = Settings()


def logfire_style(exc: BaseException) -> str:
    """Type, then each distinct frame (module, function, line), then the cause or unsuppressed context."""
    parts = [exceptions.type_name(exc)]
    seen: set[str] = set()
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        code = frame.f_code
        source = linecache.getline(code.co_filename, lineno).strip()
        line = f"{frame.f_globals.get('__name__')}:{code.co_name}:{source}"
        if line not in seen:
            seen.add(line)
            parts.append(line)
    linked = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if linked is not None:
        parts.append(f"caused by {logfire_style(linked)}")
    return "\n".join(parts)


def text_keys(exc: BaseException) -> fp.Fingerprints:
    stacktrace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return fp.text_fingerprints(exceptions.type_name(exc), str(exc), stacktrace)[0]


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        release = corpus.next_release(Path(directory) / "srv" / "app")
        report(corpus.failures() + release.failures())


def report(failures: list[corpus.Failure]) -> None:
    """Keys computed while both releases' sources are on disk, as a running service has them."""
    bugs = [failure.bug for failure in failures]
    captured = [exceptions.capture(failure.exc, SETTINGS) for failure in failures]
    from_text = [text_keys(failure.exc) for failure in failures]
    keys: dict[str, Callable[[int], str]] = {
        "faultspan.fingerprint (live)": lambda index: captured[index].fingerprint,
        "faultspan.fingerprint (from text)": lambda index: from_text[index].root,
        "faultspan.fingerprint.path (live)": lambda index: captured[index].path,
        "Logfire-style (type + all frames)": lambda index: logfire_style(failures[index].exc),
    }
    print(
        f"{len(failures)} failures of {len(set(bugs))} bugs, {len(corpus.CALLERS)} entry points each, "
        "two releases (lines moved)"
    )
    print(f"{'key':<36} {'precision':>9} {'recall':>7} {'keys':>5}")
    for name, key in keys.items():
        scores = corpus.pair_scores(bugs, [key(index) for index in range(len(failures))])
        print(f"{name:<36} {scores.precision:>9.3f} {scores.recall:>7.3f} {scores.keys:>5}")


if __name__ == "__main__":
    main()
