"""Budget alerts: a webhook POST when a key's spend crosses 80% and 100% of its daily or monthly budget.

Never on the request path: a loop beside the gateway reads each key's spend from the trace store every
`interval` seconds (`keyspend`), and what crossed a threshold is claimed in a small table of that store
(`budget_alerts`, one row per key, period, window and threshold) before anything is sent. The row is the
memory of what was sent, durably: a restart, another worker on the same data dir, or (with DATABASE_URL)
another instance on the same PostgreSQL finds it there and sends nothing again. Delivery takes the due rows
with one UPDATE (a lease: only one worker gets a row), POSTs each, and marks it delivered; a failure sets the
next try with exponential backoff, so an alert is delivered at least once after the webhook comes back, and
one whose sender died mid-POST is retried when its lease runs out.

The body is JSON with Slack's `text` field and the same facts as fields. It names the key by its id and owner,
never by its secret or hint; the webhook URL (which may carry a token, like Slack's) is logged by host only.
The POST goes through the standard library on a thread: one small request now and then needs no pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from .handoff import TraceHandoff
from .keyspend import KeySpend, key_spend, window_names
from .storage import TraceStore

log = logging.getLogger("llm_scope.alerts")
THRESHOLDS = (80, 100)  # percent of a budget
LEASE_SECONDS = 60.0  # a row being sent is not due again for this long (a sender that died is retried after it)
MAX_BACKOFF_SECONDS = 300.0
POST_TIMEOUT_SECONDS = 10.0
KEEP_SECONDS = 62 * 86400  # delivered alerts are remembered past the month they were for
_REAL = "DOUBLE PRECISION"  # SQLite reads it as REAL; PostgreSQL's REAL would be single precision
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS budget_alerts (key_id TEXT NOT NULL, period TEXT NOT NULL, "
    "period_id TEXT NOT NULL, threshold INTEGER NOT NULL, owner TEXT NOT NULL, "
    f"budget_usd {_REAL} NOT NULL, spend_usd {_REAL} NOT NULL, unpriced_calls INTEGER NOT NULL, "
    f"crossed_at {_REAL} NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_try {_REAL} NOT NULL, "
    f"delivered {_REAL}, PRIMARY KEY (key_id, period, period_id, threshold))"
)
_PK = "key_id = ? AND period = ? AND period_id = ? AND threshold = ?"
PERIOD_NAMES = {"day": "daily", "month": "monthly"}


class Budgeted(Protocol):
    """What the alerts read of a virtual key (access.keys.VirtualKey, which tracing does not import)."""

    @property
    def id(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def budget_daily_usd(self) -> float | None: ...
    @property
    def budget_monthly_usd(self) -> float | None: ...


@dataclass(frozen=True)
class Alert:
    key_id: str
    owner: str
    period: str  # "day" or "month"
    period_id: str  # the UTC day (YYYY-MM-DD) or month (YYYY-MM)
    threshold: int  # percent
    budget_usd: float
    spend_usd: float
    unpriced_calls: int
    crossed_at: float

    @property
    def ident(self) -> tuple[str, str, str, int]:
        return self.key_id, self.period, self.period_id, self.threshold

    def body(self) -> dict[str, Any]:
        """The webhook's JSON: Slack's `text`, and every fact as a field for anything else."""
        name = PERIOD_NAMES.get(self.period, self.period)
        share = self.spend_usd / self.budget_usd * 100 if self.budget_usd > 0 else 100.0
        verb = "has used up" if self.threshold >= 100 else f"has passed {self.threshold}% of"
        unpriced = f", plus {self.unpriced_calls} unpriced call(s)" if self.unpriced_calls else ""
        text = (
            f"llm-scope: key {self.key_id} ({self.owner}) {verb} its {name} budget: "
            f"${self.spend_usd:.4f} of ${self.budget_usd:g} ({share:.0f}%){unpriced}, {self.period_id} UTC"
        )
        return {"text": text, "event": "budget_threshold_crossed", **asdict(self), "period_name": name}


def crossings(budgets: Sequence[Budgeted], spend: dict[str, KeySpend], day: str, month: str, now: float) -> list[Alert]:
    """Every threshold each key's spend is at or past, for its daily and monthly budget (a pure function; the
    table remembers which were sent). A jump past both thresholds at once crosses both."""
    found: list[Alert] = []
    for key in budgets:
        used = spend.get(key.id)
        for period, period_id, limit in (("day", day, key.budget_daily_usd), ("month", month, key.budget_monthly_usd)):
            if limit is None or limit <= 0 or used is None:
                continue  # a zero budget refuses every call: there is nothing to warn of
            part = used.day if period == "day" else used.month
            usd = part.usd or 0.0  # unpriced calls are not in it: the alert names them beside it
            for threshold in THRESHOLDS:
                if usd >= limit * threshold / 100:
                    found.append(
                        Alert(
                            key.id,
                            key.owner,
                            period,
                            period_id,
                            threshold,
                            limit,
                            usd,
                            part.unpriced_calls,
                            now,
                        )
                    )
    return found


# --- the table (sync: run on the store's thread) --------------------------------------------------------------


def ensure_table(store: TraceStore, now: float) -> None:
    """Create the table if need be (the seam's query runs any statement; this one is idempotent on both engines),
    and forget delivered alerts of windows long past: a few rows per key and day are all it ever holds."""
    store.query(SCHEMA)
    store.query("DELETE FROM budget_alerts WHERE delivered IS NOT NULL AND crossed_at < ?", [now - KEEP_SECONDS])


def claim(store: TraceStore, alerts: Sequence[Alert], now: float) -> int:
    """Remember alerts not seen before (due at once); returns how many were new."""
    new = 0
    for a in alerts:
        rows = store.query(
            "INSERT INTO budget_alerts (key_id, period, period_id, threshold, owner, budget_usd, spend_usd, "
            "unpriced_calls, crossed_at, next_try) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (key_id, period, period_id, threshold) DO NOTHING RETURNING key_id",
            [*a.ident, a.owner, a.budget_usd, a.spend_usd, a.unpriced_calls, a.crossed_at, now],
        )
        new += len(rows)
    return new


def take_due(store: TraceStore, now: float, lease_until: float) -> list[tuple[Alert, int]]:
    """The undelivered alerts due now, each leased to this caller alone (one UPDATE takes them), with its attempts."""
    rows = store.query(
        "UPDATE budget_alerts SET next_try = ? WHERE delivered IS NULL AND next_try <= ? RETURNING *",
        [lease_until, now],
    )
    rows.sort(key=lambda r: (r["crossed_at"], r["threshold"]))
    return [
        (
            Alert(
                r["key_id"],
                r["owner"],
                r["period"],
                r["period_id"],
                int(r["threshold"]),
                float(r["budget_usd"]),
                float(r["spend_usd"]),
                int(r["unpriced_calls"]),
                float(r["crossed_at"]),
            ),
            int(r["attempts"]),
        )
        for r in rows
    ]


def settle(store: TraceStore, alert: Alert, delivered: float | None, attempts: int, next_try: float) -> None:
    """Delivered at `delivered`, or (None) due again at `next_try`."""
    store.query(
        f"UPDATE budget_alerts SET delivered = ?, attempts = ?, next_try = ? WHERE {_PK}",
        [delivered, attempts, next_try, *alert.ident],
    )


def sent(store: TraceStore) -> list[dict[str, Any]]:
    """Every remembered alert, oldest first (for tests and operators)."""
    return store.query("SELECT * FROM budget_alerts ORDER BY crossed_at, threshold")


# --- the loop ----------------------------------------------------------------------------------------------------


def post_json(url: str, body: bytes, timeout: float = POST_TIMEOUT_SECONDS) -> str | None:
    """POST; None when the webhook took it (2xx), else why not. No redirects, no proxy from the environment."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"content-type": "application/json", "user-agent": "llm-scope"}
    )
    try:
        with opener.open(request, timeout=timeout) as resp:
            resp.read()
            return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return type(getattr(exc, "reason", exc)).__name__  # never the message: it may hold the URL


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def safe_target(url: str) -> str:
    """The webhook as logs may show it: scheme and host (a Slack webhook's path is its token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}"


class BudgetAlerts:
    def __init__(
        self,
        url: str | None,
        pipeline: TraceHandoff,
        keys: Callable[[], Sequence[Budgeted]],
        *,
        interval: float = 10.0,
        observe: Callable[[int, bool], None] | None = None,
    ) -> None:
        """Off (start does nothing) without a URL; a URL that is not http(s) stops start-up here.

        `observe(threshold, delivered)` hears every delivery attempt (the budget-alerts metric)."""
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("LLM_SCOPE_BUDGET_WEBHOOK_URL must be an http(s) URL")
        self.url = url
        self.pipeline = pipeline
        self.keys = keys
        self.interval = interval
        self.observe = observe
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0  # finished checks (tests wait on it instead of on the clock)
        self.delivered = 0
        self.failures = 0
        self._tidy_at = 0.0  # when to (create and) tidy the table next: at the first check, then hourly
        self._last_warning = 0.0

    def start(self) -> None:
        if self.url and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="llm-scope-budget-alerts")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:  # a key store or trace store that is down: try again next time
                if time.monotonic() - self._last_warning > 60:
                    self._last_warning = time.monotonic()
                    log.warning("budget alerts: check failed (%s); retrying", type(exc).__name__)
            self.ticks += 1
            await asyncio.sleep(self.interval)

    async def tick(self) -> None:
        read, store = self.pipeline.read, self.pipeline.store
        now = time.time()
        if now > self._tidy_at:
            await read(ensure_table, store, now)
            self._tidy_at = now + 3600
        keys = await asyncio.get_running_loop().run_in_executor(None, self.keys)  # PostgreSQL: a round trip
        budgets = [k for k in keys if k.budget_daily_usd is not None or k.budget_monthly_usd is not None]
        if budgets:
            day, month = window_names(now)
            found = crossings(budgets, await read(key_spend, store, now, False), day, month, now)
            if found:
                await read(claim, store, found, now)
        for alert, attempts in await read(take_due, store, now, now + LEASE_SECONDS):
            await self._deliver(alert, attempts)

    async def _deliver(self, alert: Alert, attempts: int) -> None:
        assert self.url is not None
        body = json.dumps(alert.body()).encode()
        problem = await asyncio.get_running_loop().run_in_executor(None, post_json, self.url, body)
        now = time.time()
        if self.observe is not None:
            self.observe(alert.threshold, problem is None)
        if problem is None:
            self.delivered += 1
            await self.pipeline.read(settle, self.pipeline.store, alert, now, attempts + 1, now)
            return
        self.failures += 1
        backoff = min(MAX_BACKOFF_SECONDS, self.interval * 2**attempts)
        log.warning(
            "budget alert for key %s (%s %d%%) not delivered to %s: %s; retrying in %.0f s",
            alert.key_id,
            alert.period,
            alert.threshold,
            safe_target(self.url),
            problem,
            backoff,
        )
        await self.pipeline.read(settle, self.pipeline.store, alert, None, attempts + 1, now + backoff)
