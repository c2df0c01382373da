"""The recorded call of a replayable capture: an exact, tagged JSON encoding of the arguments (no pickle).

JSON ``null``, booleans, numbers, strings and arrays stand for ``None``, ``bool``, ``int``, finite ``float``,
``str`` and ``list``; every other value is an object with exactly one key naming its type (docs/replay.md).
A value that cannot be rebuilt exactly, or that the redactor would mask, makes the whole call
non-replayable, with a reason naming the argument.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import importlib
import inspect
import json
import math
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from faultspan._capture.redaction import Redactor

REPLAY_ATTRIBUTE = "faultspan.replay"
MAX_DEPTH = 32
TOO_LARGE = "the recorded call is larger than OTEL_PYTHON_FAULTSPAN_MAX_REPLAY_BYTES"
_FIXED_ZONES = (type(None), dt.timezone)


class Unsupported(Exception):
    """``str()``: why this value cannot be recorded; ``where``: the path inside the argument."""

    def __init__(self, reason: str, where: str) -> None:
        super().__init__(reason)
        self.where = where


class BadCall(Exception):
    """A recorded call that cannot be rebuilt (corrupt or from a different code base); one-line reason."""


def path_of(target: object) -> str | None:
    """``module:qualname`` when ``target`` is importable under that name, else None."""
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or module == "__main__":
        return None
    if "<" in qualname:  # <locals>, <lambda>
        return None
    return f"{module}:{qualname}"


def resolve(path: str) -> Any:
    """The object named ``module:qualname``; static and class methods give their underlying function."""
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise BadCall(f"{path!r} is not a 'module:qualname' path")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = inspect.getattr_static(target, part)
            if isinstance(target, (staticmethod, classmethod)):
                target = target.__func__
    except Exception as error:  # the recorded code base may differ from this one in any way
        raise BadCall(f"cannot import {path}: {type(error).__name__}: {error}") from None
    return target


def _resolves_to(target: object) -> str | None:
    path = path_of(target)
    if path is None:
        return None
    try:
        return path if resolve(path) is target else None
    except BadCall:
        return None


class _Encoder:
    def __init__(self, redactor: Redactor, budget: int) -> None:
        self.redactor = redactor
        self.budget = budget

    def _spend(self, size: int, where: str) -> None:
        self.budget -= size
        if self.budget < 0:
            raise Unsupported(TOO_LARGE, where)

    def _text(self, text: str, where: str) -> str:
        self._spend(len(text) + 3, where)
        masked: list[str] = []
        self.redactor.scrub_value("", text, where, masked)
        if masked:
            raise Unsupported("would be redacted", where)
        return text

    def _key(self, key: object, where: str) -> None:
        if isinstance(key, str) and self.redactor.is_secret_key(key):
            raise Unsupported(f"key {key!r} is a secret name", where)

    def _path(self, target: type, where: str) -> str:
        path = _resolves_to(target)
        if path is None:
            raise Unsupported(f"class {target.__qualname__} is not importable by its name", where)
        return path

    def _zone(self, value: dt.datetime | dt.time, where: str) -> None:
        if type(value.tzinfo) not in _FIXED_ZONES:
            raise Unsupported(f"time zone {type(value.tzinfo).__name__} cannot be rebuilt exactly", where)

    def encode(self, value: Any, where: str, depth: int = 0) -> object:
        if depth > MAX_DEPTH:
            raise Unsupported(f"nested deeper than {MAX_DEPTH}", where)
        kind = type(value)
        if value is None or kind is bool:
            self._spend(5, where)
            return value
        if kind is str:
            return self._text(value, where)
        if kind is int:
            self._spend(len(str(value)) + 1, where)
            return value
        if kind is float:
            self._spend(26, where)
            return value if math.isfinite(value) else {"float": repr(value)}
        if kind in (list, tuple, set, frozenset):
            items = [self.encode(item, f"{where}[{index}]", depth + 1) for index, item in enumerate(value)]
            return items if kind is list else {kind.__name__: items}
        if kind is dict:
            pairs = []
            for key, item in value.items():
                self._key(key, where)
                child = f"{where}[{key!r}]"
                pairs.append([self.encode(key, child, depth + 1), self.encode(item, child, depth + 1)])
            return {"dict": pairs}
        if kind is bytes:
            try:
                self._text(value.decode(), where)
            except UnicodeDecodeError:
                self._spend(len(value) * 4 // 3 + 4, where)
            return {"bytes": base64.b64encode(value).decode("ascii")}
        return self._special(value, kind, where, depth)

    def _special(self, value: Any, kind: type, where: str, depth: int) -> object:
        self._spend(64, where)
        if isinstance(value, enum.Enum):
            return {"enum": [self._path(kind, where), value.name]}
        if kind is dt.datetime or kind is dt.time:
            self._zone(value, where)
            if value.fold:
                raise Unsupported("fold=1 (a repeated wall-clock time) is not recorded", where)
            return {kind.__name__: value.isoformat()}
        if kind is dt.date:
            return {"date": value.isoformat()}
        if kind is dt.timedelta:
            return {"timedelta": [value.days, value.seconds, value.microseconds]}
        if kind is Decimal:
            return {"decimal": str(value)}
        if kind is uuid.UUID:
            return {"uuid": str(value)}
        if isinstance(value, Path) and kind is type(Path()):
            return {"path": self._text(str(value), where)}
        if isinstance(value, type):
            return {"class": self._path(value, where)}
        if dataclasses.is_dataclass(value):
            fields = {}
            for field in dataclasses.fields(value):
                if not field.init:
                    raise Unsupported(f"dataclass field {field.name!r} is not an __init__ argument", where)
                self._key(field.name, where)
                child = f"{where}.{field.name}"
                fields[field.name] = self.encode(getattr(value, field.name), child, depth + 1)
            return {"dataclass": [self._path(kind, where), fields]}
        raise Unsupported(f"type {kind.__module__}.{kind.__qualname__} is not supported", where)


def _labels(function: Callable[..., Any], count: int) -> list[str]:
    """The parameter name of each positional argument (``args[2]`` past the named ones)."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    named = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    rest = next((p.name for p in parameters if p.kind is p.VAR_POSITIONAL), "args")
    return [named[index] if index < len(named) else f"{rest}[{index - len(named)}]" for index in range(count)]


