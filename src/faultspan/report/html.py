"""The visual failure report: one self-contained HTML file built from a verified package.

The package is someone else's data. It reaches the page only as JSON inside a
``<script type="application/json">`` block, with every character that could end that block or a JavaScript
string escaped; the page's own script renders it with ``textContent``, never as markup. A
Content-Security-Policy allows nothing but the page's own inline style and script (by hash), so no remote load
can happen and injected markup could not run script even if it got through.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from typing import Any

from faultspan.packages import view
from faultspan.packages.catalog import failure_unix_nano
from faultspan.packages.format import Package
from faultspan.report.page import SCRIPT, STYLE

DATA_ELEMENT_ID = "faultspan-data"
MAX_CHAIN_DEPTH = 64
_JSON_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)
_ERROR_STATUS = 2


def embed_json(value: object) -> str:
    """JSON that can sit inside a ``<script>`` element: no ``</script>``, ``<!--``, or JS line terminator."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.translate(_JSON_ESCAPES)


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _texts(value: object) -> list[str]:
    return [_text(item) for item in value] if isinstance(value, list) else []


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _pairs(value: object) -> list[list[str]]:
    """A mapping as ``[key, value]`` text pairs: not every JSON reader keeps an object's key order."""
    return [[_text(key), _text(item)] for key, item in value.items()] if isinstance(value, dict) else []


def _number(value: object) -> int | float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _frame(frame: dict[str, Any]) -> dict[str, Any]:
    return {
        "filename": _text(frame.get("filename")),
        "lineno": _number(frame.get("lineno")),
        "function": _text(frame.get("function")),
        "module": _text(frame.get("module")),
        "in_app": frame.get("in_app") is True,
        "context_line": _text(frame.get("context_line")),
        "pre_context": _texts(frame.get("pre_context")),
        "post_context": _texts(frame.get("post_context")),
        "locals": _pairs(frame.get("locals")),
    }


def _frames(frames: object) -> list[dict[str, Any]]:
    return [_frame(frame) for frame in frames if isinstance(frame, dict)] if isinstance(frames, list) else []


def _chain(exception: dict[str, Any]) -> list[dict[str, Any]]:
    """The chain flattened, the reported exception first, each link with how it relates to its parent.

    Walked with a stack, not recursion, and bounded in depth: a hostile package can nest without end.
    """
    root = exception.get("chain")
    if not isinstance(root, dict):
        root = {"type": exception.get("type"), "message": exception.get("message")}
    links: list[dict[str, Any]] = []
    stack: list[tuple[dict[str, Any], str, int, object]] = [(root, "", 0, exception.get("frames"))]
    while stack:
        node, relation, depth, frames = stack.pop()
        shown = _frames(frames)
        omitted, omitted_at = view.omission(node, shown) or (0, None)
        links.append(
            {
                "relation": relation,
                "depth": depth,
                "type": _text(node.get("type")),
                "message": _text(node.get("message")),
                "notes": _texts(node.get("notes")),
                "frames": shown,
                "omitted": omitted,
                "omitted_at": omitted_at,
                "truncated": node.get("truncated") is True,
            }
        )
        if depth >= MAX_CHAIN_DEPTH:
            continue
        children: list[tuple[Any, str]] = [
            (node.get("cause"), "caused by"),
            (node.get("context"), "while handling"),
        ]
        members = node.get("exceptions")
        if isinstance(members, list):
            children += [(member, f"group member {number}") for number, member in enumerate(members, 1)]
        stack.extend(
            (child, label, depth + 1, child.get("frames"))
            for child, label in reversed(children)
            if isinstance(child, dict)
        )
    return links


def _timings(package: Package) -> dict[str, dict[str, Any]]:
    """Per span id: start and end, and its events' names and times (the tree in ``view`` has no times)."""
    timings: dict[str, dict[str, Any]] = {}
    for resource_spans in package.request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                timings[span.span_id.hex()] = {
                    "start": span.start_time_unix_nano,
                    "end": max(span.end_time_unix_nano, span.start_time_unix_nano),
                    "attributes": [
                        [item.key, _text(view.attribute_value(item.value))] for item in span.attributes
                    ],
                    "events": [(event.name, event.time_unix_nano) for event in span.events],
                }
    return timings


def _milliseconds(unix_nano: int, origin: int) -> float:
    return (unix_nano - origin) / 1e6


