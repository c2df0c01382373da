"""What ``faultspan show`` prints, and the tables of ``list`` and ``groups``, built from verified packages.

The package passed verification, but its content is still someone else's data: every string is escaped before
it reaches a terminal, and the JSON inside span attributes is read defensively.

Human output on a terminal fits its width (``COLUMNS`` when set): values that do not fit are cut with
``...``. Written to a pipe or a file, nothing is cut. A line break inside a value starts a new, indented line
(a table cell keeps its lines on one). ``show`` hides library frames (not ``in_app``) between in-app ones and
folds a frame repeated in a row (recursion) into a count; ``--all-frames`` shows every captured frame. Where
``OTEL_PYTHON_FAULTSPAN_MAX_FRAMES`` dropped frames, the capture kept the first quarter and the rest from the
end, so the gap sits after ``len(frames) // 4`` frames: the marker is shown there. ``show --json``
(``document``) has these keys, stable within a format version (new keys may be added):

- ``manifest``: the manifest as written (optional ``occurrences``, ``last_occurrence``, ``truncated``)
- ``occurrences`` (int, 1 unless the manifest counts more), ``last_occurrence`` (RFC 3339 or null),
  ``truncated`` (bool): the manifest's optional fields with their defaults
- ``exception``: ``type``, ``message``, ``fingerprint``, ``span`` (the failing span's name), ``frames``
  (``faultspan.frames``: oldest first, with ``pre_context``/``post_context``/``locals`` when captured),
  ``chain`` (``faultspan.chain``: ``cause``, ``context``, ``notes``, ``exceptions``), ``stacktrace``,
  ``grouping`` (``faultspan.grouping``: what formed the fingerprint, see docs/fingerprints.md; null if absent)
- ``failure_time``: when the failing span recorded the exception (RFC 3339)
- ``request``: the HTTP request of the failure, or null: from the nearest server span around the failing span
  with an HTTP method, read from the stable semantic-convention attributes or their older names:
  ``method``, ``url``, ``route``, ``status``, ``client``, ``user``, ``user_agent``, ``headers`` (name ->
  value), ``body``, ``span`` (its name); null where the span does not say
- ``breadcrumbs``: in time order, each ``time``, ``time_unix_nano``, ``level``, ``category``, ``message``,
  ``data``
- ``spans``: the span tree flattened depth first (siblings by start time), each ``name``, ``span_id``,
  ``parent_span_id``, ``depth``, ``kind`` (OTLP enum), ``start``, ``offset_ms`` (from the earliest span),
  ``duration_ms``, ``status`` (OTLP code: 2 is ERROR), ``failing``, ``attributes``
- ``resource`` (attributes), ``runtime`` (``runtime.json``), ``replay`` (``replay.json``)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Collection, Sequence
from datetime import datetime, timezone
from typing import Any

from faultspan.packages.catalog import failure_time, occurrences
from faultspan.packages.format import REPLAY, RUNTIME, Package, rfc3339

MIN_WIDTH = 40
MIN_CELL = 16
MAX_INDENT = 16
ELLIPSIS = "..."
BOLD = "1"
RED = "31"
BOLD_RED = "1;31"


def printable(value: object) -> str:
    """Printable on a terminal: control characters (escape sequences included) are shown escaped."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def use_colour() -> bool:
    """ANSI colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def style(line: str, code: str | None, colour: bool) -> str:
    return f"\x1b[{code}m{line}\x1b[0m" if colour and code else line


def attribute_value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [attribute_value(item) for item in any_value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(any_value.kvlist_value.values)
    if kind == "bytes_value":
        return any_value.bytes_value.hex()
    return getattr(any_value, kind)


def _attributes(key_values: Any) -> dict[str, Any]:
    return {item.key: attribute_value(item.value) for item in key_values}


def _time(unix_nano: int) -> str:
    return rfc3339(datetime.fromtimestamp(unix_nano / 1e9, timezone.utc))


def _json_attribute(attributes: dict[str, Any], key: str) -> Any:
    try:
        return json.loads(attributes[key])
    except (KeyError, TypeError, ValueError, RecursionError):
        return None


def _spans(package: Package) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    resource: dict[str, Any] = {}
    spans: list[dict[str, Any]] = []
    for resource_spans in package.request.resource_spans:
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
    origin = ordered[0]["start_unix_nano"] if ordered else 0
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
                "kind": span["kind"],
                "start": span["start"],
                "offset_ms": (span["start_unix_nano"] - origin) / 1e6,
                "duration_ms": span["duration_ms"],
                "status": span["status"],
                "failing": span["span_id"] == failing,
                "attributes": span["attributes"],
            }
        )
        stack.extend((child, depth + 1) for child in reversed(children.pop(span["span_id"], [])))
    return result


def _log_records(package: Package) -> list[dict[str, Any]]:
    """The records of ``logs.json``, oldest first."""
    records: list[dict[str, Any]] = []
    for resource_logs in package.logs.resource_logs if package.logs is not None else ():
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                moment = record.time_unix_nano or record.observed_time_unix_nano
                body = attribute_value(record.body)
                records.append(
                    {
                        "time_unix_nano": moment,
                        "time": _time(moment),
                        "logger": scope_logs.scope.name,
                        "severity": record.severity_text or None,
                        "event_name": record.event_name or None,
                        "span_id": record.span_id.hex() or None,
                        "body": body if isinstance(body, str) or body is None else json.dumps(body),
                        "attributes": _attributes(record.attributes),
                    }
                )
    records.sort(key=lambda record: record["time_unix_nano"])
    return records


_SAME_CRUMB_NANOS = 1_000_000_000


def _log_crumbs(logs: list[dict[str, Any]], crumbs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The log records as timeline entries (a ``breadcrumb`` record as the crumb it is), except exception
    records and a line that is also a breadcrumb event (the same logger and message within a second)."""
    known: dict[tuple[Any, Any], list[int]] = {}
    for crumb in crumbs:
        known.setdefault((crumb["category"], crumb["message"]), []).append(crumb["time_unix_nano"])
    entries = []
    for record in logs:
        attributes = record["attributes"]
        if record["event_name"] == "exception":
            continue
        if record["event_name"] == "breadcrumb":
            category = attributes.get("breadcrumb.category")
            level = attributes.get("breadcrumb.level")
        else:
            category, level = record["logger"], (record["severity"] or "").lower() or None
        message = record["body"]
        times = known.get((category, message), [])
        if any(abs(moment - record["time_unix_nano"]) < _SAME_CRUMB_NANOS for moment in times):
            continue
        prefix = "breadcrumb.data."
        entries.append(
            {
                "time_unix_nano": record["time_unix_nano"],
                "time": record["time"],
                "category": category,
                "message": message,
                "level": level,
                "data": {k[len(prefix) :]: v for k, v in attributes.items() if k.startswith(prefix)},
            }
        )
    return entries


