"""The `traces` and `keys` commands: what an operator reads from the store and the keys they manage.

Kept apart from `cli.py` (argument parsing, `serve`, the only place that starts uvicorn) because neither
starts a server: each opens the store the running gateways write, does one thing and exits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from .access.key_request import KeyRequestError, parse_key_request
from .settings import Settings, load_settings


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

    settings = _settings_with_data_dir(args)
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
    since = max((float(r["start_time"]) for r in rows), default=0.0)

    def window() -> list[dict[str, Any]]:
        """The last minute before the newest call seen: a long call that started earlier can still land."""
        f = TraceFilter(user=args.user, session=args.session, model=args.model, since=since - 60, limit=500)
        data: list[dict[str, Any]] = list_traces(store, f)["data"]
        return data

    # Everything already stored counts as seen, printed or not: `-f -n 2` shows 2, then only new calls.
    seen = {r["trace_id"] for r in rows} | ({r["trace_id"] for r in window()} if args.follow else set())
    for row in rows:
        print(json.dumps(row) if args.json else _format_row(row), flush=True)
    try:
        while args.follow:
            time.sleep(1.0)
            for row in reversed(window()):
                if row["trace_id"] not in seen:
                    seen.add(row["trace_id"])
                    since = max(since, float(row["start_time"]))
                    print(json.dumps(row) if args.json else _format_row(row), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def _settings_with_data_dir(args: argparse.Namespace) -> Settings:
    """`--data-dir` wins over LLM_SCOPE_DATA_DIR and .env, wherever it was given on the command line."""
    data_dir = getattr(args, "data_dir", None)
    return load_settings(data_dir=data_dir) if data_dir is not None else load_settings()


def keys(args: argparse.Namespace) -> int:
    """Manage virtual keys in the data dir's key store (the running gateway sees changes within seconds)."""
    from .parts import build_keys

    if args.keys_command == "create":
        models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
        try:  # the admin API's own validation, word for word
            fields = parse_key_request(
                {
                    "owner": args.owner,
                    "models": models,
                    "budget_daily_usd": args.daily_budget,
                    "budget_monthly_usd": args.monthly_budget,
                    "rpm": args.rpm,
                    "tpm": args.tpm,
                }
            )
        except KeyRequestError as exc:
            print(f"llm-scope keys create: {exc.message}", file=sys.stderr)
            return 2
    store = build_keys(_settings_with_data_dir(args))  # with DATABASE_URL, the keys every instance shares
    if args.keys_command == "create":
        key, plaintext = store.create(**fields)
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
