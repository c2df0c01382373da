"""``faultspan compare A B``: whether two packages hold the same failure, and what differs between them.

Same failure means the same fingerprint. ``compare --json`` (``compare``) has these keys:

- ``same_failure`` (bool); ``a`` and ``b``: ``file``, ``fingerprint``, ``created``, ``service``, ``exception``
- ``differences``: every key always present, empty when equal; a changed value is ``[value in A, value in B]``
  - ``exception``: ``type`` and/or ``message`` when they differ
  - ``service``: a pair, or null
  - ``frames``: the in-app call path of the exception (every frame when none is in-app), oldest first, as
    ``{"change", "a", "b"}`` where ``a``/``b`` are ``{"module", "function", "filename", "lineno"}`` or null
    and ``change`` is ``same``, ``line`` (same function, other line), ``moved`` (the function is in both
    paths at another position), ``added`` (only in B) or ``removed`` (only in A)
  - ``locals``: per frame present in both whose variables differ: ``frame`` (``module:function``),
    ``added`` and ``removed`` (name -> value), ``changed`` (name -> pair); reprs that differ only in a memory
    address (``<Client object at 0x7f...>``) count as unchanged
  - ``runtime``: ``facts`` (``python.version``, ``python.implementation``, ``platform.system``,
    ``platform.release``, ``platform.machine``, ``entry_point`` -> pair) and ``distributions``
    (``added``, ``removed``: name -> version; ``changed``: name -> pair)
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from pathlib import Path
from typing import Any

from faultspan.packages import view
from faultspan.packages.format import Package

_FACTS = (
    ("python", "version"),
    ("python", "implementation"),
    ("platform", "system"),
    ("platform", "release"),
    ("platform", "machine"),
    ("entry_point",),
)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
GREEN = "32"
RED = "31"


def _call_path(frames: Any) -> list[dict[str, Any]]:
    valid = [frame for frame in frames if isinstance(frame, dict)] if isinstance(frames, list) else []
    in_app = [frame for frame in valid if frame.get("in_app") is True]
    return [
        {
            "module": str(frame.get("module", "")),
            "function": str(frame.get("function", "")),
            "filename": str(frame.get("filename", "")),
            "lineno": frame.get("lineno"),
            "locals": frame.get("locals") if isinstance(frame.get("locals"), dict) else None,
        }
        for frame in in_app or valid
    ]


def _key(frame: dict[str, Any]) -> tuple[str, str]:
    return frame["module"], frame["function"]


def _public(frame: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if frame is None else {key: value for key, value in frame.items() if key != "locals"}


def _frame_diff(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[tuple[str, Any, Any]]:
    matcher = difflib.SequenceMatcher(
        a=[_key(frame) for frame in a], b=[_key(frame) for frame in b], autojunk=False
    )
    rows: list[tuple[str, Any, Any]] = []
    for tag, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        if tag == "equal":
            pairs = zip(a[a_start:a_end], b[b_start:b_end], strict=True)
            rows += [("same" if old["lineno"] == new["lineno"] else "line", old, new) for old, new in pairs]
        else:
            rows += [("removed", frame, None) for frame in a[a_start:a_end]]
            rows += [("added", None, frame) for frame in b[b_start:b_end]]
    # A function on both paths at different positions: one "moved" row where B has it.
    removed = {_key(old): old for change, old, _ in rows if change == "removed"}
    to_drop = Counter(_key(old) for change, old, _ in rows if change == "removed") & Counter(
        _key(new) for change, _, new in rows if change == "added"
    )
    to_move = to_drop.copy()
    result: list[tuple[str, Any, Any]] = []
    for change, old, new in rows:
        if change == "removed" and to_drop[_key(old)] > 0:
            to_drop[_key(old)] -= 1
        elif change == "added" and to_move[_key(new)] > 0:
            to_move[_key(new)] -= 1
            result.append(("moved", removed[_key(new)], new))
        else:
            result.append((change, old, new))
    return result


def _same_object(a: Any, b: Any) -> bool:
    """Equal, or reprs that differ only in memory addresses (``<Tracer object at 0x7f...>``)."""
    return a == b or (
        isinstance(a, str) and isinstance(b, str) and _ADDRESS.sub("", a) == _ADDRESS.sub("", b)
    )


def _mapping_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {
        "added": {name: value for name, value in b.items() if name not in a},
        "removed": {name: value for name, value in a.items() if name not in b},
        "changed": {
            name: [a[name], b[name]] for name in a if name in b and not _same_object(a[name], b[name])
        },
    }


def _locals_diff(rows: list[tuple[str, Any, Any]]) -> list[dict[str, Any]]:
    found = []
    for _, old, new in rows:
        if old is None or new is None or (old["locals"] is None and new["locals"] is None):
            continue
        difference = _mapping_diff(old["locals"] or {}, new["locals"] or {})
        if any(difference.values()):
            found.append({"frame": f"{new['module']}:{new['function']}", **difference})
    return found


def _fact(runtime: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        runtime = runtime.get(key) if isinstance(runtime, dict) else None
    return runtime


def _runtime_diff(a: Any, b: Any) -> dict[str, Any]:
    facts = {
        ".".join(path): [_fact(a, path), _fact(b, path)]
        for path in _FACTS
        if _fact(a, path) != _fact(b, path)
    }
    a_dists, b_dists = _fact(a, ("distributions",)), _fact(b, ("distributions",))
    return {
        "facts": facts,
        "distributions": _mapping_diff(
            a_dists if isinstance(a_dists, dict) else {}, b_dists if isinstance(b_dists, dict) else {}
        ),
    }


def _side(path: Path, package: Package) -> dict[str, Any]:
    manifest = package.manifest
    return {
        "file": str(path),
        "fingerprint": manifest["fingerprint"],
        "created": manifest["created"],
        "service": manifest["service"],
        "exception": manifest["exception"],
    }


def compare(a: tuple[Path, Package], b: tuple[Path, Package]) -> dict[str, Any]:
    """The ``compare --json`` document for packages A and B."""
    first, second = view.document(a[1]), view.document(b[1])
    side_a, side_b = _side(*a), _side(*b)
    exception = {
        key: [side_a["exception"][key], side_b["exception"][key]]
        for key in ("type", "message")
        if side_a["exception"][key] != side_b["exception"][key]
    }
    rows = _frame_diff(_call_path(first["exception"]["frames"]), _call_path(second["exception"]["frames"]))
    return {
        "same_failure": side_a["fingerprint"] == side_b["fingerprint"],
        "a": side_a,
        "b": side_b,
        "differences": {
            "exception": exception,
            "service": None
            if side_a["service"] == side_b["service"]
            else [side_a["service"], side_b["service"]],
            "frames": [{"change": change, "a": _public(old), "b": _public(new)} for change, old, new in rows],
            "locals": _locals_diff(rows),
            "runtime": _runtime_diff(first["runtime"], second["runtime"]),
        },
    }


def _where(frame: dict[str, Any]) -> str:
    return f"{frame['module']}:{frame['function']}"


def _frame_line(row: dict[str, Any]) -> tuple[str, str | None]:
    change, old, new = row["change"], row["a"], row["b"]
    if change == "same":
        return f"    {_where(new)}  line {new['lineno']}", None
    if change == "line":
        return f"  ~ {_where(new)}  line {old['lineno']} -> {new['lineno']}", None
    if change == "moved":
        return f"  ~ {_where(new)}  moved in the call path, line {old['lineno']} -> {new['lineno']}", None
    if change == "added":
        return f"  + {_where(new)}  line {new['lineno']}", GREEN
    return f"  - {_where(old)}  line {old['lineno']}", RED


def _pairs(indent: str, difference: dict[str, Any], separator: str) -> list[tuple[str, str | None]]:
    lines: list[tuple[str, str | None]] = []
    lines += [(f"{indent}+ {name}{separator}{value}", GREEN) for name, value in difference["added"].items()]
    lines += [(f"{indent}- {name}{separator}{value}", RED) for name, value in difference["removed"].items()]
    lines += [
        (f"{indent}~ {name}{separator}{old} -> {new}", None)
        for name, (old, new) in difference["changed"].items()
    ]
    return lines


def render(document: dict[str, Any], *, width: int | None = None, colour: bool = False) -> list[str]:
    """The human view of ``compare``: only what differs, plus the call path for orientation."""
    a, b, differences = document["a"], document["b"], document["differences"]
    if document["same_failure"]:
        verdict = (f"same failure: fingerprint {a['fingerprint']}", GREEN)
    else:
        verdict = (f"different failures: fingerprint {a['fingerprint']} vs {b['fingerprint']}", RED)
    lines: list[tuple[str, str | None]] = [verdict]
    lines += [
        (f"  {label}  {Path(side['file']).name}  created {side['created']}  service {side['service']}", None)
        for label, side in (("A", a), ("B", b))
    ]
    lines += [("", None), ("Exception", view.BOLD)]
    for key in ("type", "message"):
        if key in differences["exception"]:
            old, new = differences["exception"][key]
            lines += [(f"  {key}", None), (f"    - {old}", RED), (f"    + {new}", GREEN)]
    if not differences["exception"]:
        lines.append(
            (f"  same type and message: {a['exception']['type']}: {a['exception']['message']}", None)
        )
    if differences["service"]:
        lines += [("", None), ("Service", view.BOLD), ("  - {}".format(a["service"]), RED)]
        lines.append(("  + {}".format(b["service"]), GREEN))
    lines += [("", None), ("Frames (in-app call path, oldest first)", view.BOLD)]
    lines += [_frame_line(row) for row in differences["frames"]] or [("  (no frames)", None)]
    lines += [("", None), ("Locals", view.BOLD)]
    for frame in differences["locals"]:
        lines += [(f"  {frame['frame']}", None), *_pairs("    ", frame, " = ")]
    if not differences["locals"]:
        lines.append(("  no differences in the frames both packages have", None))
    runtime = differences["runtime"]
    lines += [("", None), ("Runtime", view.BOLD)]
    lines += [(f"  ~ {name}  {old} -> {new}", None) for name, (old, new) in runtime["facts"].items()]
    distributions = _pairs("  ", runtime["distributions"], " ")
    lines += distributions
    if not runtime["facts"] and not distributions:
        lines.append(("  no differences", None))
    return [view.style(line, code, colour) for text, code in lines for line in view.fitted(text, width)]
