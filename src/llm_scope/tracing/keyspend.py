"""What each virtual key spent today and this month, from the trace store: the Keys page and budget alerts.

Read-side only, off the request path, on the store's thread. The budgets themselves are enforced from
in-memory (or Redis) counters; this is the record of what was actually stored, so it is what a person reads
and what an alert quotes. The SQL is plain enough for SQLite and PostgreSQL alike (SUM, CASE, MAX), and it
reads the `traces_key (key_id, start_time)` index both stores have.

Honest cost: SUM(cost_total) skips NULLs, so `usd` is what the priced calls cost (None when none was) and
`unpriced_calls` counts the calls that used tokens but have no price. A key with no calls at all spent a
known $0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .insight import UNPRICED
from .storage import TraceStore


@dataclass(frozen=True)
class Spend:
    calls: int = 0
    usd: float | None = 0.0  # priced calls' cost; None: calls were made and none of them had a price
    unpriced_calls: int = 0

    def public(self) -> dict[str, Any]:
        return {"calls": self.calls, "usd": self.usd, "unpriced_calls": self.unpriced_calls}


@dataclass(frozen=True)
class KeySpend:
    day: Spend
    month: Spend
    last_used: float | None


def window_starts(at: float) -> tuple[float, float]:
    """Epoch seconds of the UTC day's and month's first moment (the budgets' windows)."""
    now = time.gmtime(at)
    day = at - (now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec + (at % 1))
    return day, day - (now.tm_mday - 1) * 86400


def window_names(at: float) -> tuple[str, str]:
    """The UTC day (YYYY-MM-DD) and month (YYYY-MM) the budgets count in."""
    now = time.gmtime(at)
    return time.strftime("%Y-%m-%d", now), time.strftime("%Y-%m", now)


def _spend(calls: Any, usd: Any, unpriced: Any) -> Spend:
    count = int(calls or 0)
    return Spend(
        calls=count,
        usd=round(float(usd), 10) if usd is not None else (None if count else 0.0),
        unpriced_calls=int(unpriced or 0),
    )


def key_spend(store: TraceStore, at: float | None = None, last_used: bool = True) -> dict[str, KeySpend]:
    """Every key's spend this UTC day and month, and (`last_used`) when it was last used, whenever that was: a
    second query over every call with a key, which the budget alerts, asking every few seconds, leave out."""
    day_start, month_start = window_starts(time.time() if at is None else at)
    rows = store.query(
        "SELECT key_id, COUNT(*) AS month_calls, SUM(cost_total) AS month_usd, "
        f"SUM(CASE WHEN {UNPRICED} THEN 1 ELSE 0 END) AS month_unpriced, "
        "SUM(CASE WHEN start_time >= ? THEN 1 ELSE 0 END) AS day_calls, "
        "SUM(CASE WHEN start_time >= ? THEN cost_total END) AS day_usd, "
        f"SUM(CASE WHEN start_time >= ? AND {UNPRICED} THEN 1 ELSE 0 END) AS day_unpriced "
        "FROM traces WHERE key_id IS NOT NULL AND start_time >= ? GROUP BY key_id",
        [day_start, day_start, day_start, month_start],
    )
    if last_used:
        last = store.query(
            "SELECT key_id, MAX(start_time) AS last_used FROM traces WHERE key_id IS NOT NULL GROUP BY key_id"
        )
    else:
        last = [{"key_id": row["key_id"], "last_used": None} for row in rows]
    month = {row["key_id"]: row for row in rows}
    out: dict[str, KeySpend] = {}
    for row in last:
        found = month.get(row["key_id"])
        if found is None:
            day_spend = month_spend = Spend()
        else:
            day_spend = _spend(found["day_calls"], found["day_usd"], found["day_unpriced"])
            month_spend = _spend(found["month_calls"], found["month_usd"], found["month_unpriced"])
        used = row["last_used"]
        out[row["key_id"]] = KeySpend(day_spend, month_spend, float(used) if used is not None else None)
    return out
