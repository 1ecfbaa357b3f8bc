"""A tattletale HTTP(S) proxy: CLIs run with HTTP(S)_PROXY pointing here (and NO_PROXY for loopback), so
any attempt to reach the internet — telemetry, update checks, price lists — is recorded by host and
refused at once instead of hanging. The runner reports these per CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any


class EgressRecorder:
    def __init__(self) -> None:
        self.attempts: list[dict[str, Any]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=5)
            parts = line.decode("latin-1").split()
            if len(parts) >= 2:
                method, target = parts[0], parts[1]
                host = target.split("://", 1)[-1].split("/", 1)[0]
                self.attempts.append({"time": time.time(), "method": method, "host": host})
            writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def start(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(self.handle, host, port)
