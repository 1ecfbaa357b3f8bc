"""Command line: `llm-scope serve | check-config | traces`; the only place that starts uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .config import ConfigError, load_model_config
from .settings import Settings, load_settings

log = logging.getLogger("llm_scope")

# CLI flags reach worker processes through these variables (uvicorn starts workers from an import string).
_FLAG_ENV = {"host": "PROXY_HOST", "port": "PROXY_PORT", "config": "LLM_SCOPE_CONFIG", "data_dir": "LLM_SCOPE_DATA_DIR"}


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
    level = "DEBUG" if settings.debug_mode else settings.log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("LiteLLM", "litellm", "httpx", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


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
    check_bind(settings)
    try:
        config = load_model_config(settings)
    except ConfigError as exc:
        print(f"llm-scope: invalid config: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    import uvicorn

    workers = args.workers or settings.workers
    log.info(
        "llm-scope %s listening on http://%s:%d (%d worker%s, %s)",
        __version__,
        settings.host,
        settings.port,
        workers,
        "s" if workers > 1 else "",
        config.source,
    )
    uvicorn.run(
        "llm_scope.cli:app_factory",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        loop="auto",
        http="auto",
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    return 0


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
        print(f"{d.model_name:40} {d.provider}/{d.model} {d.api_base or ''}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-scope", description="An LLM gateway that traces every call.")
    parser.add_argument("--version", action="version", version=f"llm-scope {__version__}")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("serve", help="run the gateway")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--config", help="LiteLLM-style YAML model list")
    p.add_argument("--data-dir", dest="data_dir", type=Path)
    p.add_argument("--workers", type=int)
    p.set_defaults(func=serve)
    c = sub.add_parser("check-config", help="validate the config and print the model routes")
    c.add_argument("--config")
    c.set_defaults(func=check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        args = parser.parse_args(["serve", *(argv or sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
