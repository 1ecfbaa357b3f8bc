"""Read queries over the local store, shared by the HTTP read API, the CLI and the dashboard.

Filters arrive as plain values; every value is bound as a SQL parameter, never formatted in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import blobs
from .records import SUMMARY_COLUMNS
from .storage import TraceStore

MAX_LIMIT = 500

# A call is *rejected* when it failed before any deployment was chosen: an unknown model name, a request that
# failed validation, a bad key, a budget or rate limit the gateway enforces. No upstream was asked, so nothing
# was billed (`accounting.usage.refused_before_answer` holds for every such call) and the name it carries is
# whatever the client typed. The gateway sets `resolved_model` as it picks a deployment, so an empty one on a
# failure is the mark. Model lists group these calls under one REJECTED_NAME row instead of one row per typo;
# the call list's `status=rejected` shows them with the names they carried.
ERROR = "(status_code >= 400 OR error_type IS NOT NULL)"
REJECTED = f"({ERROR} AND COALESCE(resolved_model, '') = '')"
REJECTED_NAME = "(rejected)"
MODEL = f"CASE WHEN {REJECTED} THEN '{REJECTED_NAME}' ELSE COALESCE(NULLIF(resolved_model, ''), requested_model) END"
# Cost by bucket, each disjoint (they add up to cost_total, as Langfuse's cost_details do): input neither read
# from nor written to the cache, cache reads, cache writes, output other than reasoning, reasoning. SUM skips
# NULL, so a bucket is NULL (unknown) where no call in the group has a known price, and `cost_unsplit_calls`
# counts priced calls whose parts are unknown (stored before the parts were kept, in a record that could not
# be read back), whose cost is in cost_total but in no bucket.
COST_BUCKETS = (
    "SUM(cost_input - cost_cache_read - cost_cache_write) AS cost_fresh_input, "
    "SUM(cost_cache_read) AS cost_cache_read, SUM(cost_cache_write) AS cost_cache_write, "
    "SUM(cost_output - cost_reasoning) AS cost_plain_output, SUM(cost_reasoning) AS cost_reasoning, "
    "SUM(CASE WHEN cost_total IS NOT NULL AND cost_cache_read IS NULL THEN 1 ELSE 0 END) AS cost_unsplit_calls"
)
COST_BUCKET_NAMES = ("cost_fresh_input", "cost_cache_read", "cost_cache_write", "cost_plain_output", "cost_reasoning")


def money(row: dict[str, Any]) -> dict[str, Any]:
    """Sums of dollars rounded as each part was (1e-10), so 0.1 - 0.03 does not read 0.07000000000000001; the
    unsplit count as an int (PostgreSQL's SUM of ints is a Decimal)."""
    for name in ("cost_total", *COST_BUCKET_NAMES):
        if row.get(name) is not None:
            row[name] = round(float(row[name]), 10)
    if "cost_unsplit_calls" in row:
        row["cost_unsplit_calls"] = int(row["cost_unsplit_calls"] or 0)
    return row


@dataclass(frozen=True)
class TraceFilter:
    user: str | None = None
    session: str | None = None
    model: str | None = None
    status: str | None = None  # "ok", "error", "rejected" (see REJECTED), or an HTTP status code
    since: float | None = None  # epoch seconds
    until: float | None = None
    limit: int = 50
    offset: int = 0
    client: str | None = None  # a normalized tool name (accounting/clients.py)

    def where(self) -> tuple[str, list[Any]]:
        """The WHERE clause and its parameters: a column against a value, for each filter given; the model
        and the status have rules of their own."""
        given = (
            ("user_id = ?", self.user),
            ("session_id = ?", self.session),
            ("client = ?", self.client),
            ("start_time >= ?", self.since),
            ("start_time < ?", self.until),
        )
        clauses = [clause for clause, value in given if value is not None]
        params: list[Any] = [value for _, value in given if value is not None]
        if self.model == REJECTED_NAME:  # the one row model lists show for them
            clauses.append(REJECTED)
        elif self.model is not None:
            clauses.append("(resolved_model = ? OR requested_model = ?)")
            params += [self.model, self.model]
        if self.status == "ok":
            clauses.append("status_code < 400 AND error_type IS NULL")
        elif self.status == "error":
            clauses.append(ERROR)
        elif self.status == "rejected":
            clauses.append(REJECTED)
        elif self.status is not None:
            clauses.append("status_code = ?")
            params.append(int(self.status))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def list_traces(store: TraceStore, f: TraceFilter, max_limit: int = MAX_LIMIT) -> dict[str, Any]:
    where, params = f.where()
    limit = max(1, min(f.limit, max_limit))
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
    row["tool_calls"] = tool_counts(row["tool_calls"]) or None  # {name: count}, as the sessions API gives it
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
        f"AS unpriced_calls, {COST_BUCKETS}"
    )
    out: dict[str, Any] = {}
    groups = {"model": MODEL, "user": "user_id", "day": store.dialect.day}
    for name, expr in groups.items():
        out[f"by_{name}"] = [
            money(row)
            for row in store.query(
                f"SELECT {expr} AS {name}, {totals} FROM traces{where} GROUP BY 1 ORDER BY cost_total DESC, calls DESC",
                params,
            )
        ]
    out["by_day_model"] = [
        money(row)
        for row in store.query(
            f"SELECT {store.dialect.day} AS day, {MODEL} AS model, {totals} FROM traces{where} "
            "GROUP BY 1, 2 ORDER BY 1, 2",
            params,
        )
    ]
    out["total"] = money(store.query(f"SELECT {totals} FROM traces{where}", params)[0])
    out["rejected_name"] = REJECTED_NAME
    return out


def tool_counts(stored: Any) -> dict[str, int]:
    """A stored tool_calls cell as {name: count} ({} for NULL or anything unreadable)."""
    if not stored:
        return {}
    try:
        value = json.loads(stored)
    except ValueError:
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, int)} if isinstance(value, dict) else {}
