"""A live exception -> the attributes of the contract's ``exception`` event.

One walk over each traceback feeds the structured frames, the stacktrace text and the fingerprint, so the
whole capture costs less than the SDK's own ``record_exception`` (which re-parses every source line to draw
carets). Pure: no SDK state; the caller passes the settings, the redactor and any OpenTelemetry length limit.
"""

from __future__ import annotations

import builtins
import json
import linecache
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any

from faultspan._capture import fingerprint as fp
from faultspan._capture.config import Settings, warn_once
from faultspan._capture.redaction import Redactor
from faultspan._capture.reprs import safe_repr

FRAMES = "faultspan.frames"
CHAIN = "faultspan.chain"
FINGERPRINT = "faultspan.fingerprint"
FINGERPRINT_PATH = "faultspan.fingerprint.path"
GROUPING = "faultspan.grouping"
OPERATION = "faultspan.operation"
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_STACKTRACE = "exception.stacktrace"
EXCEPTION_ESCAPED = "exception.escaped"

_CONTEXT_LINES = 2
_REPEAT_LIMIT = 3
_TRACEBACK = "Traceback (most recent call last):\n"
_MAX_EXCEPTIONS = 64
# The most faultspan writes of each text, in characters, applied before anything is copied (design.md#limits).
MAX_MESSAGE = 8 * 1024
MAX_NOTES = 16
MAX_STACKTRACE = 64 * 1024
MAX_STRUCTURE = 128 * 1024  # faultspan.frames and faultspan.chain, each
MAX_STATUS = 1024
MAX_BREADCRUMB_MESSAGE = 2 * 1024
_CAUSE_HEADER = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT_HEADER = "\nDuring handling of the above exception, another exception occurred:\n\n"
_BASE_GROUP: type[BaseException] | None = getattr(builtins, "BaseExceptionGroup", None)


def type_name(exc: BaseException) -> str:
    """The name OpenTelemetry's record_exception writes: unqualified for builtins."""
    kind = type(exc)
    module = kind.__module__
    return f"{module}.{kind.__qualname__}" if module and module != "builtins" else kind.__qualname__


