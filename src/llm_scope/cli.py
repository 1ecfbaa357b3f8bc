"""Command line: `llm-scope serve | check-config | traces`; the only place that starts uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    check_bind(settings)
    try:
        config = load_model_config(settings)
    except ConfigError as exc:
        print(f"llm-scope: invalid config: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    import uvicorn

    workers = args.workers or settings.workers
    if workers > 1:
        metrics_server = _multiprocess_metrics(settings)
    else:
        # One process keeps its metrics in memory and serves METRICS_PORT itself. An inherited
        # PROMETHEUS_MULTIPROC_DIR (LiteLLM's docs ask for one) would turn that port off and add stale counts.
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        metrics_server = None
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
        log_config=uvicorn_log_config(settings.log_format),
        access_log=False,
        loop="auto",
        http="auto",
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    if metrics_server is not None:
        metrics_server.shutdown()
    return 0


def _multiprocess_metrics(settings: Settings) -> Any:
    """Several workers: each writes its metrics to a shared directory; this process serves the sum."""
    directory = settings.data_dir / "prometheus-multiproc"
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)  # read by prometheus_client in each worker
    from .metrics import prepare_multiprocess_dir, serve_metrics

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
        print(f"{d.model_name:40} {d.litellm_model:40} {d.api_base or ''}")
    return 0


def _format_row(row: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(row["start_time"])))
    cost, ttft = row.get("cost_total"), row.get("ttft_ms")
    user, session = str(row.get("user_id") or "-")[:16], str(row.get("session_id") or "-")[:16]
    model = str(row.get("requested_model") or "-")[:24]
    tokens = f"{row.get('input_tokens') or 0:>6}/{row.get('output_tokens') or 0:<6}"
    cost_text = f"${cost:.6f}" if isinstance(cost, int | float) else "-"
    ttft_text = f"{ttft:.1f}ms" if isinstance(ttft, int | float) else "-"
    return (
        f"{when}  {row['trace_id']}  {user:16}  {session:16}  {model:24}  {row['status_code']:>3}  {tokens}"
        f"  {cost_text:>10}  {float(row.get('duration_ms') or 0):>8.1f}ms  {ttft_text:>9}"
    )


def traces(args: argparse.Namespace) -> int:
    """Print recent calls from the local store; `--follow` keeps printing new ones as they land."""
    from .tracing.queries import TraceFilter, list_traces
    from .tracing.storage import TraceStore
    from .tracing.store import Store

    if args.data_dir:
        os.environ["LLM_SCOPE_DATA_DIR"] = str(args.data_dir)
    settings = load_settings()
    path = settings.data_dir / "llm-scope.db"
    store: TraceStore
    if settings.database_url:  # every instance's calls
        from .tracing.pgstore import PostgresStore

        store = PostgresStore(settings.database_url)
    elif not path.exists():
        print(f"no local store at {path} yet: make a call through the gateway first", file=sys.stderr)
        return 1
    else:
        store = Store(path)
    f = TraceFilter(user=args.user, session=args.session, model=args.model, limit=args.limit)
    rows = list(reversed(list_traces(store, f)["data"]))
    if not args.json:
        print(
            "time                 trace_id                          user              session           "
            "model                     st  in/out         cost   duration       ttft"
        )
    seen = {r["trace_id"] for r in rows}
    since = max((float(r["start_time"]) for r in rows), default=0.0)
    for row in rows:
        print(json.dumps(row) if args.json else _format_row(row), flush=True)
    while args.follow:
        time.sleep(1.0)
        fresh = list_traces(
            store, TraceFilter(user=args.user, session=args.session, model=args.model, since=since - 60, limit=500)
        )["data"]
        for row in reversed(fresh):
            if row["trace_id"] not in seen:
                seen.add(row["trace_id"])
                since = max(since, float(row["start_time"]))
                print(json.dumps(row) if args.json else _format_row(row), flush=True)
    return 0


def keys(args: argparse.Namespace) -> int:
    """Manage virtual keys in the data dir's key store (the running gateway sees changes within seconds)."""
    from .app import build_keys

    if args.data_dir:
        os.environ["LLM_SCOPE_DATA_DIR"] = str(args.data_dir)
    store = build_keys(load_settings())  # with DATABASE_URL, the keys every instance shares
    if args.keys_command == "create":
        models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
        key, plaintext = store.create(
            args.owner,
            models=models,
            budget_daily_usd=args.daily_budget,
            budget_monthly_usd=args.monthly_budget,
            rpm=args.rpm,
            tpm=args.tpm,
        )
        print(json.dumps({**key.public(), "key": plaintext}, indent=2))
        print("Store this key now: it is not shown again.", file=sys.stderr)
    elif args.keys_command == "list":
        for key in store.list(include_revoked=args.all):
            state = "revoked" if key.revoked else "active"
            limits = ", ".join(
                f"{name}={value}"
                for name, value in (
                    ("models", ",".join(key.models) if key.models is not None else None),
                    ("daily $", key.budget_daily_usd),
                    ("monthly $", key.budget_monthly_usd),
                    ("rpm", key.rpm),
                    ("tpm", key.tpm),
                )
                if value is not None
            )
            print(f"{key.id}  {key.hint:12}  {key.owner:20}  {state:7}  {limits}")
    elif args.keys_command == "revoke":
        if not store.revoke(args.id):
            print(f"no active key {args.id}", file=sys.stderr)
            return 1
        print(f"revoked {args.id}")
    store.close()
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
    t = sub.add_parser("traces", help="print recent calls from the local store")
    t.add_argument("--follow", "-f", action="store_true", help="keep printing new calls")
    t.add_argument("--limit", "-n", type=int, default=20)
    t.add_argument("--user")
    t.add_argument("--session")
    t.add_argument("--model")
    t.add_argument("--json", action="store_true", help="one JSON object per line")
    t.add_argument("--data-dir", dest="data_dir", type=Path)
    t.set_defaults(func=traces)
    k = sub.add_parser("keys", help="create, list and revoke virtual keys")
    k.add_argument("--data-dir", dest="data_dir", type=Path)
    ks = k.add_subparsers(dest="keys_command", required=True)
    kc = ks.add_parser("create", help="create a key (printed once)")
    kc.add_argument("--owner", required=True, help="person or team; becomes the trace's user")
    kc.add_argument("--models", help="comma-separated model names this key may use (default: all)")
    kc.add_argument("--daily-budget", type=float, help="USD per UTC day")
    kc.add_argument("--monthly-budget", type=float, help="USD per month")
    kc.add_argument("--rpm", type=int, help="requests per minute")
    kc.add_argument("--tpm", type=int, help="tokens per minute")
    kl = ks.add_parser("list", help="list keys (never their secrets)")
    kl.add_argument("--all", action="store_true", help="include revoked keys")
    kr = ks.add_parser("revoke", help="revoke a key by id")
    kr.add_argument("id")
    k.set_defaults(func=keys)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["serve", *argv]  # `llm-scope --port 8001` means serve
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
