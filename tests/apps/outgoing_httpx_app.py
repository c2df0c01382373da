"""A job that asks a local HTTP service with httpx, sync and async (200, 503, 404, a refused connection),
then fails.

No faultspan import: run it under opentelemetry-instrument. The job runs in one asyncio task, so the crumbs
remembered while it runs are on its failing span's trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import httpx
from opentelemetry import trace
from outgoing_app import API_KEY, serve


def refusing() -> tuple[socket.socket, str]:
    """A loopback port bound but not listening: connecting to it is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


async def reserve(base: str, refused: str) -> None:
    async with httpx.AsyncClient(timeout=10) as asynchronous:
        with httpx.Client(timeout=10) as synchronous:
            stock = synchronous.get(f"{base}/stock/A-7").json()["quantity"]
            price = await asynchronous.get(f"{base}/price/A-7", params={"api_key": API_KEY})
            synchronous.get(f"{base}/gone/A-7")
            with contextlib.suppress(httpx.ConnectError):
                await asynchronous.get(f"{refused}/reserve/A-7")
    raise ValueError(f"sku A-7: {stock} in stock, price service {price.status_code}")


async def job(base: str, refused: str) -> None:
    with trace.get_tracer("app").start_as_current_span("job"):
        await reserve(base, refused)


def main() -> None:
    base = serve()
    sock, refused = refusing()
    with sock, contextlib.suppress(ValueError):
        asyncio.run(job(base, refused))


if __name__ == "__main__":
    main()
