"""Run the real gateway (create_app under uvicorn) on loopback in a thread, for tests to call over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from llm_scope.app import create_app
from llm_scope.cli import server_protocol
from llm_scope.model_config import parse_config
from llm_scope.settings import Settings, load_settings
from tests.fakes.serving import free_port


class GatewayServer:
    def __init__(self, settings: Settings, **app_kwargs: Any) -> None:
        self.settings = settings
        self.app = create_app(settings, **app_kwargs)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(  # the protocol the CLI serves with (cli.BodyProtocol)
            self.app, http=server_protocol(), log_level="warning", lifespan="on", timeout_graceful_shutdown=2
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GatewayServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Hermetic settings: no process environment, no .env, data in the test's own directory."""
    environ = overrides.pop("environ", {})
    overrides.setdefault("data_dir", tmp_path / "data")
    overrides.setdefault("metrics_port", 0)  # no separate metrics port unless a test asks for one
    return load_settings(environ, env_file=None, **overrides)


def model_config(models: list[dict[str, Any]], environ: dict[str, str] | None = None) -> Any:
    return parse_config({"model_list": models}, environ or {}, source="test")


def write_config(path: Path, models: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"model_list": models}))
    return path


def spawn_gateway(
    tmp_path: Path,
    models: list[dict[str, Any]],
    *,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    cpus: set[int] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """`llm-scope serve` as a real process (clean environment, config file, data in tmp_path), once /ready.

    `cpus` pins it (workers and trace helpers inherit it) to those cores."""
    config = write_config(tmp_path / "config.yaml", models)
    port = free_port()
    full_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "LLM_SCOPE_CONFIG": str(config),
        "LLM_SCOPE_DATA_DIR": str(tmp_path / "data"),
        "PROXY_PORT": str(port),
        "METRICS_PORT": "0",
        "LOG_LEVEL": "warning",
        **(env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm_scope", "serve", *args],
        env=full_env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 40
    while True:
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            stderr = proc.stderr.read() if proc.stderr else b""
            raise AssertionError(f"gateway did not start: {stderr[-2000:]!r}")
        time.sleep(0.05)
