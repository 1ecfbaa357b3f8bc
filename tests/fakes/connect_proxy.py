"""A small forward proxy on loopback, as corporate egress proxies behave: CONNECT tunnels for https, and
absolute-form requests for plain http, optionally behind `Proxy-Authorization: Basic`.

It runs on its own event loop in a daemon thread (like the other fakes) and records what it was asked, so
tests can tell that a call went through it, where to, and with which credentials.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from .serving import LOOPBACK


@dataclass(frozen=True)
class ProxyRequest:
    method: str  # CONNECT, POST, ...
    target: str  # host:port for CONNECT, the absolute URL otherwise
    authorization: str | None


class ConnectProxy:
    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.credentials = credentials
        self.requests: list[ProxyRequest] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-connect-proxy", daemon=True)
        self.port = 0

    def url(self, credentials: tuple[str, str] | None = None) -> str:
        """The proxy's URL, with `credentials` (percent-encoded as users must write them) if given."""
        userinfo = f"{quote(credentials[0], safe='')}:{quote(credentials[1], safe='')}@" if credentials else ""
        return f"http://{userinfo}{LOOPBACK}:{self.port}"

    @property
    def tunnels(self) -> list[str]:
        with self._lock:
            return [r.target for r in self.requests if r.method == "CONNECT"]

    @property
    def forwarded(self) -> list[str]:
        with self._lock:
            return [r.target for r in self.requests if r.method != "CONNECT"]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def start(self) -> ConnectProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake proxy did not start")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, LOOPBACK, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            with contextlib.suppress(BaseException):
                self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    def _authorized(self, authorization: str | None) -> bool:
        if self.credentials is None:
            return True
        expected = base64.b64encode(":".join(self.credentials).encode()).decode()
        return authorization == f"Basic {expected}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            authorization = headers.get("proxy-authorization")
            with self._lock:
                self.requests.append(ProxyRequest(method, target, authorization))
            if not self._authorized(authorization):
                writer.write(
                    b'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="fake"\r\n'
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                await writer.drain()
                return
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            else:  # absolute-form: the origin server accepts the absolute URL in the request line as it is
                url = urlsplit(target)
                up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
                up_writer.write(head)
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, OSError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def start_connect_proxy(credentials: tuple[str, str] | None = None) -> ConnectProxy:
    return ConnectProxy(credentials).start()
