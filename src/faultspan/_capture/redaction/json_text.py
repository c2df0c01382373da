"""Scrubbed JSON written back into the text it was parsed from, so that only what was masked changes.

Re-serialising the scrubbed document would rewrite the rest of it too: whitespace and indentation, numbers
(``1.50`` -> ``1.5``), escapes (``\\u00e9`` -> ``é``). Instead the original text is walked beside the parsed
document and its scrubbed copy (which shares every unchanged node with the original), and only the values
that differ are replaced, each by its own JSON encoding; a renamed key is replaced the same way.
"""

from __future__ import annotations

import json
import re

_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
Edit = tuple[int, int, str]


class _Mismatch(Exception):
    """The text does not walk as the parsed document (duplicate keys): re-serialise instead."""


def spliced(text: str, data: object, scrubbed: object) -> str:
    """``text``, the JSON that parsed to ``data``, with the values that ``scrubbed`` changed replaced."""
    edits: list[Edit] = []
    try:
        _walk(text, _SPACE.match(text, 0).end(), data, scrubbed, edits)  # type: ignore[union-attr]
    except (_Mismatch, ValueError, IndexError, RecursionError):
        return _encoded(scrubbed)
    pieces: list[str] = []
    done = 0
    for start, end, replacement in edits:
        pieces += (text[done:start], replacement)
        done = end
    pieces.append(text[done:])
    return "".join(pieces)


def _encoded(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _walk(text: str, at: int, old: object, new: object, edits: list[Edit]) -> int:
    """Where the value at ``at`` (parsed as ``old``, scrubbed to ``new``) ends; its edits added in order."""
    if new is old:
        return _DECODER.raw_decode(text, at)[1]
    opener = text[at]
    if opener == "{" and type(old) is dict and type(new) is dict and len(old) == len(new):
        return _members(text, at + 1, list(old.items()), list(new.items()), edits)
    if opener == "[" and type(old) is list and isinstance(new, list | tuple) and len(old) == len(new):
        return _items(text, at + 1, old, list(new), edits)
    end = _DECODER.raw_decode(text, at)[1]
    edits.append((at, end, _encoded(new)))
    return end


def _members(
    text: str, at: int, old: list[tuple[str, object]], new: list[tuple[object, object]], edits: list[Edit]
) -> int:
    for index, ((key, old_value), (name, new_value)) in enumerate(zip(old, new, strict=True)):
        at = _after(text, at, "," if index else "")
        if text[at] != '"':
            raise _Mismatch
        written, end = _DECODER.raw_decode(text, at)
        if written != key:
            raise _Mismatch  # a key written twice: the document holds its last value at its first place
        if name != key:
            edits.append((at, end, _encoded(name)))
        at = _walk(text, _after(text, end, ":"), old_value, new_value, edits)
    return _after(text, at, "}")


def _items(text: str, at: int, old: list[object], new: list[object], edits: list[Edit]) -> int:
    for index, (old_item, new_item) in enumerate(zip(old, new, strict=True)):
        at = _walk(text, _after(text, at, "," if index else ""), old_item, new_item, edits)
    return _after(text, at, "]")


def _after(text: str, at: int, punctuation: str) -> int:
    """Past the whitespace at ``at``, ``punctuation`` (when given) and the whitespace after it."""
    at = _SPACE.match(text, at).end()  # type: ignore[union-attr]
    if punctuation:
        if not text.startswith(punctuation, at):
            raise _Mismatch
        at = _SPACE.match(text, at + 1).end()  # type: ignore[union-attr]
    return at
