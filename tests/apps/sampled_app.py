"""Local traces of a root and two children, every Nth failing; prints what the head sampler decided.

    python sampled_app.py TRACES FAIL_EVERY

The last stdout line is JSON: the trace ids (hex) the sampler sampled and the ones that failed.
"""

from __future__ import annotations

import contextlib
import json
import sys

from opentelemetry import trace


class PaymentDeclined(Exception):
    pass


def charge(index: int) -> None:
    raise PaymentDeclined(f"card declined for order {index}")


def main() -> None:
    traces, fail_every = int(sys.argv[1]), int(sys.argv[2])
    tracer = trace.get_tracer("sampled_app")
    sampled: list[str] = []
    failed: list[str] = []
    for index in range(traces):
        with (
            contextlib.suppress(PaymentDeclined),
            tracer.start_as_current_span("order", attributes={"app.index": index}) as root,
        ):
            context = root.get_span_context()
            if context.trace_flags.sampled:
                sampled.append(format(context.trace_id, "032x"))
            with tracer.start_as_current_span("reserve"):
                pass
            with tracer.start_as_current_span("charge"):
                if index % fail_every == 0:
                    failed.append(format(context.trace_id, "032x"))
                    charge(index)
    print(json.dumps({"sampled": sampled, "failed": failed}))


if __name__ == "__main__":
    main()