def message_of(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception as err:
        return f"<str() of {type(exc).__name__} raised {type(err).__name__}>"
    if type(text) is not str:
        return f"<str() of {type(exc).__name__} returned non-text>"
    return head_and_tail(text, MAX_MESSAGE)


def _notes(exc: BaseException) -> list[str]:
    notes = exc.__dict__.get("__notes__") if hasattr(exc, "__dict__") else None
    if type(notes) is not list:
        return []
    return [
        head_and_tail(note, MAX_MESSAGE) if type(note) is str else safe_repr(note)
        for note in notes[:MAX_NOTES]
    ]


@dataclass
class _Frame:
    frame: FrameType
    lineno: int
    module: str
    function: str
    filename: str
    in_app: bool
    context_line: str | None
    source: list[str]

    def key(self) -> fp.FrameKey:
        return fp.FrameKey(self.module, self.function, self.context_line, self.in_app)


@dataclass
class _Node:
    """One exception of the chain, with its frames extracted once."""

    exc: BaseException
    type: str
    message: str
    frames: list[_Frame]
    omitted: int
    cause: _Node | None = None
    context: _Node | None = None
    members: list[_Node] = field(default_factory=list)
    truncated: bool = False
    cycle: bool = False

    def children(self) -> Iterator[_Node]:
        if self.cause is not None:
            yield self.cause
        if self.context is not None:
            yield self.context
        yield from self.members


def _walk(tb: TracebackType | None) -> Iterator[tuple[FrameType, int]]:
    while tb is not None:
        yield tb.tb_frame, tb.tb_lineno
        tb = tb.tb_next


def _extract(tb: TracebackType | None, max_frames: int) -> tuple[list[_Frame], int]:
    raw = [(frame, lineno) for frame, lineno in _walk(tb) if not _is_own(frame)]
    omitted = 0
    if max_frames and len(raw) > max_frames:
        head = max_frames // 4
        omitted = len(raw) - max_frames
        raw = raw[:head] + raw[len(raw) - (max_frames - head) :]
    frames = []
    for frame, lineno in raw:
        code = frame.f_code
        filename = code.co_filename
        source = linecache.getlines(filename, frame.f_globals)
        # Indentation kept, as in pre_context/post_context, so viewers can show the lines as written.
        line = source[lineno - 1].rstrip() or None if 0 < lineno <= len(source) else None
        module = frame.f_globals.get("__name__")
        frames.append(
            _Frame(
                frame=frame,
                lineno=lineno,
                module=module if type(module) is str else "",
                function=code.co_name,
                filename=filename,
                in_app=fp.is_in_app(filename),
                context_line=line,
                source=source,
            )
        )
    return frames, omitted


def _is_own(frame: FrameType) -> bool:
    module = frame.f_globals.get("__name__")
    return type(module) is str and module.split(".", 1)[0] in fp.OWN_MODULES


class _ChainBuilder:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.seen: set[int] = set()
        # Depth and width limits alone still allow width ** depth nodes in nested groups.
        self.budget = _MAX_EXCEPTIONS

    def build(self, exc: BaseException, depth: int) -> _Node:
        frames, omitted = _extract(exc.__traceback__, self.settings.max_frames)
        node = _Node(exc, type_name(exc), message_of(exc), frames, omitted)
        self.seen.add(id(exc))
        self.budget -= 1
        links: list[tuple[str, BaseException | None]] = [("cause", exc.__cause__)]
        if exc.__cause__ is None and not exc.__suppress_context__:
            links.append(("context", exc.__context__))
        for relation, linked in links:
            if linked is None:
                continue
            if id(linked) in self.seen:
                node.cycle = True
            elif depth >= self.settings.max_chain_depth or self.budget <= 0:
                node.truncated = True
            else:
                setattr(node, relation, self.build(linked, depth + 1))
        if _BASE_GROUP is not None and isinstance(exc, _BASE_GROUP):
            members: Sequence[BaseException] = exc.exceptions  # type: ignore[attr-defined]
            if depth >= self.settings.max_chain_depth:
                node.truncated = True
            else:
                for member in members[: self.settings.max_group_width]:
                    if id(member) in self.seen:
                        node.cycle = True
                    elif self.budget <= 0:
                        node.truncated = True
                    else:
                        node.members.append(self.build(member, depth + 1))
                node.truncated = node.truncated or len(members) > self.settings.max_group_width
        return node


def _context(frame: _Frame) -> dict[str, Any]:
    index = frame.lineno - 1
    before = frame.source[max(index - _CONTEXT_LINES, 0) : max(index, 0)]
    after = frame.source[index + 1 : index + 1 + _CONTEXT_LINES]
    return {
        "pre_context": [line.rstrip("\n") for line in before],
        "post_context": [line.rstrip("\n") for line in after],
    }


_HIDDEN_TYPES = (type(json), type(_walk), type(len), type)


def _locals(frame: _Frame, settings: Settings, budget: list[int]) -> dict[str, str] | None:
    if budget[0] <= 0:
        return None
    try:
        variables = frame.frame.f_locals
    except Exception:
        return None
    module_level = frame.function == "<module>"
    captured: dict[str, str] = {}
    for name, value in list(variables.items()):
        if len(captured) >= settings.max_locals or budget[0] <= 0:
            break
        if type(name) is not str or (
            module_level and (name.startswith("__") or type(value) in _HIDDEN_TYPES)
        ):
            continue
        text = safe_repr(value, settings.max_repr_length, settings.max_depth)
        cost = len(name) + len(text) + 6  # as JSON: two quoted strings, a colon and a comma
        if cost > budget[0]:
            budget[0] = 0
            break
        captured[name] = text
        budget[0] -= cost
    return captured


def _frame_dicts(node: _Node, settings: Settings, budget: list[int]) -> list[dict[str, Any]]:
    """Frames oldest first; locals are filled innermost first so the budget goes where the failure is."""
    out: list[dict[str, Any]] = [
        {
            "module": frame.module,
            "function": frame.function,
            "filename": frame.filename,
            "lineno": frame.lineno,
            "in_app": frame.in_app,
            "context_line": frame.context_line,
        }
        for frame in node.frames
    ]
    for index in range(len(out) - 1, -1, -1):
        frame = node.frames[index]
        if frame.in_app:
            out[index].update(_context(frame))
        if settings.capture_locals and (frame.in_app or index == len(out) - 1):
            captured = _locals(frame, settings, budget)
            if captured is not None:
                out[index]["locals"] = captured
    return out


def _chain_dict(node: _Node, settings: Settings, budget: list[int], root: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"type": node.type, "message": node.message}
    notes = _notes(node.exc)
    if notes:
        out["notes"] = notes
    if not root:
        out["frames"] = _frame_dicts(node, settings, budget)
    if node.omitted:
        out["frames_omitted"] = node.omitted
    if node.cause is not None:
        out["cause"] = _chain_dict(node.cause, settings, budget, False)
    if node.context is not None:
        out["context"] = _chain_dict(node.context, settings, budget, False)
    if node.members:
        out["exceptions"] = [_chain_dict(member, settings, budget, False) for member in node.members]
    if node.truncated:
        out["truncated"] = True
    if node.cycle:
        out["cycle"] = True
    return out


def _format_frames(frames: list[_Frame], out: list[str]) -> None:
    previous: tuple[str, int, str] | None = None
    repeats = 0
    for frame in frames:
        current = (frame.filename, frame.lineno, frame.function)
        if current == previous:
            repeats += 1
            if repeats >= _REPEAT_LIMIT:
                continue
        else:
            _flush_repeats(repeats, out)
            previous, repeats = current, 0
        out.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.function}\n')
        if frame.context_line:
            out.append(f"    {frame.context_line.strip()}\n")
    _flush_repeats(repeats, out)


