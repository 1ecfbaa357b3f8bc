"""A webhook receiver (Slack's incoming-webhook shape: JSON POSTed to a secret path) on loopback.

It records every body it accepts; `status` makes it answer an error instead (a webhook that is down), and it
can be stopped and started again on the same port (one that is unreachable for a while).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from aiohttp import web

from .serving import RunningServer

PATH = "/services/T000/B000/webhook-token-0123456789"  # a Slack webhook's path is its secret


class Webhook:
    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.bodies: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.refused = 0
        self.status = 200
        self._lock = threading.Lock()
        self._server: RunningServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def start(self) -> Webhook:
        app = web.Application()
        app.router.add_post(PATH, self._receive)
        self._server = RunningServer(app, port=self.port).start()
        self.port = self._server.port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    async def _receive(self, request: web.Request) -> web.Response:
        raw = await request.read()
        with self._lock:
            if self.status != 200:
                self.refused += 1
                return web.Response(status=self.status, text="unavailable")
            self.raw.append(raw)
            self.bodies.append(json.loads(raw))
        return web.json_response({"ok": True})
