"""Budgets and rate limits per virtual key: requests and tokens per minute, USD per day and month.

Windows are fixed (this minute, this UTC day, this month), which is what people mean by "60 a minute" and
what Redis can count with one INCR. `MemoryLimits` keeps them in this process (one gateway); with
`REDIS_URL` set, `RedisLimits` (shared_state.py) keeps them in Redis so every instance enforces one limit.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Protocol

from ..errors import GatewayError
from .keys import VirtualKey


class RateLimited(GatewayError, status=429, type="rate_limit_error", code="rate_limit_exceeded"):
    """Over the key's requests or tokens per minute; `retry_after` is the time to the next minute."""


class BudgetExceeded(GatewayError, status=429, type="insufficient_quota", code="budget_exceeded"):
    """Over the key's daily or monthly USD budget; `retry_after` is the time to the next day or month."""


@dataclass(frozen=True)
class Windows:
    minute: int
    day: str
    month: str
    to_next_minute: float
    to_next_day: float
    to_next_month: float

    @classmethod
    def now(cls, at: float | None = None) -> Windows:
        t = time.time() if at is None else at
        today = dt.datetime.fromtimestamp(t, dt.UTC)
        tomorrow = (today + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        first_next = (today.replace(day=1) + dt.timedelta(days=32)).replace(
            day=1, hour=0, minute=0, second=0, microsecond=0
        )
        return cls(
            minute=int(t // 60),
            day=today.strftime("%Y-%m-%d"),
            month=today.strftime("%Y-%m"),
            to_next_minute=60 - t % 60,
            to_next_day=(tomorrow - today).total_seconds(),
            to_next_month=(first_next - today).total_seconds(),
        )


@dataclass
class KeyUsage:
    """What one key has used in the current windows (requests this minute, tokens, spend today and this
    month), against its limits; not a call's token `types.Usage`."""

    requests: int = 0
    tokens: int = 0
    spend_day: float = 0.0
    spend_month: float = 0.0


class Limits(Protocol):
    async def usage(self, key_id: str, w: Windows) -> KeyUsage: ...

    async def count_request(self, key_id: str, w: Windows) -> None: ...

    async def record(self, key_id: str, tokens: int, cost: float, w: Windows) -> None: ...

    async def aclose(self) -> None: ...


def verdict(key: VirtualKey, used: KeyUsage, w: Windows) -> GatewayError | None:
    """Why this key may not make a call now, or None; Retry-After says when it may."""
    if key.budget_daily_usd is not None and used.spend_day >= key.budget_daily_usd:
        return BudgetExceeded(
            f"Daily budget of ${key.budget_daily_usd:g} for this key is used up "
            f"(${used.spend_day:.4f} spent today, UTC)",
            retry_after=round(w.to_next_day),
        )
    if key.budget_monthly_usd is not None and used.spend_month >= key.budget_monthly_usd:
        return BudgetExceeded(
            f"Monthly budget of ${key.budget_monthly_usd:g} for this key is used up "
            f"(${used.spend_month:.4f} spent this month)",
            retry_after=round(w.to_next_month),
        )
    if key.rpm is not None and used.requests >= key.rpm:
        return RateLimited(
            f"Rate limit of {key.rpm} requests per minute reached for this key",
            retry_after=max(1, round(w.to_next_minute)),
        )
    if key.tpm is not None and used.tokens >= key.tpm:
        return RateLimited(
            f"Rate limit of {key.tpm} tokens per minute reached for this key",
            retry_after=max(1, round(w.to_next_minute)),
        )
    return None


async def admit(limits: Limits, key: VirtualKey) -> None:
    """Raise if the key is over a limit; otherwise count this request against its minute."""
    w = Windows.now()
    problem = verdict(key, await limits.usage(key.id, w), w)
    if problem is not None:
        raise problem
    if key.rpm is not None:
        await limits.count_request(key.id, w)


class MemoryLimits:
    """One process's counters; spend is seeded from the local store at start so a restart forgets nothing."""

    def __init__(self) -> None:
        self._minute: dict[str, tuple[int, int, int]] = {}  # key -> (minute, requests, tokens)
        self._day: dict[str, tuple[str, float]] = {}
        self._month: dict[str, tuple[str, float]] = {}

    def seed(self, key_id: str, day: str, spend_day: float, month: str, spend_month: float) -> None:
        self._day[key_id] = (day, spend_day)
        self._month[key_id] = (month, spend_month)

    async def usage(self, key_id: str, w: Windows) -> KeyUsage:
        minute, requests, tokens = self._minute.get(key_id, (w.minute, 0, 0))
        day, spend_day = self._day.get(key_id, (w.day, 0.0))
        month, spend_month = self._month.get(key_id, (w.month, 0.0))
        return KeyUsage(
            requests=requests if minute == w.minute else 0,
            tokens=tokens if minute == w.minute else 0,
            spend_day=spend_day if day == w.day else 0.0,
            spend_month=spend_month if month == w.month else 0.0,
        )

    async def count_request(self, key_id: str, w: Windows) -> None:
        used = await self.usage(key_id, w)
        self._minute[key_id] = (w.minute, used.requests + 1, used.tokens)

    async def record(self, key_id: str, tokens: int, cost: float, w: Windows) -> None:
        used = await self.usage(key_id, w)
        self._minute[key_id] = (w.minute, used.requests, used.tokens + tokens)
        self._day[key_id] = (w.day, used.spend_day + cost)
        self._month[key_id] = (w.month, used.spend_month + cost)

    async def aclose(self) -> None:
        return None