def _flush_repeats(repeats: int, out: list[str]) -> None:
    if repeats >= _REPEAT_LIMIT:
        hidden = repeats - _REPEAT_LIMIT + 1
        out.append(f"  [Previous line repeated {hidden} more time{'s' if hidden > 1 else ''}]\n")


def _format(node: _Node, out: list[str]) -> None:
    """The text traceback.format_exception produces, minus the caret lines, from the frames already walked.

    Groups use Python's numbered boxes, but only over the members kept by the chain limits: the stdlib
    would format every member of every nested group, which is unbounded.
    """
    if node.cause is not None:
        _format(node.cause, out)
        out.append(_CAUSE_HEADER)
    elif node.context is not None:
        _format(node.context, out)
        out.append(_CONTEXT_HEADER)
    if node.frames:
        out.append("Exception Group Traceback (most recent call last):\n" if node.members else _TRACEBACK)
        _format_frames(node.frames, out)
    out.append(f"{node.type}: {node.message}\n" if node.message else f"{node.type}\n")
    out.extend(f"{note}\n" for note in _notes(node.exc))
    for number, member in enumerate(node.members, 1):
        lines: list[str] = []
        _format(member, lines)
        out.append(f"+---------------- {number} ----------------\n")
        out.extend(f"    | {line}" for line in "".join(lines).splitlines(keepends=True))
    if node.members:
        if node.truncated:
            out.append("+---------------- ... ----------------\n    | and more exceptions\n")
        out.append("+------------------------------------\n")


def _stacktrace(root: _Node) -> str:
    out: list[str] = []
    _format(root, out)
    return "".join(out)


def _key(node: _Node, redactor: Redactor | None) -> fp.ExceptionKey:
    message = redactor.scrub_text(node.message) if redactor is not None else node.message
    return fp.ExceptionKey(
        type=node.type,
        message=message,
        frames=tuple(frame.key() for frame in node.frames),
        children=tuple(_key(child, redactor) for child in node.children()),
        template=fp.exception_template(node.exc, message),
    )


# Exceptions cannot be weakly referenced: the keys of an exception live on the exception itself, so every
# span, hook and log record that records it again (with a longer or shorter traceback) gets the same keys.
_GROUPING_MARK = "__faultspan_grouping__"


@dataclass(frozen=True)
class Grouping:
    keys: fp.Fingerprints
    info: dict[str, Any]  # fp.grouping_info


def _grouping(root: _Node, redactor: Redactor | None) -> Grouping:
    state = vars(root.exc)
    remembered = state.get(_GROUPING_MARK)
    if type(remembered) is Grouping:
        return remembered
    key = _key(root, redactor)
    grouping = Grouping(fp.fingerprints(key), fp.grouping_info(key))
    state[_GROUPING_MARK] = grouping
    return grouping


def fit_grouping(info: dict[str, Any], limit: int | None) -> str:
    """JSON of the grouping info within ``limit`` characters: the path and the children go first."""
    text = json.dumps(info, ensure_ascii=False)
    for drop in (("path",), ("path", "children")):
        if limit is None or len(text) <= limit:
            return text
        text = json.dumps({k: v for k, v in info.items() if k not in drop}, ensure_ascii=False)
    return text if limit is None or len(text) <= limit else "{}"