def _waterfall(spans: list[dict[str, Any]], timings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    known = [timings[span["span_id"]] for span in spans if span["span_id"] in timings]
    origin = min((timing["start"] for timing in known), default=0)
    end = max((timing["end"] for timing in known), default=origin)
    rows = []
    for span in spans:
        timing = timings.get(
            span["span_id"], {"start": origin, "end": origin, "events": [], "attributes": []}
        )
        rows.append(
            {
                "name": _text(span["name"]),
                "depth": span["depth"],
                "offset_ms": _milliseconds(timing["start"], origin),
                "duration_ms": _milliseconds(timing["end"], timing["start"]),
                "error": span["status"] == _ERROR_STATUS,
                "failing": span["failing"],
                "attributes": timing["attributes"],
                "events": [
                    {"name": _text(name), "offset_ms": _milliseconds(time, origin)}
                    for name, time in timing["events"]
                ],
            }
        )
    return {"total_ms": _milliseconds(end, origin), "spans": rows}


def _breadcrumbs(crumbs: list[dict[str, Any]], failure_time: int | None) -> list[dict[str, Any]]:
    origin = (
        failure_time if failure_time is not None else max((c["time_unix_nano"] for c in crumbs), default=0)
    )
    return [
        {
            "offset_ms": _milliseconds(crumb["time_unix_nano"], origin),
            "before": crumb["time_unix_nano"] <= origin,
            "time": crumb["time"],
            "level": _text(crumb["level"]),
            "category": _text(crumb["category"]),
            "message": _text(crumb["message"]),
            "data": _pairs(crumb["data"]),
        }
        for crumb in crumbs
    ]


_REQUEST_FACTS = (
    ("Method", "method"),
    ("URL", "url"),
    ("Route", "route"),
    ("Status", "status"),
    ("Client", "client"),
    ("User", "user"),
)


def _request(request: dict[str, Any] | None) -> dict[str, Any] | None:
    """The request section: facts, headers (a captured user-agent header wins over the attribute), body."""
    if request is None:
        return None
    headers = _pairs(request["headers"])
    if request["user_agent"] is not None and "user-agent" not in request["headers"]:
        headers.append(["user-agent", _text(request["user_agent"])])
    return {
        "facts": [[label, _text(request[key])] for label, key in _REQUEST_FACTS if request[key] is not None],
        "headers": headers,
        "body": _text(request["body"]),
        "span": _text(request["span"]),
    }


def _runtime(runtime: object, resource: dict[str, Any]) -> dict[str, Any]:
    facts = _mapping(runtime)
    python, system = _mapping(facts.get("python")), _mapping(facts.get("platform"))
    return {
        "facts": [
            ["Python", f"{_text(python.get('implementation'))} {_text(python.get('version'))}".strip()],
            [
                "Platform",
                " ".join(_text(system.get(key)) for key in ("system", "release", "machine")).strip(),
            ],
            ["Entry point", _text(facts.get("entry_point"))],
        ],
        "resource": _pairs(resource),
        "distributions": _pairs(facts.get("distributions")),
    }


def _recording(replay: object) -> dict[str, Any] | None:
    recording = _mapping(replay).get("recording")
    if not isinstance(recording, dict) or not isinstance(recording.get("lines"), list):
        return None
    lines = [
        {
            "filename": _text(line.get("filename")),
            "lineno": _number(line.get("lineno")),
            "function": _text(line.get("function")),
            "source": _text(line.get("source")),
            "locals": _pairs(line.get("locals")),
            "time": _number(line.get("time")),
        }
        for line in recording["lines"]
        if isinstance(line, dict)
    ]
    return {
        "lines": lines,
        "truncated": recording.get("truncated") is True,
        "limit": _text(recording.get("limit")),
    }


def model(package: Package) -> dict[str, Any]:
    """What the page shows, as plain JSON: every text is a string, every mapping a list of pairs."""
    document = view.document(package)
    manifest, exception = document["manifest"], document["exception"]
    timings = _timings(package)
    failure_time = failure_unix_nano(package)
    replay = _mapping(document["replay"])
    occurrences = manifest.get("occurrences")
    return {
        "exception": {"type": _text(exception["type"]), "message": _text(exception["message"])},
        "summary": [
            ["Service", _text(manifest["service"])],
            ["Fingerprint", _text(manifest["fingerprint"])],
            ["Failed at", _text(document["failure_time"])],
            ["Written", _text(manifest["created"])],
            ["Occurrences", _text(occurrences if isinstance(occurrences, int) else 1)],
            *(
                [["Last occurrence", _text(manifest["last_occurrence"])]]
                if "last_occurrence" in manifest
                else []
            ),
            ["Failing span", _text(exception["span"])],
            ["Trace", _text(manifest["trace_id"])],
        ],
        "truncated": manifest.get("truncated") is True,
        "chain": _chain(exception),
        "request": _request(document["request"]),
        "breadcrumbs": _breadcrumbs(document["breadcrumbs"], failure_time),
        "waterfall": _waterfall(document["spans"], timings),
        "runtime": _runtime(document["runtime"], document["resource"]),
        "replay": {
            "replayable": replay.get("replayable") is True,
            "callable": _text(replay.get("callable")),
            "reason": _text(replay.get("reason")),
        },
        "recording": _recording(replay),
    }


def _source_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_source_hash(SCRIPT)}; style-src {_source_hash(STYLE)}; "
    "base-uri 'none'; form-action 'none'"
)


def render(package: Package) -> str:
    """The whole page."""
    data = model(package)
    title = html.escape(f"{data['exception']['type']}: {data['exception']['message']}")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title} - faultspan</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>\n"
        '<main id="report"><noscript>This report needs JavaScript to render.</noscript></main>\n'
        f'<script type="application/json" id="{DATA_ELEMENT_ID}">{embed_json(data)}</script>\n'
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )
