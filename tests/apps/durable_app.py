"""Spans for the durable-delivery fault tests (run under opentelemetry-instrument).

Usage: python durable_app.py COUNT [--name PREFIX] [--rate N] [--fail-every K]
       [--then exit|sigkill|term-wait|forever]

Ends COUNT spans ``<PREFIX> <i>`` (default ``work``; attribute ``seq``), every K-th recording a captured
exception, at about N spans per second when ``--rate`` is given. Then: ``exit`` returns normally;
``sigkill`` SIGKILLs itself right after the last span;
``term-wait`` installs an application SIGTERM handler (after faultspan's) that prints ``ended <n>`` and
exits 3, and keeps ending spans until signalled; ``forever`` keeps ending spans with no handler of its own
(the default SIGTERM action applies).
Prints ``started`` once the first span ended and ``ended <n>`` at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from types import FrameType

from opentelemetry import trace

import faultspan

tracer = trace.get_tracer("durable-app")
ended = 0


def one_span(name: str, fail_every: int) -> None:
    global ended  # noqa: PLW0603
    with tracer.start_as_current_span(f"{name} {ended}") as span:
        span.set_attribute("seq", ended)
        if fail_every and ended % fail_every == 0:
            try:
                raise RuntimeError(f"planned failure {ended}")
            except RuntimeError:
                faultspan.capture_exception()
    ended += 1
    if ended == 1:
        print("started", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("count", type=int)
    parser.add_argument("--name", default="work")
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--then", default="exit", choices=("exit", "sigkill", "term-wait", "forever"))
    args = parser.parse_args()

    if args.then == "term-wait":

        def on_term(signum: int, frame: FrameType | None) -> None:
            print(f"ended {ended}", flush=True)
            sys.exit(3)

        signal.signal(signal.SIGTERM, on_term)

    began = time.monotonic()
    while ended < args.count or args.then in ("term-wait", "forever"):
        one_span(args.name, args.fail_every)
        if args.rate:
            ahead = began + ended / args.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    print(f"ended {ended}", flush=True)
    if args.then == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main()