def record_call(
    *,
    function: Callable[..., Any],
    wrapper: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    redactor: Redactor,
    max_bytes: int,
) -> dict[str, Any]:
    """The ``replay.json`` document for this call: replayable, or the reason naming the argument."""
    path = _resolves_to(wrapper)
    if path is None:
        reason = (
            f"{getattr(function, '__qualname__', function)!r} cannot be imported by its name "
            "(defined in __main__ or inside a function, or rebound)"
        )
        return {"replayable": False, "reason": reason}
    encoder = _Encoder(redactor, max_bytes)
    named = [*zip(_labels(function, len(args)), args, strict=True), *kwargs.items()]
    try:
        encoded: list[object] = []
        for label, value in named:
            base = label.partition("[")[0]
            if redactor.is_secret_key(base):
                raise Unsupported("its name is a secret name", label)
            encoded.append(encoder.encode(value, label))
        document = {
            "replayable": True,
            "callable": path,
            "args": encoded[: len(args)],
            "kwargs": dict(zip(kwargs, encoded[len(args) :], strict=True)),
        }
        if len(json.dumps(document, separators=(",", ":"))) > max_bytes:
            raise Unsupported(TOO_LARGE, "")
    except Unsupported as refusal:
        where = f"argument {refusal.where!r}: " if refusal.where else ""
        return {"replayable": False, "callable": path, "reason": f"{where}{refusal}"}
    except RecursionError:
        return {"replayable": False, "callable": path, "reason": "an argument is nested too deeply"}
    return document


# -- decoding ------------------------------------------------------------------------------------------------


def _class(path: object, expected: type | None = None) -> Any:
    if not isinstance(path, str):
        raise BadCall(f"class path {path!r} is not a string")
    target = resolve(path)
    if not isinstance(target, type) or (expected is not None and not issubclass(target, expected)):
        raise BadCall(f"{path} is not a {'class' if expected is None else expected.__name__}")
    return target


def _enum(path: object, name: object) -> enum.Enum:
    members = _class(path, enum.Enum).__members__
    if name not in members:
        raise BadCall(f"{path} has no member {name!r}")
    return members[name]  # type: ignore[no-any-return]


def _dataclass(path: object, fields: object) -> object:
    cls = _class(path)
    if not dataclasses.is_dataclass(cls) or not isinstance(fields, dict):
        raise BadCall(f"{path} is not a dataclass")
    return cls(**{name: decode(value) for name, value in fields.items()})  # type: ignore[operator]


_TAGS: dict[str, Callable[[Any], object]] = {
    "float": float,
    "tuple": lambda items: tuple(decode(item) for item in items),
    "set": lambda items: {decode(item) for item in items},
    "frozenset": lambda items: frozenset(decode(item) for item in items),
    "dict": lambda pairs: {decode(key): decode(value) for key, value in pairs},
    "bytes": lambda text: base64.b64decode(text, validate=True),
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda parts: dt.timedelta(days=parts[0], seconds=parts[1], microseconds=parts[2]),
    "decimal": Decimal,
    "uuid": uuid.UUID,
    "path": Path,
    "class": _class,
    "enum": lambda pair: _enum(*pair),
    "dataclass": lambda pair: _dataclass(*pair),
}


def decode(value: object) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [decode(item) for item in value]
    if not isinstance(value, dict) or len(value) != 1:
        raise BadCall(f"unknown encoded value {json.dumps(value)[:80]}")
    ((tag, content),) = value.items()
    rebuild = _TAGS.get(tag)
    if rebuild is None:
        raise BadCall(f"unknown value tag {tag!r}")
    try:
        return rebuild(content)
    except BadCall:
        raise
    except Exception as error:  # malformed content of a known tag
        raise BadCall(f"bad {tag} value: {type(error).__name__}: {error}") from None


def decode_call(document: Mapping[str, Any]) -> tuple[Callable[..., Any], list[Any], dict[str, Any]]:
    """The callable and its arguments from a replayable ``replay.json``."""
    args, kwargs = document.get("args"), document.get("kwargs")
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise BadCall("replay.json has no 'args' list or 'kwargs' object")
    target = resolve(str(document.get("callable", "")))
    if not callable(target):
        raise BadCall(f"{document.get('callable')} is not callable")
    try:
        return target, [decode(item) for item in args], {key: decode(item) for key, item in kwargs.items()}
    except RecursionError:
        raise BadCall("an argument is nested too deeply") from None
