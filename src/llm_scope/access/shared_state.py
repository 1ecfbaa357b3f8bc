"""Limits and budget counters in Redis, so several gateway instances behind a load balancer enforce one limit.

Each counter is one key with an expiry a little past its window. If Redis is unreachable the gateway
keeps serving (limits fail open, logged once a minute): an outage of the limiter must not become an
outage of every team's tools.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as redis
from redis.exceptions import RedisError

from .limits import KeyUsage, Windows

log = logging.getLogger("llm_scope.access")
PREFIX = "llm-scope"


class RedisLimits:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=30
        )
        self._last_warning = 0.0

    def _keys(self, key_id: str, w: Windows) -> tuple[str, str, str, str]:
        return (
            f"{PREFIX}:rpm:{key_id}:{w.minute}",
            f"{PREFIX}:tpm:{key_id}:{w.minute}",
            f"{PREFIX}:spend:{key_id}:{w.day}",
            f"{PREFIX}:spend:{key_id}:{w.month}",
        )

    def _down(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning > 60:
            self._last_warning = now
            log.warning("Redis unavailable for limits (%s); allowing calls until it is back", type(exc).__name__)

    async def usage(self, key_id: str, w: Windows) -> KeyUsage:
        try:
            values = await self.client.mget(self._keys(key_id, w))
        except (RedisError, OSError) as exc:
            self._down(exc)
            return KeyUsage()
        requests, tokens, day, month = (v.decode() if isinstance(v, bytes) else v for v in values)
        return KeyUsage(
            requests=int(requests or 0),
            tokens=int(tokens or 0),
            spend_day=float(day or 0),
            spend_month=float(month or 0),
        )

    async def count_request(self, key_id: str, w: Windows) -> None:
        rpm = self._keys(key_id, w)[0]
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.incr(rpm)
                pipe.expire(rpm, 120)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._down(exc)

    async def record(self, key_id: str, tokens: int, cost: float, w: Windows) -> None:
        _, tpm, day, month = self._keys(key_id, w)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.incrby(tpm, tokens)
                pipe.expire(tpm, 120)
                pipe.incrbyfloat(day, cost)
                pipe.expire(day, 2 * 86400)
                pipe.incrbyfloat(month, cost)
                pipe.expire(month, 32 * 86400)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._down(exc)

    async def aclose(self) -> None:
        await self.client.aclose()
