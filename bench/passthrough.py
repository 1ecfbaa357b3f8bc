"""The floor: a bare byte passthrough on llm-scope's own stack, `python -m bench.passthrough --port P --upstream URL`.

uvicorn (uvloop, httptools) and the gateway's upstream client (providers/upstream_http.py), and nothing
else: no routing, auth, parsing, tap, metrics or tracing. Measured beside llm-scope it shows what the
server stack costs by itself at each concurrency, so the gateway's own share is the difference.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

from llm_scope.providers.base import CallOptions
from llm_scope.providers.upstream_http import UpstreamHTTP

OPTIONS = CallOptions(timeout=60.0, connect_timeout=5.0)


def make_app(upstream: str) -> Any:
    http = UpstreamHTTP()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await http.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] in ("/ready", "/health"):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        answer = await http.post(
            upstream, {"Content-Type": "application/json"}, body, stream=b'"stream":true' in body, options=OPTIONS
        )
        headers = [(b"content-type", answer.headers["content-type"].encode())]
        if answer.chunks is None:
            headers.append((b"content-length", str(len(answer.body)).encode()))
            await send({"type": "http.response.start", "status": answer.status, "headers": headers})
            await send({"type": "http.response.body", "body": answer.body})
            return
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        async for chunk in answer.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True, help="the mock's chat completions URL")
    args = p.parse_args()
    uvicorn.run(
        make_app(args.upstream), host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
        access_log=False, log_level="warning", server_header=False, proxy_headers=False,
    )  # fmt: skip


if __name__ == "__main__":
    main()
