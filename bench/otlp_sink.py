"""A loopback stand-in for Langfuse's OTLP endpoint: `python -m bench.otlp_sink --port 9102`.

Answers every `POST` (llm-scope sends gzip'd OTLP/protobuf to `/api/public/otel/v1/traces`) with 200 at
once, counting requests and bytes; `GET /stats` returns the counts so the benchmark can check that
export really ran during the measurement.
"""

from __future__ import annotations

import argparse
import json

from bench.httpserver import Exchange, Request, serve

stats = {"posts": 0, "otlp_posts": 0, "bytes": 0}
OTLP_PATH = b"/api/public/otel/v1/traces"


def handler(request: Request, ex: Exchange) -> None:
    if request.method == b"POST":
        stats["posts"] += 1
        stats["bytes"] += len(request.body)
        if request.path == OTLP_PATH:
            stats["otlp_posts"] += 1
        ex.send(200, b"{}")
    elif request.path == b"/stats":
        ex.send(200, json.dumps(stats).encode())
    else:
        ex.send(200, b'{"status":"OK"}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9102)
    args = parser.parse_args()
    serve(handler, args.host, args.port, "otlp sink")


if __name__ == "__main__":
    main()
