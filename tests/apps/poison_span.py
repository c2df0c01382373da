"""A span no collector with a small message limit takes (a 300 kB attribute), then 200 ordinary spans."""

from __future__ import annotations

from opentelemetry import trace

tracer = trace.get_tracer("poison")


def main() -> None:
    with tracer.start_as_current_span("poison") as span:
        span.set_attribute("payload", "x" * 300_000)
    for number in range(200):
        with tracer.start_as_current_span(f"order {number}"):
            pass


if __name__ == "__main__":
    main()