def head_and_tail(text: str, limit: int) -> str:
    """Keep the start and, with more room, the end: the innermost frames and the final ``Type: message``;
    the marker between them says how much was cut of how much."""
    if len(text) <= limit:
        return text
    marker = f"\n  [... {len(text) - limit} of {len(text)} characters truncated ...]\n"
    if limit <= len(marker) + 2:
        return text[len(text) - limit :]
    room = limit - len(marker)
    head = room // 4
    return text[:head] + marker + text[len(text) - (room - head) :]


def _fit_frames(frames: list[dict[str, Any]], limit: int) -> str:
    """JSON of the frames within ``limit`` characters, shedding locals, then context, then outer frames."""
    text = json.dumps(frames, ensure_ascii=False)
    if len(text) <= limit:
        return text
    for strip in (("locals",), ("locals", "pre_context", "post_context")):
        frames = [{k: v for k, v in frame.items() if k not in strip} for frame in frames]
        text = json.dumps(frames, ensure_ascii=False)
        if len(text) <= limit:
            return text
    while frames:
        frames = frames[max(len(frames) // 2, 1) :]
        text = json.dumps(frames, ensure_ascii=False)
        if len(text) <= limit:
            return text
    return "[]"


def _fit_chain(chain: dict[str, Any], limit: int) -> str:
    text = json.dumps(chain, ensure_ascii=False)
    if len(text) <= limit:
        return text
    slim: dict[str, Any] = {"type": chain["type"], "truncated": True}
    for key in ("message", "notes"):
        if key in chain:
            candidate = {**slim, key: chain[key]}
            if len(json.dumps(candidate, ensure_ascii=False)) <= limit:
                slim = candidate
    text = json.dumps(slim, ensure_ascii=False)
    return text if len(text) <= limit else "{}"


@dataclass(frozen=True)
class Capture:
    attributes: dict[str, str]
    fingerprint: str
    path: str


FingerprintOverride = str | Sequence[str] | None


def capture(
    exc: BaseException,
    settings: Settings,
    redactor: Redactor | None = None,
    *,
    operation: str | None = None,
    fingerprint: FingerprintOverride = None,
    max_length: int | None = None,
    escaped: bool = False,
) -> Capture:
    """Build the ``exception`` event attributes, least important first (a count limit drops the oldest)."""
    root = _ChainBuilder(settings).build(exc, 0)
    budget = [settings.max_locals_bytes]
    frames = _frame_dicts(root, settings, budget)
    chain = _chain_dict(root, settings, budget, True)
    grouping = _grouping(root, redactor)
    override = _override(exc, grouping.keys.root, fingerprint, settings.fingerprint_callback)
    key, path = (
        (grouping.keys.root, grouping.keys.path)
        if override is None
        else (
            fp.custom_fingerprint(override, grouping.keys.root),
            fp.custom_fingerprint(override, grouping.keys.path),
        )
    )
    stacktrace = _stacktrace(root)
    structure_limit = MAX_STRUCTURE if max_length is None else min(max_length, MAX_STRUCTURE)
    attributes = {
        CHAIN: _fit_chain(chain, structure_limit),
        FRAMES: _fit_frames(frames, structure_limit),
        EXCEPTION_ESCAPED: str(escaped),
    }
    if operation:
        attributes[OPERATION] = operation
    attributes[GROUPING] = fit_grouping(grouping.info, structure_limit)
    attributes[FINGERPRINT_PATH] = path
    attributes[FINGERPRINT] = key
    attributes[EXCEPTION_STACKTRACE] = head_and_tail(
        stacktrace, MAX_STACKTRACE if max_length is None else min(max_length, MAX_STACKTRACE)
    )
    attributes[EXCEPTION_MESSAGE] = root.message
    attributes[EXCEPTION_TYPE] = root.type
    return Capture(attributes, key, path)


def _override(
    exc: BaseException,
    default: str,
    override: FingerprintOverride,
    callback: Callable[..., Any] | None,
) -> FingerprintOverride:
    """The user's override (argument, else callback), applied to both keys; None keeps the defaults."""
    if override is None and callback is not None:
        try:
            override = callback(exc, default)
        except Exception as err:
            warn_once(
                "fingerprint-callback", "faultspan: fingerprint callback raised %r; using the default", err
            )
    return override
