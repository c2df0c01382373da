"""Failures nobody catches, one per mode (argv[1]); plain code with no faultspan or OpenTelemetry import
except where a mode needs a span.

crash           the process dies from an uncaught exception raised outside any span
crash-in-span   the same, raised inside a span (the SDK records it there as it escapes)
thread          a thread dies; the process goes on and exits 0
task            an asyncio task fails and its exception is never retrieved
unraisable      ``__del__`` raises
hooks           print which module provides each hook faultspan can replace
"""

from __future__ import annotations

import asyncio
import gc
import http.client
import logging
import sys
import threading


class Inventory:
    def __init__(self, sku: str) -> None:
        self.sku = sku

    def reserve(self, quantity: int) -> None:
        remaining = quantity - 5
        raise LookupError(f"sku {self.sku} short by {remaining}")


def crash() -> None:
    Inventory("A-7").reserve(12)


def crash_in_span() -> None:
    from opentelemetry import trace

    with trace.get_tracer("app").start_as_current_span("job"):
        Inventory("B-3").reserve(9)


def thread() -> None:
    worker = threading.Thread(target=Inventory("C-1").reserve, args=(8,), name="reserver")
    worker.start()
    worker.join()
    print("main thread carried on")


async def _fail() -> None:
    Inventory("D-4").reserve(11)


async def _main() -> None:
    task = asyncio.create_task(_fail())
    await asyncio.wait({task})
    del task
    gc.collect()


def task() -> None:
    asyncio.run(_main())


class Handle:
    def __del__(self) -> None:
        Inventory("E-9").reserve(6)


def unraisable() -> None:
    Handle()
    gc.collect()


def hooks() -> None:
    for hook in (
        sys.excepthook,
        threading.excepthook,
        sys.unraisablehook,
        asyncio.BaseEventLoop.call_exception_handler,
        http.client.HTTPConnection.getresponse,
        logging.Logger.callHandlers,
    ):
        print(getattr(hook, "__module__", None) or "builtins")


MODES = {
    "crash": crash,
    "crash-in-span": crash_in_span,
    "thread": thread,
    "task": task,
    "unraisable": unraisable,
    "hooks": hooks,
}

if __name__ == "__main__":
    MODES[sys.argv[1]]()
