"""Budgets on the sum of every instance's spend: local (or Redis) counters, reconciled with PostgreSQL.

The request path reads counters in memory or Redis as before. Every `RECONCILE_SECONDS` the app asks the shared
store what each key spent today and this month, across all instances (`spend_by_key`, kept per day by the
shipper's writes), and a key's spend becomes the larger of its counter and that figure plus what this process
recorded since the question was asked. So a budget crossed through other instances is refused here within one
reconcile interval plus the shipping delay, about 2.5 s: the overshoot is bounded by what every instance spends
in that time, on top of the calls already in flight when the budget ran out (which a single instance lets
finish too). With Redis as well, spend is shared at once through Redis and PostgreSQL only repairs what Redis
lost (a restart, an eviction). If PostgreSQL is down the last figures stay and local counting goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from .limits import KeyUsage, Limits, Windows

log = logging.getLogger("llm_scope.access")
RECONCILE_SECONDS = 2.0
SpendSince = Callable[[float], Awaitable[dict[str, float]]]


def window_starts(at: float) -> tuple[float, float]:
    """Epoch seconds of the current UTC day's and month's first moment."""
    now = time.gmtime(at)
    day = at - (now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec + (at % 1))
    return day, day - (now.tm_mday - 1) * 86400


def _add(counts: dict[str, float], key_id: str, usd: float) -> None:
    counts[key_id] = counts.get(key_id, 0.0) + usd


class ReconciledLimits:
    def __init__(self, inner: Limits) -> None:
        self.inner = inner
        self._windows: tuple[str, str] | None = None  # the (day, month) the shared figures are for
        self._day: dict[str, float] = {}
        self._month: dict[str, float] = {}
        # Recorded here since the last question to the shared store (and, while one is being asked, before it).
        self._since: tuple[dict[str, float], dict[str, float]] = ({}, {})
        self._asking: tuple[dict[str, float], dict[str, float]] = ({}, {})
        self._last_warning = 0.0

    def _shared(self, key_id: str, day: str, month: str) -> tuple[float, float]:
        if self._windows != (day, month):
            return 0.0, 0.0
        recent_day = self._since[0].get(key_id, 0.0) + self._asking[0].get(key_id, 0.0)
        recent_month = self._since[1].get(key_id, 0.0) + self._asking[1].get(key_id, 0.0)
        return self._day.get(key_id, 0.0) + recent_day, self._month.get(key_id, 0.0) + recent_month

    async def usage(self, key_id: str, w: Windows) -> KeyUsage:
        used = await self.inner.usage(key_id, w)
        day, month = self._shared(key_id, w.day, w.month)
        used.spend_day = max(used.spend_day, day)
        used.spend_month = max(used.spend_month, month)
        return used

    async def count_request(self, key_id: str, w: Windows) -> None:
        await self.inner.count_request(key_id, w)

    async def record(self, key_id: str, tokens: int, cost: float, w: Windows) -> None:
        if cost:
            _add(self._since[0], key_id, cost)
            _add(self._since[1], key_id, cost)
        await self.inner.record(key_id, tokens, cost, w)

    async def reconcile(self, spend_since: SpendSince) -> bool:
        """Take every instance's spend from the shared store; False (figures kept) if it did not answer."""
        w = Windows.now()
        day_start, month_start = window_starts(time.time())
        self._asking, self._since = self._since, ({}, {})
        try:
            day = await spend_since(day_start)
            month = await spend_since(month_start)
        except Exception as exc:
            for old, new in zip(self._asking, self._since, strict=True):
                for key_id, usd in new.items():
                    _add(old, key_id, usd)
            self._since, self._asking = self._asking, ({}, {})
            if time.monotonic() - self._last_warning > 60:
                self._last_warning = time.monotonic()
                log.warning("budgets: shared spend unavailable (%s); counting locally until it answers", exc)
            return False
        self._day, self._month, self._windows = day, month, (w.day, w.month)
        self._asking = ({}, {})
        return True

    async def aclose(self) -> None:
        await self.inner.aclose()
