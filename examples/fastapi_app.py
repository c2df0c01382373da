"""A FastAPI order service that fails; faultspan captures it without any change to the request handling.

Run (port from argv, else $PORT, else 8000)::

    opentelemetry-instrument python examples/fastapi_app.py 8000

Failing route: ``GET /orders/{order_id}`` answers 500 (``PaymentDeclined``, chained to a ``ConnectionError``)
after a log line, a breadcrumb and an outgoing call to this service's own ``/health``. ``GET /orders/0``
is a handled 404 (no exception event). Try it with synthetic credentials, which never leave the process::

    curl -H 'Authorization: Bearer demo0token0abcdef0123456789' \\
         'http://127.0.0.1:8000/orders/7?marker=m1&api_key=EXAMPLEdemoKey00000000000000'
"""

from __future__ import annotations

import logging
import os
import sys

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

import faultspan

log = logging.getLogger("orders")


class BearerAuth(AuthenticationBackend):
    """Token authentication (a real backend looks the token up): faultspan reports the user as ``user.id``."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        if conn.headers.get("authorization", "").startswith("Bearer "):
            return AuthCredentials(["authenticated"]), SimpleUser("demo-user")
        return None


app = FastAPI(middleware=[Middleware(AuthenticationMiddleware, backend=BearerAuth())])
client = httpx.AsyncClient()  # one for the process: each new client builds an SSL context (~0.1 s)
PORT = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PORT", "8000"))


class PaymentDeclined(Exception):
    pass


@app.get("/health")
async def health() -> str:
    return "ok"


def charge(order_id: int, marker: str) -> None:
    card_number = "4111 1111 1111 1111"  # synthetic: masked in the captured locals
    try:
        raise ConnectionError(f"gateway timed out charging order {order_id}")
    except ConnectionError as exc:
        raise PaymentDeclined(f"card {card_number} declined (request {marker})") from exc


@app.get("/orders/{order_id}")
async def order(order_id: int, marker: str = "-") -> str:
    if order_id == 0:
        raise HTTPException(status_code=404, detail="no such order")
    log.warning("loading order %s for request %s", order_id, marker)
    faultspan.breadcrumb("orders", f"charging order {order_id}", marker=marker)
    (await client.get(f"http://127.0.0.1:{PORT}/health", params={"marker": marker})).raise_for_status()
    charge(order_id, marker)
    return "paid"


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")


if __name__ == "__main__":
    main()
