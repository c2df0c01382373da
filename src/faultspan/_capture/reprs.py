"""Bounded, hostile-object-proof repr for local variables.

Dispatch is on ``type(obj)`` only: ``isinstance`` on an arbitrary object may call its ``__class__`` attribute,
which a proxy can intercept. Only exact built-in containers are walked; anything else gets one guarded call to
its own ``__repr__``, whose result is cut to the length budget.
"""

from __future__ import annotations

from typing import Any

_SCALARS = (type(None), bool, float, complex)
_SEQUENCES: dict[type, tuple[str, str]] = {
    list: ("[", "]"),
    tuple: ("(", ")"),
    set: ("{", "}"),
    frozenset: ("frozenset({", "})"),
}
_MAX_ITEMS = 10
_MAX_INT_BITS = 4096


_FLAT = frozenset((type(None), bool, int, float, str))
_FLAT_TEXT = 64


def _flat(obj: object, kind: type, depth: int = 1) -> bool:
    """Only short text and plain numbers inside (one level of small tuples/lists allowed): the builtin
    repr is then bounded and C-fast."""
    values = (*obj.keys(), *obj.values()) if kind is dict else obj  # type: ignore[attr-defined]
    for value in values:  # type: ignore[attr-defined]
        value_kind = type(value)
        if value_kind is tuple or value_kind is list:
            if depth >= 2 or len(value) > _MAX_ITEMS or not _flat(value, value_kind, depth + 1):
                return False
        elif (
            value_kind not in _FLAT
            or (value_kind is str and len(value) > _FLAT_TEXT)
            or (value_kind is int and value.bit_length() > 64)
        ):
            return False
    return True


def _inline(obj: Any, kind: type, levels_left: int) -> bool:
    """Whether the builtin repr of this exact container is already within every limit."""
    return levels_left > 0 and len(obj) <= _MAX_ITEMS and _flat(obj, kind, 1 if levels_left >= 2 else 2)


# Where a piece of a repr ends: the bound cuts the last piece short, and a secret in an unfinished piece (a
# URL's password before its "@", a quoted value before its quote) is one redaction no longer recognises.
_PIECE_ENDS = frozenset(" \t\n,;([{'\"=<>:/@&")


def _head(text: str, length: int) -> str:
    """The first ``length`` characters of ``text`` less its last, cut piece (none lost when the piece is
    more than half of them: one long word is then all there is)."""
    head = text[:length]
    if len(text) > length:
        for at in range(len(head) - 1, len(head) // 2, -1):
            if head[at] in _PIECE_ENDS:
                return head[: at + 1]
    return head


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{_head(text, max(limit - 1, 0))}…"


def _opaque(obj: object, reason: str) -> str:
    try:
        name = type(obj).__name__
    except Exception:
        name = "object"
    return f"<{name} ({reason})>"


class _Repr:
    __slots__ = ("limit", "max_depth", "seen")

    def __init__(self, limit: int, max_depth: int) -> None:
        self.limit = limit
        self.max_depth = max_depth
        self.seen: set[int] = set()

    def render(self, obj: object, depth: int) -> str:
        kind = type(obj)
        if kind is str:
            if len(obj) > self.limit:  # type: ignore[arg-type]
                return repr(_head(obj, self.limit)) + "…"  # type: ignore[arg-type]
            return repr(obj)
        if kind in _SCALARS:
            return repr(obj)
        if kind is int:
            if obj.bit_length() > _MAX_INT_BITS:  # type: ignore[attr-defined]
                return f"<int of {obj.bit_length()} bits>"  # type: ignore[attr-defined]
            return repr(obj)
        if kind is bytes or kind is bytearray:
            return repr(obj[: self.limit])  # type: ignore[index]
        if kind is dict or kind in _SEQUENCES:
            if _inline(obj, kind, self.max_depth - depth):
                return repr(obj)
            return self._container(obj, kind, depth)
        return self._foreign(obj)

    def _container(self, obj: object, kind: type, depth: int) -> str:
        if id(obj) in self.seen:
            return "<recursion>"
        if depth >= self.max_depth:
            return f"<{kind.__name__} of {len(obj)} items>"  # type: ignore[arg-type]
        self.seen.add(id(obj))
        try:
            parts: list[str] = []
            size = 0
            items = obj.items() if kind is dict else obj  # type: ignore[attr-defined]
            for index, item in enumerate(items):  # type: ignore[arg-type]
                if index >= _MAX_ITEMS or size > self.limit:
                    parts.append(f"... {len(obj) - index} more")  # type: ignore[arg-type]
                    break
                if kind is dict:
                    part = f"{self.render(item[0], depth + 1)}: {self.render(item[1], depth + 1)}"
                else:
                    part = self.render(item, depth + 1)
                parts.append(part)
                size += len(part) + 2
        finally:
            self.seen.discard(id(obj))
        if kind is dict:
            return "{" + ", ".join(parts) + "}"
        opening, closing = _SEQUENCES[kind]
        if kind is tuple and len(parts) == 1:
            closing = ",)"
        if kind is set and not parts:
            return "set()"
        return opening + ", ".join(parts) + closing

    def _foreign(self, obj: object) -> str:
        try:
            text = repr(obj)
        except RecursionError:
            return _opaque(obj, "repr recursed")
        except Exception as exc:
            return _opaque(obj, f"repr raised {type(exc).__name__}")
        if type(text) is not str:
            return _opaque(obj, "repr returned non-text")
        return text


def safe_repr(obj: object, limit: int = 256, max_depth: int = 3) -> str:
    """Never raises (short of KeyboardInterrupt/SystemExit), never touches attributes of ``obj`` itself."""
    kind = type(obj)
    if kind is str:
        return _cut(repr(obj[: limit + 1]), limit)  # type: ignore[index]
    if kind in _SCALARS or (kind is int and obj.bit_length() <= _MAX_INT_BITS):  # type: ignore[attr-defined]
        return _cut(repr(obj), limit)
    if (kind is dict or kind in _SEQUENCES) and _inline(obj, kind, max_depth):
        return _cut(repr(obj), limit)
    try:
        return _cut(_Repr(limit, max_depth).render(obj, 0), limit)
    except RecursionError:
        return _opaque(obj, "too deep")
    except Exception as exc:
        return _opaque(obj, f"{type(exc).__name__} while rendering")
