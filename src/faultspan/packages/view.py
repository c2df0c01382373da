"""What ``faultspan show`` and ``faultspan list`` print, built from a verified package.

The package passed verification, but its content is still someone else's data: every string is escaped before
it reaches a terminal, and the JSON inside span attributes is read defensively.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from faultspan.packages.format import REPLAY, RUNTIME, TRACE, Package, decode_trace, rfc3339

MESSAGE_WIDTH = 48
BOLD = "1"
RED = "31"
BOLD_RED = "1;31"


def _text(value: object) -> str:
    """Printable on a terminal: control characters (escape sequences included) are shown escaped."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _style(line: str, code: str, colour: bool) -> str:
    return f"\x1b[{code}m{line}\x1b[0m" if colour else line


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in any_value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(any_value.kvlist_value.values)
    if kind == "bytes_value":
        return any_value.bytes_value.hex()
    return getattr(any_value, kind)


def _attributes(key_values: Any) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in key_values}


def _time(unix_nano: int) -> str:
    return rfc3339(datetime.fromtimestamp(unix_nano / 1e9, timezone.utc))


def _json_attribute(attributes: dict[str, Any], key: str) -> Any:
    try:
        return json.loads(attributes[key])
    except (KeyError, TypeError, ValueError, RecursionError):
        return None


def _spans(package: Package) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    request = decode_trace(package.members[TRACE])
    resource: dict[str, Any] = {}
    spans: list[dict[str, Any]] = []
    for resource_spans in request.resource_spans:
        resource = resource or _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            spans.extend(
                {
                    "name": span.name,
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex() or None,
                    "kind": span.kind,
                    "status": span.status.code,
                    "start": _time(span.start_time_unix_nano),
                    "start_unix_nano": span.start_time_unix_nano,
                    "duration_ms": max(span.end_time_unix_nano - span.start_time_unix_nano, 0) / 1e6,
                    "attributes": _attributes(span.attributes),
                    "events": [
                        {
                            "name": event.name,
                            "time_unix_nano": event.time_unix_nano,
                            "attributes": _attributes(event.attributes),
                        }
                        for event in span.events
                    ],
                }
                for span in scope_spans.spans
            )
    return resource, spans


def _tree(spans: list[dict[str, Any]], failing: str) -> list[dict[str, Any]]:
    """The spans in tree order (parents before children, siblings by start time), each with its ``depth``.

    A flat list, walked without recursion: a hostile trace can nest spans arbitrarily deep or in a cycle.
    """
    ordered = sorted(spans, key=lambda span: span["start_unix_nano"])
    ids = {span["span_id"] for span in ordered}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in ordered:
        parent = span["parent_span_id"] if span["parent_span_id"] in ids else None
        children.setdefault(None if parent == span["span_id"] else parent, []).append(span)
    result: list[dict[str, Any]] = []
    stack = [(span, 0) for span in reversed(children.get(None, []))]
    while stack:
        span, depth = stack.pop()
        result.append(
            {
                "name": span["name"],
                "span_id": span["span_id"],
                "parent_span_id": span["parent_span_id"],
                "depth": depth,
                "start": span["start"],
                "duration_ms": span["duration_ms"],
                "status": span["status"],
                "failing": span["span_id"] == failing,
            }
        )
        stack.extend((child, depth + 1) for child in reversed(children.pop(span["span_id"], [])))
    return result


def _breadcrumbs(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every breadcrumb of the trace, once: capture copies crumbs onto the failing span with their times."""
    seen: set[tuple[Any, ...]] = set()
    crumbs = []
    for span in spans:
        for event in span["events"]:
            if event["name"] != "breadcrumb":
                continue
            attributes = event["attributes"]
            key = (
                event["time_unix_nano"],
                attributes.get("breadcrumb.category"),
                attributes.get("breadcrumb.message"),
            )
            if key in seen:
                continue
            seen.add(key)
            prefix = "breadcrumb.data."
            crumbs.append(
                {
                    "time_unix_nano": event["time_unix_nano"],
                    "time": _time(event["time_unix_nano"]),
                    "category": key[1],
                    "message": key[2],
                    "level": attributes.get("breadcrumb.level"),
                    "data": {k[len(prefix) :]: v for k, v in attributes.items() if k.startswith(prefix)},
                }
            )
    crumbs.sort(key=lambda crumb: crumb["time_unix_nano"])
    return crumbs


def _exception_events(span: dict[str, Any]) -> list[dict[str, Any]]:
    return [event for event in span["events"] if event["name"] == "exception"]


def document(package: Package) -> dict[str, Any]:
    """The machine-readable view (``show --json``)."""
    manifest = package.manifest
    resource, spans = _spans(package)
    failing_id = manifest.get("span_id")
    failing = next((span for span in spans if span["span_id"] == failing_id), None)
    if failing is None:
        failing = next(
            (span for span in spans if any(e["name"] == "exception" for e in span["events"])), None
        )
    events = _exception_events(failing) if failing else []
    attributes = events[-1]["attributes"] if events else {}
    return {
        "manifest": manifest,
        "exception": {
            "type": manifest["exception"]["type"],
            "message": manifest["exception"]["message"],
            "fingerprint": manifest["fingerprint"],
            "span": failing["name"] if failing else None,
            "frames": _json_attribute(attributes, "faultspan.frames"),
            "chain": _json_attribute(attributes, "faultspan.chain"),
            "stacktrace": attributes.get("exception.stacktrace"),
        },
        "breadcrumbs": _breadcrumbs(spans),
        "spans": _tree(spans, failing["span_id"] if failing else ""),
        "resource": resource,
        "runtime": package.members[RUNTIME],
        "replay": package.members[REPLAY],
    }


def _frame_lines(frames: Any, indent: str) -> list[str]:
    lines: list[str] = []
    for frame in frames if isinstance(frames, list) else []:
        if not isinstance(frame, dict):
            continue
        where = f'File "{frame.get("filename")}", line {frame.get("lineno")}, in {frame.get("function")}'
        lines.append(_text(f"{indent}{where}"))
        if frame.get("context_line"):
            lines.append(_text(f"{indent}    {frame['context_line']}"))
        local_values = frame.get("locals")
        if isinstance(local_values, dict):
            lines.extend(_text(f"{indent}        {name} = {value}") for name, value in local_values.items())
    return lines


def _chain_lines(node: Any, frames: Any, indent: str, depth: int = 0) -> list[str]:
    if not isinstance(node, dict) or depth > 64:
        return []
    lines = [_text(f"{indent}{node.get('type')}: {node.get('message')}")]
    lines.extend(_frame_lines(frames, indent + "  "))
    notes = node.get("notes")
    lines.extend(_text(f"{indent}  note: {note}") for note in (notes if isinstance(notes, list) else []))
    for key, label in (("cause", "caused by"), ("context", "while handling")):
        if isinstance(node.get(key), dict):
            lines.append(f"{indent}{label}:")
            lines.extend(_chain_lines(node[key], node[key].get("frames"), indent + "  ", depth + 1))
    members = node.get("exceptions")
    for number, member in enumerate(members if isinstance(members, list) else [], 1):
        lines.append(f"{indent}  group member {number}:")
        frames_of_member = member.get("frames") if isinstance(member, dict) else None
        lines.extend(_chain_lines(member, frames_of_member, indent + "    ", depth + 1))
    return lines


def _tree_lines(spans: list[dict[str, Any]], colour: bool) -> list[str]:
    lines = []
    for span in spans:
        marks = " ERROR" if span["status"] == 2 else ""
        marks += "  <- failure" if span["failing"] else ""
        indent = "  " * (span["depth"] + 1)
        line = _text(f"{indent}{span['name']}  {span['duration_ms']:.3f} ms{marks}")
        lines.append(_style(line, RED, colour) if span["failing"] else line)
    return lines


def render(view: dict[str, Any], *, colour: bool = False) -> list[str]:
    """The human view (``show``); ``colour`` adds ANSI styles, never inside the package's own text."""
    manifest, exception = view["manifest"], view["exception"]
    lines = [
        _style(_text(f"{exception['type']}: {exception['message']}"), BOLD_RED, colour),
        _text(
            f"service {manifest['service']}  created {manifest['created']}  "
            f"fingerprint {manifest['fingerprint']}  trace {manifest['trace_id']}"
        ),
        "",
        _style("Exception", BOLD, colour),
    ]
    chain = exception["chain"]
    if not isinstance(chain, dict):
        chain = {"type": exception["type"], "message": exception["message"]}
    lines.extend(_chain_lines(chain, exception["frames"], "  "))
    lines += ["", _style("Breadcrumbs", BOLD, colour)]
    for crumb in view["breadcrumbs"]:
        data = " ".join(f"{key}={value}" for key, value in crumb["data"].items())
        lines.append(
            _text(f"  {crumb['time']}  {crumb['level']!s:<7} {crumb['category']}: {crumb['message']} {data}")
        )
    if not view["breadcrumbs"]:
        lines.append("  (none)")
    lines += ["", _style("Spans", BOLD, colour)]
    lines.extend(_tree_lines(view["spans"], colour))
    return lines


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def table(rows: Sequence[tuple[str, dict[str, Any]]], *, colour: bool = False) -> list[str]:
    """``list``: one row per package."""
    header = ("TIME", "SERVICE", "EXCEPTION", "MESSAGE", "FINGERPRINT", "FILE")
    cells = [header] + [
        (
            manifest["created"],
            manifest["service"],
            manifest["exception"]["type"],
            _cut(manifest["exception"]["message"], MESSAGE_WIDTH),
            manifest["fingerprint"][:12],
            name,
        )
        for name, manifest in rows
    ]
    cells = [tuple(_text(cell) for cell in row) for row in cells]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header) - 1)] + [0]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    return [_style(lines[0], BOLD, colour), *lines[1:]]
