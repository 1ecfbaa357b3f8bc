"""Command line: `llm-scope serve | check-config | traces | keys`; the only place that starts uvicorn.

`traces` and `keys` live in `store_commands.py`: they read and write the store, and start nothing."""

from __future__ import annotations

import argparse
import functools
import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .internals import tested
from .model_config import ConfigError, ModelConfig, effective_settings, load_model_config
from .settings import Settings, load_settings
from .store_commands import keys, traces

log = logging.getLogger("llm_scope")

# CLI flags reach worker processes through these variables (uvicorn starts workers from an import string).
_FLAG_ENV = {"host": "PROXY_HOST", "port": "PROXY_PORT", "config": "LLM_SCOPE_CONFIG", "data_dir": "LLM_SCOPE_DATA_DIR"}
COMMANDS = ("serve", "check-config", "traces", "keys")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """The gateway holds provider keys: anyone who can reach it can spend them, so say so and stop."""
    if not is_loopback(settings.host) and not settings.master_key:
        raise SystemExit(
            f"llm-scope: refusing to listen on {settings.host}: it is reachable beyond this machine and no "
            "LLM_SCOPE_MASTER_KEY is set, so anyone on the network could spend your provider keys. "
            "Set LLM_SCOPE_MASTER_KEY, or bind to 127.0.0.1."
        )


def configure_logging(settings: Settings) -> None:
    from .logs import configure_logging as configure

    configure("DEBUG" if settings.debug_mode else settings.log_level, settings.log_format)


def uvicorn_log_config(fmt: str) -> dict[str, Any]:
    """Uvicorn's own lines in the gateway's format (JSON lines with LOG_FORMAT=json), in every worker."""
    formatter: dict[str, Any] = (
        {"()": "llm_scope.logs.JsonFormatter"}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"gateway": formatter},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "gateway", "stream": "ext://sys.stderr"}
        },
        "loggers": {"uvicorn": {"handlers": ["stderr"], "propagate": False}},
    }


def app_factory() -> object:
    """Entry point for uvicorn workers: settings from the environment, as the parent set it."""
    from .app import create_app

    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)


