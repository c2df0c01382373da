"""An app that logs through stdlib logging only (run under opentelemetry-instrument).

Usage: python logs_app.py [CORPUS.json]

Always: the issue's example (a password and a token in a warning, a Stripe key in an exception logged with
``log.exception``) inside a ``checkout`` span, then a failure that escapes the span ``refund``. With a
corpus, every entry is planted in the channels of logging: the message text, %-args, ``extra=``
attributes, a dict logged as the message, ``log.exception`` with it in the message or in a local.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from opentelemetry import trace

log = logging.getLogger("shop")
log.setLevel(logging.INFO)
tracer = trace.get_tracer("logs-app")


def charge(card: str) -> None:
    api_key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
    raise ValueError(f"bad key {api_key}")


def refund(order: int) -> None:
    raise KeyError(f"order {order} unknown")


def failing_with_local(name: str, message: str = "failure with a planted local") -> Any:
    """A function whose parameter is called ``name`` (the planted value becomes a real local) and which logs
    its own failure, so the traceback holds that frame only, not this harness's locals."""
    namespace: dict[str, Any] = {"log": log, "message": message}
    source = (
        f"def failing({name}):\n"
        "    try:\n"
        "        raise RuntimeError(message)\n"
        "    except RuntimeError:\n"
        "        log.exception('job failed: %s', message)\n"
    )
    exec(source, namespace)
    return namespace["failing"]


def plant(entry: dict[str, Any]) -> None:
    channel, key, value = entry["channel"], entry.get("key") or "value", entry["value"]
    text = value if isinstance(value, str) else json.dumps(value)
    with tracer.start_as_current_span(f"plant {entry['id']}"):
        if channel in ("kv", "header"):
            log.info("event with extra", extra={key: value})
            log.info({key: value})
            log.info("%s=%s", key, value)
        elif channel == "value":
            log.info("note: %s", text)
            log.info(f"message text {text}")
            log.info({"note": value})
        elif channel == "message":
            failing_with_local("data", text)(None)
        elif channel == "local":
            if key.isidentifier():
                failing_with_local(key)(value)
            else:
                failing_with_local("data")({key: value})
        elif channel == "breadcrumb":
            log.warning(text)


def main() -> None:
    with tracer.start_as_current_span("checkout"):
        log.warning(
            "connecting with password=Hq3vX8k2LmZpQ7 and token ghp_abcdefghijklmnopqrstuvwxyz0123456789"
        )
        try:
            charge("4111 1111 1111 1111")
        except ValueError:
            log.exception("charge failed for card 4111 1111 1111 1111")
    try:
        with tracer.start_as_current_span("refund"):
            log.info("refunding order 7")
            refund(7)
    except KeyError:
        pass
    if len(sys.argv) > 1:
        with open(sys.argv[1], encoding="utf-8") as source:
            entries = json.load(source)
        with tracer.start_as_current_span("corpus"):
            for entry in entries:
                plant(entry)


if __name__ == "__main__":
    main()
