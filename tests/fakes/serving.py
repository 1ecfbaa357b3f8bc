"""Run aiohttp apps on loopback in a background thread.

Tests talk to the fakes from synchronous code (SDK clients, httpx, the gateway under test running in its own
loop), so each fake gets a private event loop in a daemon thread: nothing the test does on its own loop can
starve the fake, and a fake that hangs on purpose cannot block the test.

We bind the listening socket ourselves (with SO_REUSEADDR) instead of letting aiohttp pick a port, so the
port is known before the thread reports ready and a stopped server can be restarted on the very same port
(tests that simulate a backend going away and coming back rely on that).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from types import TracebackType
from typing import Any

from aiohttp import web

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """Return a port that was free a moment ago; racy by nature, prefer port=0 where you can."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _bind_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class RunningServer:
    """Handle on an app served from its own thread; stop() is idempotent so fixtures can always call it."""

    def __init__(
        self,
        app: web.Application,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        handler_cancellation: bool = True,
        shutdown_timeout: float = 0.5,
        ssl_context: ssl.SSLContext | None = None,
        **server_kwargs: Any,
    ) -> None:
        self.host = host
        self.ssl_context = ssl_context
        self._server_kwargs = server_kwargs
        self._app = app
        self._sock = _bind_socket(host, port)
        self.port: int = self._sock.getsockname()[1]
        self._handler_cancellation = handler_cancellation
        self._shutdown_timeout = shutdown_timeout
        self._loop = asyncio.new_event_loop()
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"fake-server-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The server's loop, for tests that need to schedule work next to the handlers."""
        return self._loop

    def start(self, timeout: float = 10.0) -> RunningServer:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"server on port {self.port} did not start within {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"server on port {self.port} failed to start") from self._error
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced to start() if we never became ready
            self._error = exc
            self._ready.set()
        finally:
            self._drain_and_close_loop()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        # Cancelling handlers on client disconnect is what lets fakes notice and record disconnects.
        runner = web.AppRunner(
            self._app,
            handle_signals=False,
            handler_cancellation=self._handler_cancellation,
            shutdown_timeout=self._shutdown_timeout,
            access_log=None,
            **self._server_kwargs,
        )
        await runner.setup()
        try:
            await web.SockSite(runner, self._sock, ssl_context=self.ssl_context).start()
            self._ready.set()
            await self._stop_event.wait()
        finally:
            await runner.cleanup()

    def _drain_and_close_loop(self) -> None:
        pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            with contextlib.suppress(BaseException):
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        with contextlib.suppress(BaseException):
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()
        self._sock.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive() and self._stop_event is not None:
            stop_event = self._stop_event
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(stop_event.set)
        if self._thread.ident is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"server on port {self.port} did not stop within {timeout}s")
        else:  # never started
            self._loop.close()
            self._sock.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_aiohttp_in_thread(
    app: web.Application,
    *,
    host: str = LOOPBACK,
    port: int = 0,
    handler_cancellation: bool = True,
    shutdown_timeout: float = 0.5,
    ssl_context: ssl.SSLContext | None = None,
    **server_kwargs: Any,
) -> RunningServer:
    """Serve `app` in a background thread; port=0 picks a free port, a fixed port allows restarts.

    An aiohttp Application binds to the first loop that runs it, so restarting means passing a fresh app.
    Extra keyword arguments go to aiohttp's request handler (e.g. auto_decompress=False).
    """
    return RunningServer(
        app,
        host=host,
        port=port,
        handler_cancellation=handler_cancellation,
        shutdown_timeout=shutdown_timeout,
        ssl_context=ssl_context,
        **server_kwargs,
    ).start()
