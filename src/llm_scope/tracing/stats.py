"""Aggregates the dashboard charts need beyond `queries.usage`: latency percentiles over time and spend by
user per day.

Percentiles are nearest-rank (the value at rank ceil(n * p / 100)), computed in SQLite with window functions
so no per-call rows are pulled into Python. Buckets are UTC, like `queries.usage`'s days.
"""

from __future__ import annotations

from typing import Any

from .queries import TraceFilter
from .storage import TraceStore

BUCKETS = ("day", "hour")
PERCENTILES = (50, 95)


def _percentiles(store: TraceStore, column: str, bucket: str, where: str, params: list[Any]) -> list[dict[str, Any]]:
    """Per bucket: how many values and their nearest-rank percentiles, for one nullable column."""
    ranks = ", ".join(f"MAX(CASE WHEN rn = (n * {p} + 99) / 100 THEN v END) AS p{p}" for p in PERCENTILES)
    where = (where + " AND " if where else " WHERE ") + f"{column} IS NOT NULL"
    expr = store.dialect.bucket(bucket)
    return store.query(
        f"WITH ranked AS (SELECT {expr} AS bucket, {column} AS v, "
        f"ROW_NUMBER() OVER (PARTITION BY {expr} ORDER BY {column}) AS rn, "
        f"COUNT(*) OVER (PARTITION BY {expr}) AS n FROM traces{where}) "
        f"SELECT bucket, MAX(n) AS n, {ranks} FROM ranked GROUP BY bucket ORDER BY bucket",
        params,
    )


def latency(store: TraceStore, f: TraceFilter, bucket: str = "day") -> list[dict[str, Any]]:
    """p50/p95 of total duration and of time to first token per bucket, over successful calls only.

    Failed calls are left out: an instant 401 or a 30 s timeout says nothing about how fast the models are.
    """
    if bucket not in BUCKETS:
        raise ValueError(f"unknown bucket {bucket!r}")
    where, params = TraceFilter(
        user=f.user, session=f.session, model=f.model, status="ok", since=f.since, until=f.until, client=f.client
    ).where()
    out: dict[str, dict[str, Any]] = {}
    for column, prefix in (("duration_ms", "duration"), ("ttft_ms", "ttft")):
        for row in _percentiles(store, column, bucket, where, params):
            entry = out.setdefault(row["bucket"], {"bucket": row["bucket"], "calls": 0})
            if prefix == "duration":
                entry["calls"] = row["n"]
            for p in PERCENTILES:
                entry[f"{prefix}_p{p}_ms"] = row[f"p{p}"]
    return [out[k] for k in sorted(out)]


def usage_by_day_user(store: TraceStore, f: TraceFilter) -> list[dict[str, Any]]:
    """Calls, tokens and cost per UTC day and user (calls without a user are grouped under null)."""
    where, params = TraceFilter(
        user=f.user, session=f.session, model=f.model, since=f.since, until=f.until, client=f.client
    ).where()
    return store.query(
        f"SELECT {store.dialect.day} AS day, user_id AS user, COUNT(*) AS calls, "
        "SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, "
        "SUM(total_tokens) AS total_tokens, SUM(cost_total) AS cost_total, "
        "SUM(CASE WHEN cost_total IS NULL AND (input_tokens > 0 OR output_tokens > 0) THEN 1 ELSE 0 END) "
        "AS unpriced_calls "
        f"FROM traces{where} GROUP BY 1, 2 ORDER BY 1, 2",
        params,
    )


def dashboard_stats(store: TraceStore, f: TraceFilter, bucket: str = "day") -> dict[str, Any]:
    return {"bucket": bucket, "latency": latency(store, f, bucket), "by_day_user": usage_by_day_user(store, f)}
