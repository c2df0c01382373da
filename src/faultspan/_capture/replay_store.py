"""Replay documents waiting for their package, keyed by the span that failed.

They never travel in the span itself: OTLP exporters must not receive call arguments (unless
``OTEL_PYTHON_FAULTSPAN_REPLAY_IN_OTLP`` says so), so the package writer fetches them from here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

MAX_WAITING = 256

_lock = threading.Lock()
_waiting: OrderedDict[tuple[int, int], dict[str, Any]] = OrderedDict()


def remember(trace_id: int, span_id: int, document: dict[str, Any]) -> None:
    with _lock:
        _waiting[(trace_id, span_id)] = document
        _waiting.move_to_end((trace_id, span_id))
        while len(_waiting) > MAX_WAITING:
            _waiting.popitem(last=False)


def take(trace_id: int, span_id: int) -> dict[str, Any] | None:
    """The replay document recorded for this span, once: the package that holds it owns it."""
    with _lock:
        return _waiting.pop((trace_id, span_id), None)
