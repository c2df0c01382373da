"""Plants every entry of a corpus file in the channel it names (run under opentelemetry-instrument).

Usage: python planted.py CORPUS.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from opentelemetry import trace

import faultspan

tracer = trace.get_tracer("planted")


def failing_function(name: str, echo: bool = False) -> Any:
    """A function whose one parameter is called ``name`` (the planted value becomes a real local) and
    which records its own failure, so the traceback holds that frame only, not this harness; with ``echo``
    the exception message repeats the local's value."""
    namespace: dict[str, Any] = {"trace": trace}
    message = f"'login refused for ' + str({name})" if echo else "'failure with a planted local'"
    source = (
        f"def failing({name}):\n"
        "    try:\n"
        f"        raise RuntimeError({message})\n"
        "    except RuntimeError as exc:\n"
        "        trace.get_current_span().record_exception(exc)\n"
    )
    exec(source, namespace)
    return namespace["failing"]


def plant(entry: dict[str, Any]) -> None:
    channel, key, value = entry["channel"], entry.get("key") or "value", entry["value"]
    with tracer.start_as_current_span(f"plant {entry['id']}") as span:
        if channel in ("kv", "value"):
            span.set_attribute(key, value)
        elif channel == "header":
            span.set_attribute(f"http.request.header.{key.lower()}", value)
        elif channel == "breadcrumb":
            faultspan.breadcrumb("log", value)
        elif channel == "message":
            span.record_exception(ValueError(value))
        elif channel == "local-echo":  # the value is secret by its key only, and also in the message
            failing_function(key, echo=True)(value)
        elif channel == "local":
            if key.isidentifier():
                failing_function(key)(value)
            else:
                failing_function("data")({key: value})


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as source:
        entries = json.load(source)
    with tracer.start_as_current_span("corpus") as corpus:
        for entry in entries:
            plant(entry)
        # Breadcrumbs become events of failing spans only: one failure at the end carries the whole trail.
        corpus.record_exception(RuntimeError("corpus planted"))


if __name__ == "__main__":
    main()