def _breadcrumbs(spans: list[dict[str, Any]], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every breadcrumb of the trace, once: capture copies crumbs onto the failing span with their times;
    the trace's log records join them (docs/logs.md)."""
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
    crumbs.extend(_log_crumbs(logs, crumbs))
    crumbs.sort(key=lambda crumb: crumb["time_unix_nano"])
    return crumbs


SERVER_KIND = 2  # OTLP SPAN_KIND_SERVER
HEADER_PREFIX = "http.request.header."
# Each field of the request section: the stable semantic-convention attribute first, then older names.
REQUEST_ATTRIBUTES = {
    "method": ("http.request.method", "http.method"),
    "route": ("http.route",),
    "status": ("http.response.status_code", "http.status_code"),
    "client": ("client.address", "http.client_ip", "net.sock.peer.addr", "net.peer.ip"),
    "user": ("user.id", "enduser.id"),
    "user_agent": ("user_agent.original", "http.user_agent"),
    "body": ("http.request.body",),
}
_URL_PARTS = {
    "full": ("url.full", "http.url"),
    "scheme": ("url.scheme", "http.scheme"),
    "host": ("server.address", "http.host", "net.host.name", "http.server_name"),
    "port": ("server.port", "net.host.port"),
    "path": ("url.path",),
    "query": ("url.query",),
    "target": ("http.target",),
}


def _first(attributes: dict[str, Any], names: Sequence[str]) -> Any:
    return next((attributes[name] for name in names if attributes.get(name) not in (None, "")), None)


def _url(attributes: dict[str, Any]) -> str | None:
    """``url.full``, else put together from scheme, host, port and path or target (old or new names)."""
    part = {key: _first(attributes, names) for key, names in _URL_PARTS.items()}
    if part["full"] is not None:
        return str(part["full"])
    target = part["target"]
    if part["path"] is not None:
        target = str(part["path"]) + (f"?{part['query']}" if part["query"] else "")
    if target is None:
        return None
    host = "" if part["host"] is None else str(part["host"])
    if host and part["port"] is not None and ":" not in host:
        host += f":{part['port']}"
    scheme = f"{part['scheme']}://" if part["scheme"] is not None and host else ""
    return f"{scheme}{host}{target}"


def _text_value(value: Any) -> str:
    return ", ".join(str(item) for item in value) if isinstance(value, list) else str(value)


def _serves(span: dict[str, Any]) -> bool:
    return (
        span["kind"] == SERVER_KIND and _first(span["attributes"], REQUEST_ATTRIBUTES["method"]) is not None
    )


def _request_span(spans: list[dict[str, Any]], failing_id: str | None) -> dict[str, Any] | None:
    """The nearest server span with an HTTP method from the failing span outwards, else the first one."""
    by_id = {span["span_id"]: span for span in spans}
    seen: set[str] = set()
    span = by_id.get(failing_id or "")
    while span is not None and span["span_id"] not in seen:
        if _serves(span):
            return span
        seen.add(span["span_id"])
        span = by_id.get(span["parent_span_id"] or "")
    return next((span for span in spans if _serves(span)), None)


def _request(spans: list[dict[str, Any]], failing_id: str | None) -> dict[str, Any] | None:
    chosen = _request_span(spans, failing_id)
    if chosen is None:
        return None
    attributes = chosen["attributes"]
    fields = {key: _first(attributes, names) for key, names in REQUEST_ATTRIBUTES.items()}
    return {
        "span": chosen["name"],
        **{key: None if value is None else _text_value(value) for key, value in fields.items()},
        "url": _url(attributes),
        "headers": {
            name[len(HEADER_PREFIX) :]: _text_value(value)
            for name, value in sorted(attributes.items())
            if name.startswith(HEADER_PREFIX)
        },
    }


def _exception_record(logs: list[dict[str, Any]], span_id: str | None) -> dict[str, Any] | None:
    """The failing span's last ``exception`` log record (else the trace's): the failure under
    ``OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN=logs``, where the span has no exception event."""
    records = [record for record in logs if record["event_name"] == "exception"]
    own = [record for record in records if record["span_id"] == span_id]
    chosen = own or records
    return chosen[-1] if chosen else None


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
    logs = _log_records(package)
    events = _exception_events(failing) if failing else []
    logged = _exception_record(logs, failing["span_id"] if failing else None)
    attributes = events[-1]["attributes"] if events else logged["attributes"] if logged else {}
    last_occurrence = manifest.get("last_occurrence")
    return {
        "manifest": manifest,
        "occurrences": occurrences(manifest),
        "last_occurrence": last_occurrence if isinstance(last_occurrence, str) else None,
        "truncated": manifest.get("truncated") is True,
        "exception": {
            "type": manifest["exception"]["type"],
            "message": manifest["exception"]["message"],
            "fingerprint": manifest["fingerprint"],
            "span": failing["name"] if failing else None,
            "frames": _json_attribute(attributes, "faultspan.frames"),
            "chain": _json_attribute(attributes, "faultspan.chain"),
            "stacktrace": attributes.get("exception.stacktrace"),
            "grouping": _json_attribute(attributes, "faultspan.grouping"),
        },
        "failure_time": rfc3339(failure_time(package)),
        "request": _request(spans, failing["span_id"] if failing else None),
        "breadcrumbs": _breadcrumbs(spans, logs),
        "logs": logs,
        "spans": _tree(spans, failing["span_id"] if failing else ""),
        "resource": resource,
        "runtime": package.members[RUNTIME],
        "replay": package.members[REPLAY],
    }


def terminal_width() -> int | None:
    """The columns of the terminal (``COLUMNS`` first); None, cut nothing, for a pipe or a file.

    ``COLUMNS`` alone does not count: GNU readline exports it into the environment of every child of a
    process that loaded it, pipes included.
    """
    return max(shutil.get_terminal_size().columns, MIN_WIDTH) if sys.stdout.isatty() else None


def cut(text: str, width: int | None) -> str:
    if width is None or len(text) <= width:
        return text
    return text[: max(width - len(ELLIPSIS), 0)] + ELLIPSIS


def _cut_left(text: str, width: int) -> str:
    """For dotted names, whose end (the class) says more than their start."""
    return text if len(text) <= width else ELLIPSIS + text[len(text) - width + len(ELLIPSIS) :]


def duration(milliseconds: float) -> str:
    if milliseconds >= 1000:
        return f"{milliseconds / 1000:.2f} s"
    return f"{milliseconds:.1f} ms" if milliseconds >= 10 else f"{milliseconds:.3f} ms"


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _field(mapping: Any, *keys: str) -> str:
    """A nested string of an untrusted document, or empty."""
    for key in keys:
        mapping = mapping.get(key) if isinstance(mapping, dict) else None
    return mapping if isinstance(mapping, str) else ""


def _source_lines(frame: dict[str, Any], indent: str) -> list[str]:
    line, lineno = frame.get("context_line"), frame.get("lineno")
    before, after = _strings(frame.get("pre_context")), _strings(frame.get("post_context"))
    if not isinstance(lineno, int) or isinstance(lineno, bool) or not (before or after):
        return [f"{indent}    {line}"] if line else []
    digits = len(str(lineno + len(after)))
    lines = [
        f"{indent}    {number:>{digits}} | {text}" for number, text in enumerate(before, lineno - len(before))
    ]
    lines.append(f"{indent}  > {lineno:>{digits}} | {line or ''}")
    lines.extend(f"{indent}    {number:>{digits}} | {text}" for number, text in enumerate(after, lineno + 1))
    return lines


def omission(node: dict[str, Any], frames: Sequence[Any]) -> tuple[int, int] | None:
    """How many frames the capture left out of ``frames``, and before which index (see the module doc)."""
    omitted = node.get("frames_omitted")
    if not isinstance(omitted, int) or isinstance(omitted, bool) or omitted <= 0:
        return None
    return omitted, len(frames) // 4


def _same_place(one: dict[str, Any], other: dict[str, Any]) -> bool:
    return all(one.get(key) == other.get(key) for key in ("filename", "lineno", "function"))


def _count(rows: list[tuple[str, Any]], kind: str) -> None:
    if rows and rows[-1][0] == kind:
        rows[-1] = (kind, rows[-1][1] + 1)
    else:
        rows.append((kind, 1))


def shown_frames(node: dict[str, Any], frames: Any, all_frames: bool) -> list[tuple[str, Any]]:
    """What ``show`` prints of a frame list: ``("frame", frame)``, ``("repeated", n)`` after a frame seen
    ``n`` more times in a row, ``("library", n)`` for hidden library frames, ``("omitted", n)`` at the gap.

    Library frames are hidden only when some frame is in-app; the innermost frame (where it raised) is
    always shown.
    """
    frames = [frame for frame in frames if isinstance(frame, dict)] if isinstance(frames, list) else []
    gap = omission(node, frames)
    hide = not all_frames and any(frame.get("in_app") is True for frame in frames)
    rows: list[tuple[str, Any]] = []
    last: dict[str, Any] | None = None
    for index, frame in enumerate(frames):
        if gap is not None and index == gap[1]:
            rows.append(("omitted", gap[0]))
            last = None
        innermost = index == len(frames) - 1
        if hide and frame.get("in_app") is not True and not innermost:
            _count(rows, "library")
            last = None
        elif not all_frames and not innermost and last is not None and _same_place(frame, last):
            _count(rows, "repeated")
        else:
            rows.append(("frame", frame))
            last = frame
    if gap is not None and gap[1] >= len(frames):
        rows.append(("omitted", gap[0]))
    return rows


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _frame_lines(node: dict[str, Any], frames: Any, indent: str, all_frames: bool) -> list[str]:
    lines: list[str] = []
    for kind, item in shown_frames(node, frames, all_frames):
        if kind == "omitted":
            lines.append(f"{indent}({_plural(item, 'frame')} omitted here: OTEL_PYTHON_FAULTSPAN_MAX_FRAMES)")
        elif kind == "library":
            lines.append(f"{indent}({_plural(item, 'library frame')} hidden: --all-frames shows them)")
        elif kind == "repeated":
            lines.append(f"{indent}    [the frame above repeated {_plural(item, 'more time')}]")
        else:
            where = f'File "{item.get("filename")}", line {item.get("lineno")}, in {item.get("function")}'
            lines.append(f"{indent}{where}")
            lines.extend(_source_lines(item, indent))
            local_values = item.get("locals")
            if isinstance(local_values, dict):
                lines.extend(f"{indent}      {name} = {value}" for name, value in local_values.items())
    return lines


def _chain_lines(node: Any, frames: Any, indent: str, all_frames: bool, depth: int = 0) -> list[str]:
    if not isinstance(node, dict) or depth > 64:
        return []
    lines = [f"{indent}{node.get('type')}: {node.get('message')}"]
    lines.extend(_frame_lines(node, frames, indent + "  ", all_frames))
    lines.extend(f"{indent}  note: {note}" for note in _strings(node.get("notes")))
    members = node.get("exceptions")
    for number, member in enumerate(members if isinstance(members, list) else [], 1):
        lines.append(f"{indent}  group member {number}:")
        frames_of_member = member.get("frames") if isinstance(member, dict) else None
        lines.extend(_chain_lines(member, frames_of_member, indent + "    ", all_frames, depth + 1))
    for key, label in (("cause", "caused by"), ("context", "while handling")):
        if isinstance(node.get(key), dict):
            lines.append(f"{indent}{label}:")
            lines.extend(
                _chain_lines(node[key], node[key].get("frames"), indent + "  ", all_frames, depth + 1)
            )
    if node.get("truncated") is True:
        lines.append(f"{indent}  (more of the chain was not captured)")
    if node.get("cycle") is True:
        lines.append(f"{indent}  (the chain loops back to an exception shown above)")
    return lines


def _tree_lines(spans: list[dict[str, Any]], width: int | None, colour: bool) -> list[str]:
    """Each span's name is what gets cut, so durations and marks stay visible."""
    lines = []
    for span in spans:
        marks = f"  {duration(span['duration_ms'])}  +{duration(span['offset_ms'])}"
        marks += "  ERROR" if span["status"] == 2 else ""
        marks += "  <- failure" if span["failing"] else ""
        depth = span["depth"]
        indent = "  " * (min(depth, MAX_INDENT) + 1)
        name = printable(span["name"] if depth <= MAX_INDENT else f"[depth {depth}] {span['name']}")
        room = None if width is None else max(width - len(indent) - len(marks), MIN_CELL)
        line = cut(f"{indent}{cut(name, room)}{marks}", width)
        lines.append(style(line, RED, colour) if span["failing"] else line)
    return lines


def _summary_lines(view: dict[str, Any]) -> list[str]:
    manifest, runtime = view["manifest"], view["runtime"]
    lines = [
        f"service {manifest['service']}  failed {view['failure_time']}  span {view['exception']['span']}",
        f"fingerprint {manifest['fingerprint']}  trace {manifest['trace_id']}",
    ]
    python = f"{_field(runtime, 'python', 'version')} {_field(runtime, 'python', 'implementation')}".strip()
    system = " ".join(_field(runtime, "platform", key) for key in ("system", "release", "machine")).strip()
    if python or system:
        lines.append(f"python {python}  {system}" if python else system)
    if _field(runtime, "entry_point"):
        lines.append(f"entry point {_field(runtime, 'entry_point')}")
    if view["occurrences"] > 1:
        last = f", the last at {view['last_occurrence']}" if view["last_occurrence"] else ""
        lines.append(f"seen {view['occurrences']} times{last}")
    if view["truncated"]:
        lines.append("truncated: parts of this failure were left out to respect the package size cap")
    return lines


def _request_lines(request: dict[str, Any]) -> list[str]:
    first = " ".join(str(request[key]) for key in ("method", "url") if request[key] is not None)
    lines = [f"  {first}" + (f"  -> {request['status']}" if request["status"] is not None else "")]
    facts = [f"{key} {request[key]}" for key in ("route", "client", "user") if request[key] is not None]
    if facts:
        lines.append("  " + "  ".join(facts))
    lines.extend(f"  {name}: {value}" for name, value in request["headers"].items())
    if request["user_agent"] is not None and "user-agent" not in request["headers"]:
        lines.append(f"  user-agent: {request['user_agent']}")
    if request["body"] is not None:
        lines.append(f"  body: {request['body']}")
    return lines


def fitted(line: str, width: int | None) -> list[str]:
    """One line of output as printed: its line breaks start new lines (indented two more than the first),
    control characters are escaped and each line is cut to ``width``."""
    parts = line.splitlines() or [""]
    indent = " " * (len(line) - len(line.lstrip(" ")) + 2)
    return [
        cut(printable(part if number == 0 else indent + part), width) for number, part in enumerate(parts)
    ]


def _grouping_lines(info: Any, indent: str, depth: int = 0) -> list[str]:
    """Sentry-style grouping info: the parts each key was made of (type, template, crash site, path)."""
    if not isinstance(info, dict):
        return [f"{indent}(not recorded)"] if depth == 0 else []
    lines = []
    if depth == 0:
        version = _field(info, "version")
        lines.append(f"{indent}{version}: fingerprint = type + template + crash site + causes")
    lines.append(f"{indent}type      {_field(info, 'type')}")
    lines.append(f"{indent}template  {_field(info, 'template')}")
    site = info.get("crash_site")
    if isinstance(site, list):
        lines.append(f"{indent}crash at  {' : '.join(_strings(site))}")
    path = info.get("path")
    if isinstance(path, list):
        lines.append(f"{indent}path")
        lines.extend(f"{indent}  {' : '.join(_strings(frame))}" for frame in path if isinstance(frame, list))
    children = info.get("children")
    if isinstance(children, list) and depth < MAX_INDENT // 2:
        for child in children:
            lines.append(f"{indent}caused by")
            lines.extend(_grouping_lines(child, indent + "  ", depth + 1))
    return lines


def render(
    view: dict[str, Any], *, width: int | None = None, colour: bool = False, all_frames: bool = False
) -> list[str]:
    """The human view (``show``); ``colour`` adds ANSI styles, never inside the package's own text."""
    exception = view["exception"]

    def fit(lines: list[str]) -> list[str]:
        return [part for line in lines for part in fitted(line, width)]

    chain = exception["chain"]
    if not isinstance(chain, dict):
        chain = {"type": exception["type"], "message": exception["message"]}
    crumbs = [
        f"  {crumb['time'][11:23]}  {crumb['level'] or '':<7}  {crumb['category']}: {crumb['message']}"
        + "".join(f"  {key}={value}" for key, value in crumb["data"].items())
        for crumb in view["breadcrumbs"]
    ]
    request = view["request"]
    return [
        *(style(line, BOLD_RED, colour) for line in fit([f"{exception['type']}: {exception['message']}"])),
        *fit(_summary_lines(view)),
        "",
        style("Grouping", BOLD, colour),
        *fit(_grouping_lines(exception["grouping"], "  ")),
        *(["", style("Request", BOLD, colour), *fit(_request_lines(request))] if request else []),
        "",
        style("Exception", BOLD, colour),
        *fit(_chain_lines(chain, exception["frames"], "  ", all_frames)),
        "",
        style("Breadcrumbs", BOLD, colour),
        *(fit(crumbs) or ["  (none)"]),
        "",
        style("Spans", BOLD, colour),
        *_tree_lines(view["spans"], width, colour),
    ]


def compact_time(rfc3339_time: str) -> str:
    """``2026-11-22T06:08:34.583Z`` as ``2026-11-22 06:08:34`` (UTC) for tables."""
    return rfc3339_time[:19].replace("T", " ")


def _level(widths: list[int], budget: int) -> int:
    """The largest cap such that the widths, each cut to it, add up to at most ``budget``."""
    low, high = 0, max(widths, default=0)
    while low < high:
        middle = (low + high + 1) // 2
        if sum(min(size, middle) for size in widths) <= budget:
            low = middle
        else:
            high = middle - 1
    return low


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    flexible: Collection[int] = (),
    keep_end: Collection[int] = (),
    width: int | None = None,
    colour: bool = False,
) -> list[str]:
    """Aligned columns. Past ``width``, the widest of the ``flexible`` columns give up room first (down to
    ``MIN_CELL``), cutting their values (from the start for the columns in ``keep_end``); then lines are cut.
    """
    cells = [[printable(" ".join(str(cell).splitlines())) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    if width is not None and flexible:
        fixed = sum(size for column, size in enumerate(widths) if column not in flexible)
        level = _level([widths[column] for column in flexible], width - fixed - 2 * (len(widths) - 1))
        for column in flexible:
            widths[column] = max(min(widths[column], level), min(widths[column], MIN_CELL))
            narrow = _cut_left if column in keep_end else cut
            for row in cells[1:]:
                row[column] = narrow(row[column], widths[column])
    widths[-1] = 0
    lines = [
        cut("  ".join(cell.ljust(size) for cell, size in zip(row, widths, strict=True)).rstrip(), width)
        for row in cells
    ]
    return [style(lines[0], BOLD, colour), *lines[1:]]


def list_table(rows: Sequence[dict[str, Any]], *, width: int | None, colour: bool) -> list[str]:
    """``list``, from ``catalog.listing``; the file name is cut only when nothing else can give room."""
    header = ("TIME", "SERVICE", "EXCEPTION", "MESSAGE", "FINGERPRINT", "FILE")
    cells = [
        (
            compact_time(row["failure_time"]),
            row["service"],
            row["exception"]["type"],
            row["exception"]["message"],
            row["fingerprint"][:12],
            os.path.basename(row["file"]) + ("  (replay)" if row["replay"] else ""),
        )
        for row in rows
    ]
    return table(header, cells, flexible=(1, 2, 3), keep_end=(2,), width=width, colour=colour)


def groups_table(rows: Sequence[dict[str, Any]], *, width: int | None, colour: bool) -> list[str]:
    """``groups``, from ``catalog.groups``."""
    header = (
        "COUNT",
        "FIRST SEEN",
        "LAST SEEN",
        "SERVICES",
        "EXCEPTION",
        "MESSAGE",
        "FINGERPRINT",
        "EXAMPLE",
    )
    cells = [
        (
            f"{row['count']} (+{_plural(row['replays'], 'replay')})" if row["replays"] else row["count"],
            compact_time(row["first_seen"]),
            compact_time(row["last_seen"]),
            ",".join(row["services"]),
            row["exception"]["type"],
            row["exception"]["message"],
            row.get("path", row["fingerprint"])[:12],
            os.path.basename(row["example"]),
        )
        for row in rows
    ]
    if rows and "path" in rows[0]:
        header = (*header[:6], "PATH", header[7])
    return table(header, cells, flexible=(3, 4, 5), keep_end=(4,), width=width, colour=colour)
