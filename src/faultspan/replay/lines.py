"""Line-level recording of a replayed call (``faultspan replay --record-lines``), never in production.

Only in-app code is recorded (not the standard library, installed packages or faultspan itself), on the
calling thread, up to a number of lines; values are bounded reprs, redacted like captured locals.
"""

from __future__ import annotations

import linecache
import sys
import time
from collections.abc import Callable
from types import CodeType, FrameType, TracebackType
from typing import Any

from faultspan._capture import fingerprint
from faultspan._capture.config import Settings
from faultspan._capture.fingerprint import OWN_MODULES
from faultspan._capture.redaction import REDACTED, Redactor
from faultspan._capture.reprs import safe_repr

DEFAULT_LIMIT = 5000
MAX_SOURCE = 200
_Tracer = Callable[[FrameType, str, Any], Any]


class LineRecorder:
    """``with LineRecorder(...) as recorder:`` records every in-app line executed inside the block.

    ``recorder.document()`` is the ``recording`` object of ``replay.json`` (docs/replay.md).
    """

    def __init__(self, settings: Settings, redactor: Redactor, limit: int = DEFAULT_LIMIT) -> None:
        self.settings = settings
        self.redactor = redactor
        self.limit = limit
        self.lines: list[dict[str, Any]] = []
        self.truncated = False
        self._seen: dict[FrameType, dict[str, str]] = {}
        self._in_app: dict[CodeType, bool] = {}
        self._start = 0.0
        self._previous: Callable[..., Any] | None = None

    def document(self) -> dict[str, Any]:
        return {"lines": self.lines, "truncated": self.truncated, "limit": self.limit}

    def __enter__(self) -> LineRecorder:
        self._start = time.perf_counter()
        if sys.version_info >= (3, 12):
            monitoring = sys.monitoring
            monitoring.use_tool_id(monitoring.DEBUGGER_ID, "faultspan replay")
            monitoring.register_callback(monitoring.DEBUGGER_ID, monitoring.events.LINE, self._monitored)
            monitoring.set_events(monitoring.DEBUGGER_ID, monitoring.events.LINE)
        else:
            self._previous = sys.gettrace()
            sys.settrace(self._call)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if sys.version_info >= (3, 12):
            monitoring = sys.monitoring
            monitoring.set_events(monitoring.DEBUGGER_ID, 0)
            monitoring.register_callback(monitoring.DEBUGGER_ID, monitoring.events.LINE, None)
            monitoring.free_tool_id(monitoring.DEBUGGER_ID)
        else:
            sys.settrace(self._previous)
        self._seen.clear()

    def _monitored(self, code: CodeType, line: int) -> object:
        """``sys.monitoring`` LINE callback (3.12+, where ``sys.settrace`` is not used): it can switch off
        each location it does not want, so library code stops paying. The frame running ``code`` is our
        caller."""
        frame = sys._getframe(1)
        if self.truncated or not self._wanted(code, frame):
            return sys.monitoring.DISABLE  # type: ignore[attr-defined]
        if len(self.lines) >= self.limit:
            self.truncated = True
            return sys.monitoring.DISABLE  # type: ignore[attr-defined]
        self.lines.append(self._step(frame))
        return None

    def _wanted(self, code: CodeType, frame: FrameType) -> bool:
        wanted = self._in_app.get(code)
        if wanted is None:
            module = frame.f_globals.get("__name__")
            own = type(module) is str and module.split(".", 1)[0] in OWN_MODULES
            wanted = self._in_app[code] = not own and fingerprint.is_in_app(code.co_filename)
        return wanted

    def _call(self, frame: FrameType, event: str, arg: Any) -> _Tracer | None:
        if self.truncated or not self._wanted(frame.f_code, frame):
            return None
        return self._line

    def _line(self, frame: FrameType, event: str, arg: Any) -> _Tracer | None:
        if event == "line":
            if len(self.lines) >= self.limit:
                self.truncated = True
                return None
            self.lines.append(self._step(frame))
        elif event == "return":
            self._seen.pop(frame, None)
        return self._line

    def _value(self, name: str, value: object) -> str:
        if self.redactor.is_secret_key(name):
            return REDACTED
        text = safe_repr(value, self.settings.max_repr_length, self.settings.max_depth)
        return self.redactor.scrub_text(text)

    def _step(self, frame: FrameType) -> dict[str, Any]:
        code = frame.f_code
        previous = self._seen.setdefault(frame, {})
        changed: dict[str, str] = {}
        for name, value in list(frame.f_locals.items())[: self.settings.max_locals]:
            text = self._value(name, value)
            if previous.get(name) != text:
                changed[name] = previous[name] = text
        source = linecache.getline(code.co_filename, frame.f_lineno).rstrip()[:MAX_SOURCE]
        return {
            "filename": code.co_filename,
            "lineno": frame.f_lineno,
            "function": getattr(code, "co_qualname", code.co_name),
            "source": self.redactor.scrub_text(source),
            "locals": changed,
            "time": round(time.perf_counter() - self._start, 6),
        }
