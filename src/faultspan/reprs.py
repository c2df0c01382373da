"""Bounded, hostile-object-proof repr for local variables.

Dispatch is on ``type(obj)`` only: ``isinstance`` on an arbitrary object may call its ``__class__`` attribute,
which a proxy can intercept. Only exact built-in containers are walked; anything else gets one guarded call to
its own ``__repr__``, whose result is cut to the length budget.
"""

from __future__ import annotations

_SCALARS = (type(None), bool, float, complex)
_SEQUENCES: dict[type, tuple[str, str]] = {list: ("[", "]"), tuple: ("(", ")"), set: ("{", "}"), frozenset: ("frozenset({", "})")}
_MAX_ITEMS = 10
_MAX_INT_BITS = 4096


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[: max(limit - 1, 0)]}…"


def _opaque(obj: object, reason: str) -> str:
    try:
        name = type(obj).__qualname__
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
            return repr(obj[: self.limit])  # type: ignore[index]
        if kind in _SCALARS:
            return repr(obj)
        if kind is int:
            if obj.bit_length() > _MAX_INT_BITS:  # type: ignore[attr-defined]
                return f"<int of {obj.bit_length()} bits>"  # type: ignore[attr-defined]
            return repr(obj)
        if kind is bytes or kind is bytearray:
            return repr(obj[: self.limit])  # type: ignore[index]
        if kind is dict or kind in _SEQUENCES:
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
    try:
        return _cut(_Repr(limit, max_depth).render(obj, 0), limit)
    except RecursionError:
        return _opaque(obj, "too deep")
    except Exception as exc:
        return _opaque(obj, f"{type(exc).__name__} while rendering")