def serve(args: argparse.Namespace) -> int:
    for flag, env in _FLAG_ENV.items():
        value = getattr(args, flag, None)
        if value is not None:
            os.environ[env] = str(value)
    settings = load_settings()
    try:
        config = load_model_config(settings)
    except ConfigError as exc:
        check_bind(settings)
        print(f"llm-scope: invalid config: {exc}", file=sys.stderr)
        return 2
    settings = effective_settings(settings, config)  # general_settings.master_key counts for the bind check
    check_bind(settings)
    # The config's environment_variables, as LiteLLM Proxy sets them: for the workers and for LiteLLM itself.
    os.environ.update(config.proxy.environment)
    configure_logging(settings)
    for note in config.notes:
        (log.error if note.is_error else log.warning)("%s", note.line(config.source))
    import uvicorn

    workers = args.workers or settings.workers
    if workers > 1:
        metrics_server = _multiprocess_metrics(settings)
    else:
        # One process keeps its metrics in memory and serves METRICS_PORT itself. An inherited
        # PROMETHEUS_MULTIPROC_DIR (LiteLLM's docs ask for one) would turn that port off and add stale counts.
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        metrics_server = None
    uv_config = uvicorn.Config(
        "llm_scope.cli:app_factory",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        log_config=uvicorn_log_config(settings.log_format),
        access_log=False,
        loop="auto",
        http=server_protocol(),
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    text = banner(settings, config, workers)
    started = True
    try:
        if workers > 1:
            from uvicorn.supervisors import Multiprocess

            sock = uv_config.bind_socket()  # the parent binds; each worker serves this socket
            log.info("%s", text)
            Multiprocess(uv_config, sockets=[sock]).run()
        else:
            started = _serve_one(uv_config, text)
    except KeyboardInterrupt:
        pass
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
    return 0 if started else 1


# Buffered past this while the app has not read it, a request body stops the socket's reading (uvicorn: 64 KB).
PAUSE_BYTES = 1 << 20


def server_protocol() -> Any:
    """uvicorn's `http` setting: `BodyProtocol` on the uvicorn versions it was measured on, else "auto"."""
    if not tested("uvicorn"):
        return "auto"
    try:
        return _body_protocol()
    except ImportError:  # no httptools: uvicorn's h11 protocol, as "auto" would pick
        return "auto"


@functools.cache
def _body_protocol() -> type:
    """uvicorn's httptools protocol, handing a request body to the app without two copies of it.

    uvicorn 0.54 appends each body chunk from the parser to a `bytearray` and gives the app `bytes(that
    bytearray)`: for a coding agent's 50-200 KB prompt, two copies of the whole body beside the parser's own,
    each in fresh memory. Here a chunk that arrives while the cycle holds nothing is kept as the parser's own
    `bytes`, which the cycle's `bytes(...)` hands on as it is; only a second chunk before the app reads joins.
    Reading pauses past `PAUSE_BYTES` buffered instead of 64 KB, so a prompt is not paused and resumed (two
    `epoll_ctl`s and a turn of the loop) half-way through arriving: the API handlers read the whole body at
    once anyway, up to their limit. It touches the request cycle's private `body`, `response_complete` and
    `message_event`, hence the version guard (`internals.TESTED`).
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class BodyProtocol(HttpToolsProtocol):
        def on_body(self, body: bytes) -> None:
            cycle: Any = self.cycle  # its `body` is a bytearray to uvicorn, and may be a bytes here
            if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
                return
            held = cycle.body
            if not held:
                cycle.body = body  # the parser's bytes: the cycle's bytes(...) hands this very object on
            elif type(held) is bytes:
                cycle.body = held + body
            else:
                held += body
            if len(cycle.body) > PAUSE_BYTES:
                self.flow.pause_reading()
            cycle.message_event.set()

    # uvicorn's worker processes unpickle it by name (`llm_scope.cli.BodyProtocol`, see `__getattr__`).
    BodyProtocol.__module__, BodyProtocol.__qualname__ = __name__, "BodyProtocol"
    return BodyProtocol


def __getattr__(name: str) -> Any:
    """`BodyProtocol`, made on first use: uvicorn is imported only by the commands that serve."""
    if name == "BodyProtocol":
        return _body_protocol()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _serve_one(config: Any, text: str) -> bool:
    """One process: the banner only once the socket is bound, so a taken port prints no false banner."""
    import uvicorn

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started and not self.should_exit:
                log.info("%s", text)

    server = AnnouncingServer(config)
    server.run()
    return bool(server.started)


def banner(settings: Settings, config: ModelConfig, workers: int) -> str:
    """What a newcomer needs after `make run`: where to point a client and the browser, what to ask for, and
    which of the optional parts (master key, Langfuse) are on."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    base = f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"
    names = [d.model_name for d in config.deployments if not d.wildcard]
    wildcards = [d.model_name for d in config.deployments if d.wildcard]
    shown = ", ".join(dict.fromkeys(names[:6])) + (f", … ({len(names) - 6} more)" if len(names) > 6 else "")
    if wildcards:
        shown += ("; " if shown else "") + "any of " + ", ".join(w.replace("*", "<model>") for w in wildcards[:4])
    langfuse = (
        f"on, exporting to {settings.langfuse_host}"
        if settings.langfuse_configured
        else "off (set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY)"
    )
    store = (settings.data_dir / "llm-scope.db").resolve()
    listening = f"{settings.host}:{settings.port}" if host != settings.host else base
    lines = [
        f"llm-scope {__version__} ready on {listening} ({workers} worker{'s' if workers > 1 else ''})",
        f"  OpenAI base URL:    {base}/v1        Anthropic base URL: {base}",
        f"  dashboard:          {base}/ui",
        f"  models to try:      {shown or 'none'} (from {config.source})",
        f"  master key:         {'on' if settings.master_key else 'off (no authentication; loopback only)'}",
        f"  Langfuse export:    {langfuse}",
        f"  local trace store:  {store} (kept {settings.retention_days} days)",
    ]
    return "\n".join(lines)


def _multiprocess_metrics(settings: Settings) -> Any:
    """Several workers: each writes its metrics to a shared directory; this process serves the sum."""
    directory = settings.data_dir / "prometheus-multiproc"
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)  # read by prometheus_client in each worker
    from .metrics.serving import prepare_multiprocess_dir, serve_metrics

    prepare_multiprocess_dir(directory)
    if not settings.metrics_port:
        return None
    try:
        return serve_metrics(settings.metrics_port, settings.metrics_host)
    except OSError as exc:
        log.warning("metrics port %d unavailable: %s", settings.metrics_port, exc.strerror)
        return None


