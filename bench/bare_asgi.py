"""The peer baseline: a minimal raw ASGI app behind the same uvicorn settings as `imagegate serve`.

It answers every request with a fixed small JSON body (GET: 200, anything else: 202 after
reading the body), so its rate is the ceiling of "uvicorn + httptools + uvloop + one Python
callable" on this machine. bench_core.py runs it as its own subprocess and reports imagegate's
rates as a ratio of it.

    python bench/bare_asgi.py --port 8123
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# About the size of a small task object; a real one is ~850 bytes.
_GET_BODY = (
    b'{"id":"img_01BASELINE0000000000000000","object":"image.task","status":"succeeded",'
    b'"progress":100,"result":null,"error":null}'
)
_POST_BODY = b'{"created":0,"task_id":"img_01BASELINE0000000000000000","data":[]}'


def _headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]


_GET_HEADERS = _headers(_GET_BODY)
_POST_HEADERS = _headers(_POST_BODY)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        status, headers, body = 200, _GET_HEADERS, _GET_BODY
    else:
        more = True
        while more:  # drain the request body, as a real handler must
            message = await receive()
            more = bool(message.get("more_body", False))
        status, headers, body = 202, _POST_HEADERS, _POST_BODY
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The same arguments imagegate.cli.server.serve passes (loop/http "auto": uvloop + httptools).
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False,
                timeout_graceful_shutdown=10)


if __name__ == "__main__":
    main()
