"""Read queries over the local store, shared by the HTTP read API, the CLI and the dashboard.

Filters arrive as plain values; every value is bound as a SQL parameter, never formatted in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import blobs
from .records import SUMMARY_COLUMNS
from .storage import TraceStore

MAX_LIMIT = 500


@dataclass(frozen=True)
class TraceFilter:
    user: str | None = None
    session: str | None = None
    model: str | None = None
    status: str | None = None  # "ok", "error", or an HTTP status code
    since: float | None = None  # epoch seconds
    until: float | None = None
    limit: int = 50
    offset: int = 0
    client: str | None = None  # a normalized tool name (accounting/clients.py)

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.user is not None:
            clauses.append("user_id = ?")
            params.append(self.user)
        if self.session is not None:
            clauses.append("session_id = ?")
            params.append(self.session)
        if self.client is not None:
            clauses.append("client = ?")
            params.append(self.client)
        if self.model is not None:
            clauses.append("(resolved_model = ? OR requested_model = ?)")
            params += [self.model, self.model]
        if self.status == "ok":
            clauses.append("status_code < 400 AND error_type IS NULL")
        elif self.status == "error":
            clauses.append("(status_code >= 400 OR error_type IS NOT NULL)")
        elif self.status is not None:
            clauses.append("status_code = ?")
            params.append(int(self.status))
        if self.since is not None:
            clauses.append("start_time >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("start_time < ?")
            params.append(self.until)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def list_traces(store: TraceStore, f: TraceFilter) -> dict[str, Any]:
    where, params = f.where()
    limit = max(1, min(f.limit, MAX_LIMIT))
    offset = max(0, f.offset)
    rows = store.query(
        f"SELECT {','.join(SUMMARY_COLUMNS)} FROM traces{where} ORDER BY start_time DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    total = store.query(f"SELECT COUNT(*) AS n FROM traces{where}", params)[0]["n"]
    return {"data": rows, "total": total, "limit": limit, "offset": offset}


def get_trace(store: TraceStore, trace_id: str) -> dict[str, Any] | None:
    rows = store.query(
        f"SELECT {','.join(SUMMARY_COLUMNS)}, record, input_refs FROM traces WHERE trace_id = ?", [trace_id]
    )
    if not rows:
        return None
    row = rows[0]
    record = blobs.record_of(store, row)  # the input put back from its stored blocks
    row.update(
        {
            k: record.get(k)
            for k in (
                "input",
                "output",
                "metadata",
                "model_parameters",
                "finish_reason",
                "error_message",
                "completion_start_time",
                "usage",
                "cost",
                "client_version",
            )
        }
    )
    if row.get("total_tokens") is None:  # unknown usage (a stream cut off before it was reported)
        row["usage"] = None
    row["scores"] = [
        {**score, "value": float(score["value"]) if score["data_type"] in ("NUMERIC", "BOOLEAN") else score["value"]}
        for score in store.query(
            "SELECT id, name, value, data_type, comment, created FROM scores WHERE trace_id = ? ORDER BY created",
            [trace_id],
        )
    ]
    return row


def list_sessions(store: TraceStore, f: TraceFilter) -> dict[str, Any]:
    where, params = TraceFilter(user=f.user, model=f.model, since=f.since, until=f.until).where()
    where = (where + " AND " if where else " WHERE ") + "session_id IS NOT NULL"
    limit = max(1, min(f.limit, MAX_LIMIT))
    rows = store.query(
        "SELECT session_id, MIN(start_time) AS first_seen, MAX(end_time) AS last_seen, COUNT(*) AS calls, "
        f"{store.dialect.concat_distinct.format('user_id')} AS users, SUM(input_tokens) AS input_tokens, "
        "SUM(output_tokens) AS output_tokens, SUM(total_tokens) AS total_tokens, "
        "SUM(COALESCE(cost_total, 0)) AS cost_total, "
        "SUM(CASE WHEN status_code >= 400 OR error_type IS NOT NULL THEN 1 ELSE 0 END) AS errors "
        f"FROM traces{where} GROUP BY session_id ORDER BY last_seen DESC LIMIT ? OFFSET ?",
        [*params, limit, max(0, f.offset)],
    )
    return {"data": rows, "limit": limit, "offset": max(0, f.offset)}


_MODEL = "COALESCE(NULLIF(resolved_model, ''), requested_model)"


def usage(store: TraceStore, f: TraceFilter) -> dict[str, Any]:
    """Tokens and cost grouped by model, by user, by day, and by day and model (for charts)."""
    where, params = TraceFilter(
        user=f.user, session=f.session, model=f.model, since=f.since, until=f.until, client=f.client
    ).where()
    totals = (
        "COUNT(*) AS calls, SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, "
        "SUM(total_tokens) AS total_tokens, SUM(cache_read_tokens) AS cache_read_tokens, "
        "SUM(cost_total) AS cost_total, "
        "SUM(CASE WHEN cost_total IS NULL AND (input_tokens > 0 OR output_tokens > 0) THEN 1 ELSE 0 END) "
        "AS unpriced_calls"
    )
    out: dict[str, Any] = {}
    groups = {"model": _MODEL, "user": "user_id", "day": store.dialect.day}
    for name, expr in groups.items():
        out[f"by_{name}"] = store.query(
            f"SELECT {expr} AS {name}, {totals} FROM traces{where} GROUP BY 1 ORDER BY cost_total DESC, calls DESC",
            params,
        )
    out["by_day_model"] = store.query(
        f"SELECT {store.dialect.day} AS day, {_MODEL} AS model, {totals} FROM traces{where} "
        "GROUP BY 1, 2 ORDER BY 1, 2",
        params,
    )
    out["total"] = store.query(f"SELECT {totals} FROM traces{where}", params)[0]
    return out