def check_config(args: argparse.Namespace) -> int:
    if args.config:
        os.environ["LLM_SCOPE_CONFIG"] = args.config
    settings = load_settings()
    try:
        config = load_model_config(settings)
    except ConfigError as exc:
        print(f"invalid config: {exc}", file=sys.stderr)
        return 2
    for d in config.deployments:
        state = "  (unavailable)" if d.unavailable else ""
        print(f"{d.model_name:40} {d.litellm_model:40} {d.api_base or ''}{state}")
    for line in config.note_lines():
        print(line, file=sys.stderr)
    if any(note.is_error for note in config.notes):
        return 2
    return 1 if args.strict and config.notes else 0


def build_parser() -> argparse.ArgumentParser:
    # --data-dir is accepted anywhere: before the command, after it, or after `keys create|list|revoke`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        dest="data_dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="directory of the trace store and virtual keys (LLM_SCOPE_DATA_DIR; default ./data)",
    )
    parser = argparse.ArgumentParser(
        prog="llm-scope", description="An LLM gateway that traces every call.", parents=[common]
    )
    parser.add_argument("--version", action="version", version=f"llm-scope {__version__}")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("serve", help="run the gateway", parents=[common])
    p.add_argument("--host", help="interface to bind (PROXY_HOST; default 127.0.0.1; others need a master key)")
    p.add_argument("--port", type=int, help="port for the API and dashboard (PROXY_PORT; default 8000)")
    p.add_argument(
        "--config", help="LiteLLM-style YAML model list (LLM_SCOPE_CONFIG; default config/config.yaml if present)"
    )
    p.add_argument("--workers", type=int, help="worker processes (LLM_SCOPE_WORKERS; default 1)")
    p.set_defaults(func=serve)
    c = sub.add_parser("check-config", help="validate the config and print the model routes")
    c.add_argument("--config")
    c.add_argument("--strict", action="store_true", help="exit 1 on any warning (ignored keys, unset variables)")
    c.set_defaults(func=check_config)
    t = sub.add_parser("traces", help="print recent calls from the local store", parents=[common])
    t.add_argument("--follow", "-f", action="store_true", help="keep printing new calls")
    t.add_argument("--limit", "-n", type=int, default=20, help="how many recent calls to print first (default 20)")
    t.add_argument("--user", help="only this user's calls")
    t.add_argument("--session", help="only this session's calls")
    t.add_argument("--model", help="only calls that asked for this model")
    t.add_argument("--json", action="store_true", help="one JSON object per line")
    t.set_defaults(func=traces)
    k = sub.add_parser("keys", help="create, list and revoke virtual keys", parents=[common])
    ks = k.add_subparsers(dest="keys_command", required=True)
    kc = ks.add_parser("create", help="create a key (printed once)", parents=[common])
    kc.add_argument("--owner", required=True, help="person or team; becomes the trace's user")
    kc.add_argument("--models", help="comma-separated model names this key may use (default: all)")
    kc.add_argument("--daily-budget", type=float, help="USD per UTC day")
    kc.add_argument("--monthly-budget", type=float, help="USD per month")
    kc.add_argument("--rpm", type=int, help="requests per minute")
    kc.add_argument("--tpm", type=int, help="tokens per minute")
    kl = ks.add_parser("list", help="list keys (never their secrets)", parents=[common])
    kl.add_argument("--all", action="store_true", help="include revoked keys")
    kr = ks.add_parser("revoke", help="revoke a key by id", parents=[common])
    kr.add_argument("id")
    k.set_defaults(func=keys)
    return parser


def _means_serve(argv: list[str]) -> bool:
    """`llm-scope`, `llm-scope --port 8001`, `llm-scope --data-dir d`: serve. A command named after the
    global `--data-dir` is still that command."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--data-dir":
            i += 2
        elif arg.startswith("--data-dir="):
            i += 1
        else:
            return arg.startswith("-") and arg not in ("-h", "--help", "--version")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if _means_serve(argv):
        argv = ["serve", *argv]
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # `llm-scope traces --json | head`: the reader has all it wanted. Point stdout at /dev/null so the
        # interpreter's final flush does not fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
