"""Who spent what, with which tool, in which session: the aggregates behind /api/sessions, /api/usage's
`group_by` and /api/unpriced-models.

Read-side only, off the request path: each query runs on the store's thread when someone asks.

The SQL is kept to what SQLite and PostgreSQL both run: COUNT/SUM/MIN/MAX, CASE, COALESCE, NULLIF,
COUNT(DISTINCT …), `IN (?, …)`; no GROUP_CONCAT/STRING_AGG, date functions or JSON functions (lists such as a
session's models come from a second grouped query, merged here). Ratios and the fresh-input bucket are
worked out in Python, so integer division and NULL arithmetic cannot differ between the two.

Honest cost: SUM skips NULLs, so `cost_total` is what the priced calls cost (None when none was priced) and
`unpriced_calls` counts the calls that used tokens but have no price. An unpriced call is never $0.

Sessions are keyed by the session id the tool sent (Claude Code's `x-claude-code-session-id` or
`metadata.user_id`, Codex's `session_id`, `x-session-id`, …), or, for calls a tool made without one, the
fallback id the trace helper assigned when it stored them (`autosession`: same key, else user, and client,
no gap over IDLE_GAP; "auto-" and the first call's trace id), marked `derived`. Calls stored before that
existed have none: `derive` groups those the same way at read time, with window functions over every such
call in the store (LAG, SUM … OVER, FIRST_VALUE, a WITH inside a subquery: SQLite 3.25+ and PostgreSQL alike),
so it is asked for, not done on every read.

A session's tool calls (by tool name), subagent calls (those the tool marked as a subagent's), retries (the
gateway's own, plus the client's re-sends of a failed request) and repositories/branches come from columns
the helper filled per call (`callfacts`, `autosession`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..accounting.cache import cache_value
from ..accounting.cost import Prices
from ..types import CallRecord
from .autosession import DERIVED_PREFIX, IDLE_GAP
from .cachebreaks import explain
from .queries import COST_BUCKETS, MAX_LIMIT, TraceFilter, money, tool_counts
from .queries import MODEL as MODEL
from .store import SUMMARY_COLUMNS, Store

Pricing = Callable[[CallRecord], Prices | None]  # a call's prices (config model_info, then LiteLLM's table)

# A call that used tokens but has no cost: its model has no price (`cost_total` is NULL).
UNPRICED = "cost_total IS NULL AND (input_tokens > 0 OR output_tokens > 0)"
ERROR = "status_code >= 400 OR error_type IS NOT NULL"
AGGREGATES = (
    "COUNT(*) AS calls, SUM(input_tokens) AS input_tokens, SUM(cache_read_tokens) AS cache_read_tokens, "
    "SUM(cache_write_tokens) AS cache_write_tokens, SUM(output_tokens) AS output_tokens, "
    "SUM(reasoning_tokens) AS reasoning_tokens, SUM(total_tokens) AS total_tokens, SUM(cost_total) AS cost_total, "
    f"SUM(CASE WHEN {UNPRICED} THEN 1 ELSE 0 END) AS unpriced_calls, "
    f"SUM(CASE WHEN {ERROR} THEN 1 ELSE 0 END) AS errors, {COST_BUCKETS}"
)
SESSION_FACTS = (
    "SUM(CASE WHEN subagent IS NOT NULL THEN 1 ELSE 0 END) AS subagent_calls, "
    "SUM(COALESCE(retries, 0)) AS gateway_retries, SUM(COALESCE(resent, 0)) AS client_resends, "
    "MAX(COALESCE(session_derived, 0)) AS derived"
)
GROUPS = {"client": "client", "user": "user_id", "model": MODEL, "key": "key_id", "session": "session_id"}
SESSION_SORTS = {
    "last_call": "MAX(start_time)",
    "first_call": "MIN(start_time)",
    "calls": "COUNT(*)",
    "cost": "COALESCE(SUM(cost_total), 0)",
    "tokens": "SUM(total_tokens)",
    "errors": f"SUM(CASE WHEN {ERROR} THEN 1 ELSE 0 END)",
    "unpriced": f"SUM(CASE WHEN {UNPRICED} THEN 1 ELSE 0 END)",
}
_INTS = (
    "calls",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    "unpriced_calls",
    "errors",
)


def _where(f: TraceFilter, *extra: str) -> tuple[str, list[Any]]:
    where, params = f.where()
    if extra:
        where = (where + " AND " if where else " WHERE ") + " AND ".join(f"({clause})" for clause in extra)
    return where, params


def buckets(row: dict[str, Any]) -> dict[str, Any]:
    """Sums as plain numbers, plus the derived buckets: fresh input (neither read from nor written to the
    cache) and the cache hit ratio (cache reads / whole input; None without input)."""
    for name in _INTS:
        if name in row:
            row[name] = int(row[name] or 0)
    money(row)
    total_input = row.get("input_tokens", 0)
    read, write = row.get("cache_read_tokens", 0), row.get("cache_write_tokens", 0)
    row["fresh_input_tokens"] = max(0, total_input - read - write)
    row["cache_hit_ratio"] = round(read / total_input, 4) if total_input else None
    return row


def _source(derive: bool) -> tuple[str, list[Any]]:
    """What session queries read FROM, and its parameters: `traces`, or (derive) a subquery `calls` of the same
    columns in which the calls a tool made without a session id carry their derived one. Runs are found over
    all such calls, not only those of the time range asked about, so a derived id does not change with it."""
    if not derive:
        return "traces", []
    window, params = _where(TraceFilter(), "session_id IS NULL", "client IS NOT NULL")
    who = "COALESCE(key_id, user_id, '')"
    columns = ",".join(
        f"COALESCE(t.session_id, d.derived) AS {c}" if c == "session_id" else f"t.{c}" for c in SUMMARY_COLUMNS
    )
    head = (
        f"(WITH base AS (SELECT trace_id, start_time, {who} AS who, client, LAG(start_time) OVER "
        f"(PARTITION BY {who}, client ORDER BY start_time, trace_id) AS prev FROM traces{window}), "
        "runs AS (SELECT trace_id, start_time, who, client, SUM(CASE WHEN prev IS NULL OR start_time - prev > ? "
        "THEN 1 ELSE 0 END) OVER (PARTITION BY who, client ORDER BY start_time, trace_id "
        "ROWS UNBOUNDED PRECEDING) AS run FROM base), "
        f"derived AS (SELECT trace_id, '{DERIVED_PREFIX}' || FIRST_VALUE(trace_id) OVER "
        "(PARTITION BY who, client, run ORDER BY start_time, trace_id) AS derived FROM runs) "
        f"SELECT {columns} FROM traces t LEFT JOIN derived d ON d.trace_id = t.trace_id) calls"
    )
    return head, [*params, IDLE_GAP]


def list_sessions(
    store: Store,
    f: TraceFilter,
    sort: str = "last_call",
    descending: bool = True,
    derive: bool = False,
    prices_for: Pricing | None = None,
) -> dict[str, Any]:
    """One row per session id: its tool, user, span, turns, models, token buckets, cost, cache and errors."""
    if sort not in SESSION_SORTS:
        raise ValueError(f"unknown sort {sort!r}")
    table, head = _source(derive)
    where, params = _where(f, "session_id IS NOT NULL")
    limit, offset = max(1, min(f.limit, MAX_LIMIT)), max(0, f.offset)
    direction = "DESC" if descending else "ASC"
    rows = store.query(
        "SELECT session_id, MIN(start_time) AS first_call, MAX(start_time) AS last_call, "
        f"MAX(end_time) AS ended, {AGGREGATES}, {SESSION_FACTS} FROM {table}{where} GROUP BY session_id "
        f"ORDER BY {SESSION_SORTS[sort]} {direction}, session_id {direction} LIMIT ? OFFSET ?",
        [*head, *params, limit, offset],
    )
    total = store.query(f"SELECT COUNT(DISTINCT session_id) AS n FROM {table}{where}", [*head, *params])[0]["n"]
    sessions = [session_facts(buckets(row)) for row in rows]
    _add_breakdown(store, f, sessions, table, head)
    _add_tool_calls(store, f, sessions, table, head)
    if prices_for is not None and sessions:
        ids = [x["session_id"] for x in sessions]
        where, params = _where(f, f"session_id IN ({','.join('?' * len(ids))})")
        parts = _cache_parts(store, table, head, "session_id", where, [*params, *ids])
        add_cache_value(sessions, "session_id", parts, prices_for)
    return {"data": sessions, "total": int(total or 0), "limit": limit, "offset": offset, "sort": sort}


def _add_breakdown(store: Store, f: TraceFilter, sessions: list[dict[str, Any]], table: str, head: list[Any]) -> None:
    """Each session's tools, users and models, most calls first (a second grouped query: lists of names
    have no portable SQL aggregate)."""
    if not sessions:
        return
    ids = [s["session_id"] for s in sessions]
    where, params = _where(f, f"session_id IN ({','.join('?' * len(ids))})")
    parts = store.query(
        f"SELECT session_id, client, user_id, {MODEL} AS model, repo, branch, COUNT(*) AS calls "
        f"FROM {table}{where} GROUP BY session_id, client, user_id, {MODEL}, repo, branch",
        [*head, *params, *ids],
    )
    names = ("client", "user_id", "model", "repo", "branch")
    tally: dict[str, dict[str, dict[Any, int]]] = {i: {n: {} for n in names} for i in ids}
    for part in parts:
        counts = tally[part["session_id"]]
        for column in names:
            counts[column][part[column]] = counts[column].get(part[column], 0) + int(part["calls"])
    for session in sessions:
        counts = tally[session["session_id"]]
        clients, users = _ranked(counts["client"]), _ranked(counts["user_id"])
        session["client"] = clients[0] if clients else None
        session["user"] = users[0] if users else None
        session["clients"], session["users"] = clients, users
        session["models"] = _ranked(counts["model"])
        session["repos"], session["branches"] = _ranked(counts["repo"]), _ranked(counts["branch"])


def session_facts(row: dict[str, Any]) -> dict[str, Any]:
    """Retries are the gateway's own and the client's re-sends of a failed request, added up; a session is
    derived when the helper assigned its id (or, for calls stored before that, `derive` did)."""
    for name in ("subagent_calls", "gateway_retries", "client_resends"):
        row[name] = int(row.get(name) or 0)
    row["retries"] = row["gateway_retries"] + row["client_resends"]
    row["derived"] = bool(row.get("derived")) or str(row.get("session_id") or "").startswith(DERIVED_PREFIX)
    return row


def _add_tool_calls(store: Store, f: TraceFilter, sessions: list[dict[str, Any]], table: str, head: list[Any]) -> None:
    """Each session's tool calls by tool name, most first: the per-call {name: count} JSON, grouped by its text
    in SQL (a session repeats the same few) and added up here (JSON functions differ between the engines)."""
    if not sessions:
        return
    ids = [s["session_id"] for s in sessions]
    where, params = _where(f, f"session_id IN ({','.join('?' * len(ids))})", "tool_calls IS NOT NULL")
    parts = store.query(
        f"SELECT session_id, tool_calls, COUNT(*) AS calls FROM {table}{where} GROUP BY session_id, tool_calls",
        [*head, *params, *ids],
    )
    totals: dict[str, dict[str, int]] = {i: {} for i in ids}
    for part in parts:
        counts = totals[part["session_id"]]
        for name, count in tool_counts(part["tool_calls"]).items():
            counts[name] = counts.get(name, 0) + count * int(part["calls"])
    for session in sessions:
        counts = totals[session["session_id"]]
        session["tool_calls"] = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
        session["tool_call_count"] = sum(counts.values())


def _ranked(counts: dict[Any, int]) -> list[Any]:
    return [name for name, _ in sorted(counts.items(), key=lambda item: (-item[1], str(item[0]))) if name]


def get_session(
    store: Store, session_id: str, f: TraceFilter | None = None, prices_for: Pricing | None = None
) -> dict[str, Any] | None:
    """A session's summary and its calls in order, each with its buckets, cost, what the cache saved and
    whether it broke."""
    scoped = replace(f or TraceFilter(), session=session_id, limit=1, offset=0, status=None)
    found = list_sessions(store, scoped, prices_for=prices_for)["data"]
    derive = not found and session_id.startswith(DERIVED_PREFIX)  # calls stored before ids were assigned
    if derive:
        found = list_sessions(store, scoped, derive=True, prices_for=prices_for)["data"]
    if not found:
        return None
    table, head = _source(derive)
    where, params = _where(scoped)
    calls = store.query(
        f"SELECT {','.join(SUMMARY_COLUMNS)} FROM {table}{where} ORDER BY start_time, trace_id LIMIT ?",
        [*head, *params, 5000],
    )
    for turn, call in enumerate(calls, start=1):
        call["turn"] = turn
        call["tool_calls"] = tool_counts(call["tool_calls"])
        call["resent"], call["session_derived"] = bool(call["resent"]), bool(call["session_derived"])
        call["retries"] = int(call["retries"] or 0)
        call["unpriced"] = call["cost_total"] is None and bool(call["input_tokens"] or call["output_tokens"])
        call["fresh_input_tokens"] = max(
            0, (call["input_tokens"] or 0) - (call["cache_read_tokens"] or 0) - (call["cache_write_tokens"] or 0)
        )
        if prices_for is not None:
            prices = _prices_of(prices_for, call["requested_model"], call["resolved_model"], call["provider"])
            value = cache_value(call["cache_read_tokens"] or 0, call["cache_write_tokens"] or 0, prices)
            call["cache_saved_usd"] = value.saved if value is not None else None
    explain(store, calls)
    return {**found[0], "turns": calls}


def usage_by(store: Store, f: TraceFilter, group_by: str, prices_for: Pricing | None = None) -> dict[str, Any]:
    """Calls, token buckets, cost and unpriced calls per client, user, model, key or session, and in all."""
    if group_by not in GROUPS:
        raise ValueError(f"unknown group {group_by!r}")
    expr = GROUPS[group_by]
    where, params = _where(f)
    limit, offset = max(1, min(f.limit, MAX_LIMIT)), max(0, f.offset)
    rows = store.query(
        f"SELECT {expr} AS grp, MIN(start_time) AS first_call, MAX(start_time) AS last_call, {AGGREGATES} "
        f"FROM traces{where} GROUP BY {expr} ORDER BY COALESCE(SUM(cost_total), 0) DESC, COUNT(*) DESC, {expr} "
        "LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    data = [buckets({group_by: row.pop("grp"), **row}) for row in rows]
    total = buckets(store.query(f"SELECT {AGGREGATES} FROM traces{where}", params)[0])
    if prices_for is not None:
        parts = _cache_parts(store, "traces", [], expr, where, params)  # every group's, not only this page's
        add_cache_value(data, group_by, parts, prices_for)
        everything = [{**part, "grp": None} for part in parts]
        total["grp"] = None
        add_cache_value([total], "grp", everything, prices_for)
        del total["grp"]
    return {"group_by": group_by, "data": data, "total": total, "limit": limit, "offset": offset}


def unpriced_models(store: Store, f: TraceFilter) -> dict[str, Any]:
    """Models whose calls used tokens but have no price, with the `model_info` that prices them."""
    where, params = _where(f, UNPRICED)
    rows = store.query(
        "SELECT requested_model, resolved_model, provider, COUNT(*) AS calls, SUM(input_tokens) AS input_tokens, "
        "SUM(cache_read_tokens) AS cache_read_tokens, SUM(cache_write_tokens) AS cache_write_tokens, "
        "SUM(output_tokens) AS output_tokens, SUM(reasoning_tokens) AS reasoning_tokens, "
        "MIN(start_time) AS first_call, MAX(start_time) AS last_call "
        f"FROM traces{where} GROUP BY requested_model, resolved_model, provider "
        "ORDER BY COUNT(*) DESC, requested_model",
        params,
    )
    out = []
    for row in rows:
        row = buckets(row)
        row["snippet"] = price_snippet(row)
        out.append(row)
    return {"data": out, "unpriced_calls": sum(row["calls"] for row in out)}


def price_snippet(row: dict[str, Any]) -> str:
    """The LiteLLM-format `model_list` entry with the price fields this model's calls need, left null: a
    null price is ignored, so a pasted snippet never makes a model look free until its numbers are filled in."""
    model = row.get("resolved_model") or row.get("requested_model") or ""
    provider = row.get("provider") or ""
    fields = ["input_cost_per_token", "output_cost_per_token"]
    if row.get("cache_read_tokens"):
        fields.append("cache_read_input_token_cost")
    if row.get("cache_write_tokens"):
        fields.append("cache_creation_input_token_cost")
    lines = [
        f"- model_name: {row.get('requested_model') or model}",
        "  litellm_params:",
        f"    model: {provider + '/' if provider and not model.startswith(provider + '/') else ''}{model}",
        "  model_info:  # USD per token: $3 per million tokens is 0.000003",
        *(f"    {name}: null" for name in fields),
    ]
    return "\n".join(lines) + "\n"


def _prices_of(prices_for: Pricing, requested: str | None, resolved: str | None, provider: str | None) -> Prices | None:
    probe = CallRecord(trace_id="", route="", start_time=0.0)
    probe.requested_model, probe.resolved_model, probe.provider = requested or "", resolved or "", provider or ""
    return prices_for(probe)


def add_cache_value(rows: list[dict[str, Any]], key: str, parts: list[dict[str, Any]], prices_for: Pricing) -> None:
    """`cache_saved_usd` and `cache_write_premium_usd` per row, from its cache tokens per model (`parts`: key,
    requested_model, resolved_model, provider, cache_read_tokens, cache_write_tokens); None where no model
    with cache tokens has a price."""
    totals: dict[Any, list[float]] = {}
    for part in parts:
        prices = _prices_of(prices_for, part["requested_model"], part["resolved_model"], part["provider"])
        value = cache_value(int(part["cache_read_tokens"] or 0), int(part["cache_write_tokens"] or 0), prices)
        if value is not None:
            saved = totals.setdefault(part["grp"], [0.0, 0.0])
            saved[0] += value.saved
            saved[1] += value.write_premium
    for row in rows:
        found = totals.get(row[key])
        row["cache_saved_usd"] = round(found[0], 10) if found else None
        row["cache_write_premium_usd"] = round(found[1], 10) if found else None


def _cache_parts(
    store: Store, table: str, head: list[Any], expr: str, where: str, params: list[Any]
) -> list[dict[str, Any]]:
    where = (where + " AND " if where else " WHERE ") + "(cache_read_tokens > 0 OR cache_write_tokens > 0)"
    return store.query(
        f"SELECT {expr} AS grp, requested_model, resolved_model, provider, SUM(cache_read_tokens) AS "
        f"cache_read_tokens, SUM(cache_write_tokens) AS cache_write_tokens FROM {table}{where} "
        f"GROUP BY {expr}, requested_model, resolved_model, provider",
        [*head, *params],
    )
